#if Kafka
import Foundation
import SpeedflowKafka
import Synchronization
import SpeedflowTestSupport
import Testing

/// `speedflow dev kafka-mock` as a process: bootstrap line, stdin commands, SIGTERM. Needs the built binary
/// (`SPEEDFLOW_BIN`, set by scripts/test).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil))
struct KafkaMockCommandTests {
    /// Collects a process's stdout lines on a thread of its own.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        init(_ handle: FileHandle) {
            Thread.detachNewThread { [self] in
                var buffer: [UInt8] = []
                while true {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    buffer += data
                    while let newline = buffer.firstIndex(of: 10) {
                        let line = String(decoding: buffer[..<newline], as: UTF8.self)
                        buffer.removeSubrange(...newline)
                        lines.withLock { $0.append(line) }
                    }
                }
            }
        }
        func contains(_ line: String) -> Bool { lines.withLock { $0.contains(line) } }
    }

    @Test func printsTheBootstrapListTakesBrokersDownAndUpAndStopsOnSigterm() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"]!)
        process.arguments = ["dev", "kafka-mock", "--brokers", "3", "--topic", "events", "--partitions", "4"]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let output = Lines(stdout.fileHandleForReading)
        try await eventually(.seconds(30), "bootstrap line") { !output.lines.withLock { $0.isEmpty } }
        let first = output.lines.withLock { $0[0] }
        #expect(first.hasPrefix("bootstrap: 127.0.0.1:"))
        let bootstrap = String(first.dropFirst("bootstrap: ".count))
        #expect(bootstrap.split(separator: ",").count == 3)

        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: bootstrap),
                                         logger: testLogger("producer"))
        try await producer.send((0..<40).map { KafkaProducerMessage(topic: "events", key: bytes("k\($0)"), value: bytes("\($0)")) })
        for command in ["down 2", "up 2", "topic other 2 1", "bogus"] {
            stdin.fileHandleForWriting.write(Data((command + "\n").utf8))
        }
        try await eventually(.seconds(30), "answers to the commands") {
            output.contains("ok down 2") && output.contains("ok up 2") && output.contains("ok topic other 2 1")
                && output.lines.withLock { $0.contains { $0.hasPrefix("error bogus") } }
        }
        // Broker 2 is back: every partition takes messages again.
        try await producer.send((40..<80).map { KafkaProducerMessage(topic: "events", key: bytes("k\($0)"), value: bytes("\($0)")) })
        let messages = try await consumeAll(bootstrap: bootstrap, topic: "events", group: "check", count: 80)
        #expect(Set(messages.map { text($0.value) }).count == 80)
        await producer.close()

        process.terminate()  // SIGTERM
        try await eventually(.seconds(30), "exit after SIGTERM") { !process.isRunning }
        #expect(process.terminationStatus == 0)
    }
}
#endif
