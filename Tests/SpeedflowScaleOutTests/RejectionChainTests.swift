#if Kafka
import Foundation
import ServiceLifecycle
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
@testable import SpeedflowScaleOut
import SpeedflowTestSupport
import Synchronization
import Testing

/// Rejection tallies through the scale-out chain: `KafkaEventSink` (a request's tallies split per camera into its
/// camera's message, a camera with only rejections getting a message of tallies alone) → librdkafka's mock
/// cluster → partition aggregators → their stores. A takeover over the same stores after every request was sent
/// again counts each submission once; a new group over empty stores replaying the whole topic counts the same.
struct RejectionChainTests {
    func aggregate(cluster: KafkaMockCluster, dir: URL, group: String, messages: Int) async throws -> [Aggregator] {
        let engines = Mutex<[Aggregator]>([])
        let open = sqlitePartitions(dir)
        var consumer = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group, topics: ["events"])
        consumer.properties["fetch.wait.max.ms"] = "20"
        consumer.properties["auto.offset.reset"] = "earliest"
        let service = AggregatorService(consumer: consumer, logger: testLogger("aggregator")) { p in
            let engine = try open(p)
            engines.withLock { $0.append(engine) }
            return engine
        }
        let aggregator = service.aggregator
        let serviceGroup = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: testLogger("group")))
        let running = Task { try await serviceGroup.run() }
        try await eventually(.seconds(90), "every message applied") {
            aggregator.owned.all.map(\.appliedOffset).reduce(0, +) == UInt64(messages)
        }
        await serviceGroup.triggerGracefulShutdown()
        try await withTimeout(.seconds(60), "the service stops") { try await running.value }
        return engines.withLock { $0 }
    }

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
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cluster = try mockCluster(topic: "events", partitions: 3)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers), logger: testLogger("producer"))
        let sink = KafkaEventSink(producer: producer, topic: "events", maxPendingEvents: 1_000_000)
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
        let intake = Intake(sink: sink, stats: IngestStats(nowMs: base), policy: ValidationPolicy(), cameras: nil)
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
        try await expectCounts(try await aggregate(cluster: cluster, dir: dir, group: "first", messages: messages), oracle, range: range)

        // Every request again (new submissions: their rejections count again), taken over by a new group over the
        // same stores, which continues from each store's offset.
        try await send()
        await producer.close()
        try await expectCounts(try await aggregate(cluster: cluster, dir: dir, group: "second", messages: messages), oracle, range: range)

        // A new group over empty stores replays the whole topic: the same counts, each message once.
        let fresh = dir.appendingPathComponent("fresh")
        try FileManager.default.createDirectory(at: fresh, withIntermediateDirectories: true)
        try await expectCounts(try await aggregate(cluster: cluster, dir: fresh, group: "third", messages: messages), oracle, range: range)
    }
}
#endif
