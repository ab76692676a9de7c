#if Kafka
import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `speedflow dev kafka-mock` as a child process: librdkafka's mock cluster on loopback, with brokers taken
/// down and up through its stdin.
final class KafkaMockProcess {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private(set) var bootstrap = ""

    init(binary: String, brokers: Int, partitions: Int) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["dev", "kafka-mock", "--brokers", "\(brokers)", "--partitions", "\(partitions)"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = try readLine(timeout: 30)
        guard line.hasPrefix("bootstrap: ") else { throw SpeedflowProcess.ProcessError("kafka-mock said '\(line)'") }
        bootstrap = String(line.dropFirst("bootstrap: ".count))
    }

    private var buffer = Data()

    private func readLine(timeout: Double) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeSubrange(...i)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
        }
        throw SpeedflowProcess.ProcessError("kafka-mock: no answer")
    }

    /// Sends a stdin command (`down 2`, `up 2`) and waits for its `ok`.
    func command(_ c: String) throws {
        input.fileHandleForWriting.write(Data((c + "\n").utf8))
        let answer = try readLine(timeout: 30)
        guard answer.hasPrefix("ok") else { throw SpeedflowProcess.ProcessError("kafka-mock: \(c): \(answer)") }
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
    }
}

/// The whole scale-out chain with real processes: a 3-broker mock Kafka cluster, 2 ingest nodes, 2 aggregators
/// in one consumer group, 1 API node, a real ClickHouse. Late, resent, invalid and shuffled events; one
/// aggregator and one ingest node killed with `kill -9` mid-stream, a broker taken down and back: every window
/// the API node answers is exact.
@Suite(
    "Scale-out: ingest → Kafka → aggregators → ClickHouse → API",
    .enabled(if: SpeedflowProcess.binaryPath != nil && ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"] != nil),
    .serialized)
struct ScaleOutTests {
    @Test("kill -9 an aggregator and an ingest node, a broker down and up: every window exact")
    func endToEnd() async throws {
        let binary = try #require(SpeedflowProcess.binaryPath)
        let clickhouse = try #require(ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"])
        let kafka = try KafkaMockProcess(binary: binary, brokers: 3, partitions: 6)
        defer { kafka.stop() }
        let database = "sfscale_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = ["--store", "clickhouse", "--clickhouse-url", clickhouse, "--clickhouse-database", database]
        let brokers = ["--log", "kafka", "--brokers", kafka.bootstrap]
        let group = ["--group", "g-\(database)"]

        let aggregators = try (0..<2).map { _ in
            try SpeedflowProcess(subcommand: "aggregate", extraArguments: brokers + store + group + ["--flush-interval", "200ms"])
        }
        let ingests = try (0..<2).map { _ in try SpeedflowProcess(subcommand: "ingest", extraArguments: brokers) }
        let api = try SpeedflowProcess(subcommand: "api", extraArguments: store)
        defer {
            for p in aggregators + ingests + [api] { p.remove() }
        }
        for p in aggregators + ingests { try await p.start() }
        try await api.start()
        // Both aggregators own partitions before events flow, so the kill below lands mid-aggregation.
        let joined = ContinuousClock.now + .seconds(90)
        while !aggregators.allSatisfy({ $0.logTail(100_000).contains("Consuming") }) {
            guard ContinuousClock.now < joined else { throw SpeedflowProcess.ProcessError("aggregators did not join the group") }
            try await Task.sleep(for: .milliseconds(50))
        }

        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var workload = CrashRecoveryTests.workload(nowMs: now, seed: 3)
        // Invalid events ride along: rejected with a reason, never counted.
        for i in stride(from: 0, to: workload.count, by: 25) {
            workload[i].append(.init(camera: "KVC1", ms: now, speed: -5, id: "bad-\(i)", lane: 1, plate: "X"))
        }
        let batches = workload
        let invalid = Set(batches.joined().filter { $0.speed <= 0 }.map(\.identity))

        // Senders post round-robin; a failed post (503, cut connection) is retried on the other ingest node.
        let ledger = AckLedger(queue: Array(batches.indices))
        let urls = SendTargets(ingests.map(\.url))
        let sender = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var attempt = worker
                        while let b = await ledger.next() {
                            while true {
                                let url = await urls.pick(attempt)
                                attempt += 1
                                if await CrashRecoveryTests.post(batches[b], to: url) { break }
                                try? await Task.sleep(for: .milliseconds(50))
                            }
                            await ledger.ack(b)
                            // Paced (~100 requests/s in all), so the stream outlasts the kills below.
                            try? await Task.sleep(for: .milliseconds(40))
                        }
                    }
                }
            }
        }
        func waitForAcks(_ n: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(180)
            while await ledger.count < n {
                guard ContinuousClock.now < deadline else { throw SpeedflowProcess.ProcessError("stalled at \(await ledger.count) acks") }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        try await waitForAcks(batches.count / 5)
        aggregators[0].kill9()  // its partitions go to the other aggregator, which replays from the store
        try await waitForAcks(batches.count * 2 / 5)
        await urls.drop(ingests[0].url)
        ingests[0].kill9()  // requests in flight there fail and are resent to the other node
        try await waitForAcks(batches.count * 3 / 5)
        // Broker 2 goes down; as a real cluster would elect new leaders, its partitions move to brokers 1 and 3.
        for partition in 0..<6 { try kafka.command("leader speedflow-events \(partition) \(partition % 2 == 0 ? 1 : 3)") }
        try kafka.command("down 2")
        try await waitForAcks(batches.count * 7 / 10)
        try kafka.command("up 2")
        try await aggregators[0].start()  // rejoins the group: another rebalance
        await sender.value
        #expect(await ledger.count == batches.count)

        // The truth: first copy of each valid identity, per camera and 5-minute bucket.
        var seen = Set<String>()
        var truth: [String: [Int64: (n: Int, sum: Double)]] = [:]
        for e in batches.joined() where !invalid.contains(e.identity) && seen.insert(e.identity).inserted {
            var v = truth[e.camera, default: [:]][e.ms.floorDiv(300_000)] ?? (0, 0)
            v.n += 1
            v.sum += e.speed
            truth[e.camera, default: [:]][e.ms.floorDiv(300_000)] = v
        }
        let from = (now - 7 * 3_600_000).floorDiv(300_000) * 300_000
        let to = (now + 600_000).floorDiv(300_000) * 300_000
        // Aggregation is asynchronous: wait until the API shows everything, then compare every window.
        var mismatches: [String] = []
        let deadline = ContinuousClock.now + .seconds(120)
        repeat {
            mismatches = []
            for (camera, buckets) in truth.sorted(by: { $0.key < $1.key }) {
                let uri = "\(api.url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from))&to=\(Timestamp.format(to))&interval=5m"
                guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: uri), timeout: .seconds(30)),
                    let body = try? await response.body.collect(upTo: 16 << 20), response.status == .ok,
                    let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                    let windows = json["windows"] as? [[String: Any]]
                else {
                    mismatches.append("\(camera): no answer")
                    continue
                }
                for (i, w) in windows.enumerated() {
                    let expected = buckets[from / 300_000 + Int64(i)] ?? (0, 0)
                    let count = w["count"] as? Int ?? -1
                    if count != expected.n {
                        mismatches.append("\(camera) \(w["start"] ?? "?"): \(count) != \(expected.n)")
                    } else if expected.n > 0, let avg = w["avg_speed"] as? Double,
                        abs(avg - expected.sum / Double(expected.n)) > 1e-9 * avg
                    {
                        mismatches.append("\(camera) \(w["start"] ?? "?"): avg \(avg)")
                    }
                }
            }
            if mismatches.isEmpty { break }
            try await Task.sleep(for: .milliseconds(500))
        } while ContinuousClock.now < deadline
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(10))")
        if !mismatches.isEmpty {
            // For the post-mortem: what the aggregators said besides routine progress.
            for (i, a) in aggregators.enumerated() {
                let notable = a.logTail(2_000_000).split(separator: "\n")
                    .filter {
                        $0.contains("warning") || $0.contains("error") || $0.contains("assigned") || $0.contains("revoked")
                            || $0.contains("progress")
                    }
                print("aggregator \(i) (\(a.directory.path)):\n" + notable.suffix(60).joined(separator: "\n"))
            }
        }
        #expect(aggregators[1].logTail(400_000).contains("Partitions assigned"))
    }
}

/// The ingest nodes still up, for senders to rotate over.
actor SendTargets {
    private var urls: [String]
    init(_ urls: [String]) { self.urls = urls }
    func pick(_ n: Int) -> String { urls[n % urls.count] }
    func drop(_ url: String) { if urls.count > 1 { urls.removeAll { $0 == url } } }
}
#endif
