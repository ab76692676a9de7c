#if Kafka
import Foundation
import NIOPosix
import ServiceLifecycle
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
@testable import SpeedflowScaleOut
import SpeedflowTestSupport
import Synchronization
import Testing

/// Numbered passes and camera reports through the scale-out chain: `KafkaEventSink` (records split per camera,
/// version 4 with seq and reports) → librdkafka's mock cluster → partition aggregators → their stores. A second
/// consumer group run over the same stores (a takeover) gets every delivery again: nothing counts twice.
struct SequenceChainTests {
    /// Runs an aggregator service over `stores` until every message of the topic so far is applied; returns the
    /// partitions' aggregators after a graceful shutdown.
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

    @Test func numberedPassesAndReportsAreExactThroughKafkaAndATakeover() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cluster = try mockCluster(topic: "events", partitions: 3)
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers), logger: testLogger("producer"))
        let sink = KafkaEventSink(producer: producer, topic: "events", maxPendingEvents: 1_000_000)
        let now = nowMs()
        let fleet = SequencedFleet(seed: 5, cameras: 6, passes: 200, nowMs: now)
        var truth = SequenceTruth()
        var messages = 0
        for d in fleet.deliveries {
            for e in d.events { _ = truth.add(e, arrivalMs: d.arrivalMs) }
            for r in d.reports { truth.add(r, arrivalMs: d.arrivalMs) }
            _ = try await sink.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil)
            messages += Set(d.events.map(\.kvfvId) + d.reports.map(\.kvfvId)).count
        }
        let range = (now - 2 * 86_400_000, now + 600_000)
        #expect(truth.counted.keys.contains { truth.backlog($0) != nil }, "the stream has a backlog")
        func check(_ aggregators: [Aggregator]) async throws {
            for camera in truth.counted.keys.sorted() {
                // The partition that owns the camera answers for it.
                let owner = try #require(aggregators.first { $0.hotStates(kvfvId: camera, buckets: 0..<0) != nil })
                var one = SequenceTruth()
                one.counted = truth.counted.filter { $0.key == camera }
                one.reports = truth.reports.filter { $0.key == camera }
                let queries = CameraQueries(view: owner, store: owner.store, configuration: EngineConfiguration())
                try await expectSequencesExact(queries, one, fromMs: range.0, toMs: range.1)
            }
        }
        try await check(try await aggregate(cluster: cluster, dir: dir, group: "first", messages: messages))

        // Every delivery again, then a new group over the same stores replays the whole topic: all duplicates.
        for d in fleet.deliveries { _ = try await sink.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil) }
        await producer.close()
        let again = try await aggregate(cluster: cluster, dir: dir, group: "second", messages: 2 * messages)
        try await check(again)
    }
}
#endif
