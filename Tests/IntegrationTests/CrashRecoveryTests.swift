import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Acknowledged batches, shared by the sending tasks and the test that decides when to kill.
actor AckLedger {
    private(set) var acked: Set<Int> = []
    private var queue: [Int]

    init(queue: [Int]) { self.queue = queue }

    func next() -> Int? { queue.isEmpty ? nil : queue.removeFirst() }
    func ack(_ batch: Int) { acked.insert(batch) }
    var count: Int { acked.count }
}

@Suite("Crash recovery with the real binary", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct CrashRecoveryTests {
    struct Event {
        var camera: String
        var ms: Int64
        var speed: Double
        var id: String?
        var lane: Int
        var plate: String

        var json: String {
            var s = "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed)"
            if let id { s += ",\"event_id\":\"\(id)\"" }
            return s + ",\"lane\":\(lane),\"plate_number\":\"\(plate)\"}"
        }

        var identity: String { "\(camera)|" + (id ?? "\(ms)|\(lane)|\(plate)|\(speed)") }
    }

    /// Late (up to 6 h), resent and content-identified events, cut into shuffled NDJSON batches.
    static func workload(nowMs: Int64, seed: UInt64) -> [[Event]] {
        var rng = SystemRandomNumberGenerator()
        _ = seed
        var events: [Event] = []
        for i in 0..<12_000 {
            let camera = "KVC\(Int.random(in: 0..<6, using: &rng))"
            let age = Bool.random(using: &rng) ? Int64.random(in: 0..<600_000, using: &rng) : Int64.random(in: 0..<21_600_000, using: &rng)
            let e = Event(
                camera: camera, ms: nowMs - age, speed: Double(Int.random(in: 2000...14000, using: &rng)) / 100,
                id: i % 20 == 0 ? nil : "\(camera)-\(i)", lane: Int.random(in: 1...3, using: &rng), plate: "P\(i)")
            events.append(e)
            if Int.random(in: 0..<10, using: &rng) == 0 { events.append(e) }  // the camera resends it
        }
        events.shuffle(using: &rng)
        var batches: [[Event]] = []
        var i = 0
        while i < events.count {
            let n = Int.random(in: 1...60, using: &rng)
            batches.append(Array(events[i..<min(events.count, i + n)]))
            i += n
        }
        return batches
    }

    static func post(_ batch: [Event], to url: String) async -> Bool {
        var request = HTTPClientRequest(url: url + "/events")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.body = .bytes(ByteBuffer(string: batch.map(\.json).joined(separator: "\n")))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return response.status == .ok
    }

    /// The embedded SQLite store, and the ClickHouse store (single node, 2×2 cluster) when `scripts/test`
    /// started them.
    static var stores: [[String]] {
        let env = ProcessInfo.processInfo.environment
        var variants: [[String]] = [[]]
        for key in ["SPEEDFLOW_TEST_CLICKHOUSE", "SPEEDFLOW_TEST_CLICKHOUSE_CLUSTER"] {
            guard let url = env[key] else { continue }
            let database = "sfcrash_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            variants.append(["--store", "clickhouse", "--clickhouse-url", url, "--clickhouse-database", database])
        }
        return variants
    }

    @Test(
        "kill -9 mid-stream (and mid-flush) four times, resend everything not acknowledged: every window is exact",
        arguments: stores)
    func killNineRepeatedly(store: [String]) async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "250ms"] + store)
        defer { server.remove() }
        try await server.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let batches = Self.workload(nowMs: now, seed: 1)
        var acked = Set<Int>()
        var kills = 0

        for round in 0..<6 {
            let pending = batches.indices.filter { !acked.contains($0) }
            if pending.isEmpty { break }
            let ledger = AckLedger(queue: pending)
            let url = server.url
            let sender = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<6 {
                        group.addTask {
                            while let b = await ledger.next() {
                                // A failed request (connection cut by the kill, 503) ends this worker's round.
                                guard await Self.post(batches[b], to: url) else { return }
                                await ledger.ack(b)
                            }
                        }
                    }
                }
            }
            if round < 4 {
                // Kill once a share of this round's batches is acknowledged: the rest are in flight or queued.
                let target = pending.count / (5 - round)
                let deadline = ContinuousClock.now + .seconds(120)
                while await ledger.count < target && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
                server.kill9()
                kills += 1
            }
            await sender.value
            acked.formUnion(await ledger.acked)
            if round < 4 { try await server.start() }
        }
        #expect(kills == 4)
        #expect(acked.count == batches.count, "every batch is eventually acknowledged")

        // The truth: first copy of each identity, per 5-minute bucket.
        var seen = Set<String>()
        var truth: [String: [Int64: (n: Int, sum: Double, inv: Double)]] = [:]
        for batch in batches {
            for e in batch where seen.insert(e.identity).inserted {
                let bucket = e.ms.floorDiv(300_000)
                var v = truth[e.camera, default: [:]][bucket] ?? (0, 0, 0)
                v.n += 1
                v.sum += e.speed
                v.inv += 1 / e.speed
                truth[e.camera, default: [:]][bucket] = v
            }
        }
        let from = (now - 7 * 3_600_000).floorDiv(300_000) * 300_000
        let to = (now + 600_000).floorDiv(300_000) * 300_000
        var compared = 0
        for (camera, buckets) in truth.sorted(by: { $0.key < $1.key }) {
            let uri = "\(server.url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from))&to=\(Timestamp.format(to))&interval=5m"
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: uri), timeout: .seconds(30))
            #expect(response.status == .ok)
            let body = try await response.body.collect(upTo: 16 << 20)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
            let windows = try #require(json["windows"] as? [[String: Any]])
            #expect(windows.count == Int((to - from) / 300_000))
            for (i, w) in windows.enumerated() {
                let bucket = from / 300_000 + Int64(i)
                let expected = buckets[bucket] ?? (0, 0, 0)
                let count = w["count"] as? Int ?? -1
                #expect(count == expected.n, "\(camera) window \(w["start"] ?? "?")")
                if expected.n > 0 {
                    let avg = try #require(w["avg_speed"] as? Double)
                    let harmonic = try #require(w["harmonic_mean_speed"] as? Double)
                    #expect(abs(avg - expected.sum / Double(expected.n)) <= 1e-9 * avg)
                    #expect(abs(harmonic - Double(expected.n) / expected.inv) <= 1e-9 * harmonic)
                }
                compared += 1
            }
        }
        #expect(compared > 400)
        #expect(server.logTail(200_000).contains("Replaying log"), "at least one restart had log to replay")
    }
}
