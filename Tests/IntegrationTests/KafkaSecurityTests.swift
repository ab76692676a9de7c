#if Kafka
import Foundation
import SpeedflowTestSupport
import Testing

/// librdkafka settings reach the client (TLS/SASL pass-through), and secrets are refused on the command line.
@Suite("Kafka settings: pass-through and secrets", .enabled(if: SpeedflowProcess.binaryPath != nil))
struct KafkaSecurityTests {
    static func run(_ arguments: [String]) async -> (Int32, String) {
        await withCheckedContinuation { c in
            Thread.detachNewThread {
                c.resume(returning: (try? SpeedflowProcess.run(arguments)) ?? (-1, "could not run"))
            }
        }
    }

    @Test("a password on the command line is refused, naming the file option; the file's properties reach librdkafka")
    func secretsAndPassThrough() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        var (status, output) = await Self.run([
            "ingest", "--brokers", "127.0.0.1:1", "--data-dir", data, "--port", "0", "--kafka-config", "sasl.password=hunter2",
        ])
        #expect(status != 0 && output.contains("is a secret") && output.contains("--kafka-config-file"), "\(output)")
        // A property librdkafka does not know proves the file is handed to it (the client refuses at start).
        let file = dir.appendingPathComponent("kafka.properties")
        try Data("# TLS and SASL for the brokers\nsecurity.protocol=plaintext\nno.such.property=1\n".utf8).write(to: file)
        (status, output) = await Self.run(["ingest", "--brokers", "127.0.0.1:1", "--data-dir", data, "--port", "0", "--kafka-config-file", file.path])
        #expect(status != 0 && output.contains("no.such.property"), "\(output)")
        try Data("this line has no equals sign\n".utf8).write(to: file)
        (status, output) = await Self.run(["ingest", "--brokers", "127.0.0.1:1", "--data-dir", data, "--port", "0", "--kafka-config-file", file.path])
        #expect(status != 0 && output.contains("expected key=value"), "\(output)")
    }
}
#endif
