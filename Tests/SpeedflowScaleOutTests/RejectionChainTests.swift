#if Kafka
import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
@testable import SpeedflowScaleOut
import SpeedflowTestSupport
import Testing

/// Rejection tallies through the scale-out chain: `KafkaEventSink` (a request's tallies split per camera into its
/// camera's message, a camera with only rejections getting a message of tallies alone) → librdkafka's mock
/// cluster → partition aggregators → their stores. A takeover over the same stores after every request was sent
/// again counts each submission once; a new group over empty stores replaying the whole topic counts the same.
struct RejectionChainTests {
    /// Every camera's tallies, from the partition that owns it (memory and store), and from its store alone.
    func expectCounts(_ aggregators: [Aggregator], _ oracle: RejectionOracle, range: Range<Int64>) async throws {
        var merged: [String: [RejectionReason: Int64]] = [:]
        var stored: [String: [Int64: [RejectionReason: Int64]]] = [:]
        for a in aggregators {
            let queries = CameraQueries(view: a, store: a.store, configuration: EngineConfiguration())
            merged.merge(try await queries.rejectionsByCamera(buckets: range)) { $0.merging($1, uniquingKeysWith: +) }
            for record in try a.store.cameras() {
                let held = try await a.store.rejections(camera: record.id, buckets: range)
                if !held.isEmpty { stored[record.kvfvId] = held }
            }
        }
        #expect(merged == oracle.byCamera(range))
        #expect(stored == oracle.counts)
    }

    @Test func rejectionTalliesAreExactThroughKafkaATakeoverAndAReplay() async throws {
        let chain = try KafkaChain(partitions: 3)
        defer { chain.remove() }
        let base = (nowMs() - 3_600_000).floorDiv(300_000) * 300_000
        let cameras = ["KV0", "KV1", "KV2", "KV3", "KV4"]
        var requests: [(batch: EventBatch, arrival: Int64, tallies: [String: [RejectionReason: Int64]])] = []
        for i in 0..<60 {
            let arrival = base + Int64(i) * 45_000
            let (body, tallies) = RejectionOracle.body(
                seed: UInt64(500 + i), arrivalMs: arrival, cameras: i % 7 == 6 ? ["KVONLYBAD"] : cameras, elements: 1 + i % 11,
                allRejected: i % 4 == 3 || i % 7 == 6)
            let batch = try EventBatch.decode(Data(body.utf8), ndjson: true, policy: ValidationPolicy(), nowMs: arrival)
            requests.append((batch, arrival, tallies))
        }
        let intake = Intake(sink: chain.sink, stats: IngestStats(nowMs: base), policy: ValidationPolicy(), cameras: nil)
        var oracle = RejectionOracle()
        var messages = 0
        func send() async throws {
            for r in requests {
                _ = try await intake.ingest(r.batch, arrivalMs: r.arrival)
                oracle.add(r.tallies, arrivalMs: r.arrival)
                messages += Set(r.batch.events.map(\.kvfvId) + r.batch.rejectionTallies.map(\.kvfvId)).count
            }
        }
        try await send()
        let range = (Bucket.index(ofTimestamp: base) - 1)..<(Bucket.index(ofTimestamp: base) + 100)
        #expect(oracle.counts["KVONLYBAD"] != nil)
        try await expectCounts(try await chain.aggregate(group: "first", messages: messages), oracle, range: range)

        // Every request again (new submissions: their rejections count again), taken over by a new group over the
        // same stores, which continues from each store's offset.
        try await send()
        await chain.producer.close()
        try await expectCounts(try await chain.aggregate(group: "second", messages: messages), oracle, range: range)

        // A new group over empty stores replays the whole topic: the same counts, each message once.
        let fresh = chain.dir.appendingPathComponent("fresh")
        try FileManager.default.createDirectory(at: fresh, withIntermediateDirectories: true)
        try await expectCounts(try await chain.aggregate(group: "third", messages: messages, stores: fresh), oracle, range: range)
    }
}
#endif
