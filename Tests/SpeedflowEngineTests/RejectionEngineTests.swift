import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import SpeedflowTestSupport
import Testing

/// Rejections per camera through the embedded pipeline: `Intake` → log record (version 5) → bucket table →
/// store, across a clean restart, a crash image (store behind the log) and a replay into an empty store.
@Suite("Engine: rejections per camera, by arrival time, durable")
struct RejectionEngineTests {
    static let cameras = ["KV0", "KV1", "KV2", "KV3"]

    /// Posts `requests` bodies through the engine's intake, arrivals 70 s apart from `firstArrival`, and adds
    /// what their answers reported to `oracle` (checked against what the body was built to produce).
    static func post(
        _ engine: Engine, requests: Range<Int>, base: Int64, oracle: inout RejectionOracle
    ) async throws {
        for i in requests {
            let arrival = base + Int64(i) * 70_000
            let (body, tallies) = RejectionOracle.body(
                seed: UInt64(i), arrivalMs: arrival, cameras: i % 9 == 8 ? ["KVONLYBAD"] : cameras, elements: 1 + i % 13,
                allRejected: i % 5 == 4 || i % 9 == 8)
            let batch = try EventBatch.decode(Data(body.utf8), ndjson: true, policy: ValidationPolicy(), nowMs: arrival)
            _ = try await engine.intake.ingest(batch, arrivalMs: arrival)
            // The answer's rejections (every one listed: no detail limit here) name exactly these.
            var answered: [String: [RejectionReason: Int64]] = [:]
            let elements = body.split(separator: "\n")
            for r in batch.rejections where r.kvfvId != nil {
                #expect(elements[r.index].contains("\"kvfv_id\":\"\(r.kvfvId!)\""))
                answered[r.kvfvId!, default: [:]][r.reason, default: 0] += 1
            }
            #expect(answered == tallies)
            oracle.add(tallies, arrivalMs: arrival)
        }
    }

    static func expectExact(
        _ queries: CameraQueries, _ oracle: RejectionOracle, base: Int64, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let range = (Bucket.index(ofTimestamp: base) - 3)..<(Bucket.index(ofTimestamp: base) + 300)
        for camera in cameras + ["KVONLYBAD"] {
            let got = try await queries.rejections(kvfvId: camera, buckets: range)
            #expect(got == (oracle.counts[camera] ?? [:]), "\(camera)", sourceLocation: sourceLocation)
        }
        #expect(try await queries.rejectionsByCamera(buckets: range) == oracle.byCamera(range), sourceLocation: sourceLocation)
        // A sub-range, and a camera never seen.
        let part = (range.lowerBound + 10)..<(range.lowerBound + 20)
        #expect(try await queries.rejectionsByCamera(buckets: part) == oracle.byCamera(part), sourceLocation: sourceLocation)
        #expect(try await queries.rejections(kvfvId: "KVNEVER", buckets: range) == nil, sourceLocation: sourceLocation)
    }

    @Test("rejections count once per request by arrival bucket, through a restart, a crash image and a replay into an empty store")
    func exactAcrossRestartsAndReplay() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = (Int64(Date().timeIntervalSince1970 * 1000) - 3 * 3_600_000).floorDiv(300_000) * 300_000
        var oracle = RejectionOracle()

        // 1. Posted with frequent flushes (memory and store both hold some), then a clean shutdown.
        let first = try makeEngine(dir) { $0.flushIntervalMs = 5 }
        first.start()
        try await Self.post(first, requests: 0..<40, base: base, oracle: &oracle)
        try await Self.expectExact(first.queries, oracle, base: base)
        #expect(oracle.counts["KVONLYBAD"] != nil, "a camera that sent only rejected events is counted")
        first.shutdown()

        // 2. Restarted; more requests with the store left behind (no flush after the first): a crash image of
        // the running engine is then the log ahead of the store.
        let second = try makeEngine(dir) { $0.flushIntervalMs = 3_600_000 }
        try second.recover()
        second.start()
        try await Self.expectExact(second.queries, oracle, base: base)
        try await Self.post(second, requests: 40..<80, base: base, oracle: &oracle)
        try await Self.expectExact(second.queries, oracle, base: base)
        let crashImage = try temporaryDirectoryCopy(of: dir)
        defer { try? FileManager.default.removeItem(at: crashImage) }
        second.shutdown()

        // 3. The crash image replays the log from its store's offset: each record's tallies once.
        let third = try makeEngine(crashImage)
        try third.recover()
        try await Self.expectExact(third.queries, oracle, base: base)
        // Stored, not just in memory: the store alone holds them after the replay's flush.
        let stored = try await third.store.rejectionsByCamera(
            buckets: (Bucket.index(ofTimestamp: base) - 3)..<(Bucket.index(ofTimestamp: base) + 300))
        var storedTotal: Int64 = 0, expectedTotal: Int64 = 0
        for counts in stored.values { storedTotal += counts.values.reduce(0, +) }
        for buckets in oracle.counts.values { for counts in buckets.values { expectedTotal += counts.values.reduce(0, +) } }
        #expect(storedTotal == expectedTotal)

        // 4. The whole log into an empty store.
        let replayed = try makeEngine(dir, storeName: "replayed.sqlite")
        try replayed.recover()
        try await Self.expectExact(replayed.queries, oracle, base: base)
    }
}
