#if Kafka
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
@testable import SpeedflowScaleOut
import Synchronization
import SpeedflowTestSupport
import Testing

/// The aggregator as a service against librdkafka's mock cluster: ingest through `KafkaEventSink`, consume, apply,
/// flush, shut down gracefully.
struct AggregatorServiceTests {
    @Test func consumesEveryRecordAndGracefulShutdownRelinquishesEverythingAndStopsItsThreads() async throws {
        let chain = try KafkaChain(partitions: 4)
        defer { chain.remove() }
        let sink = chain.sink
        let now = nowMs()
        let records = randomRequests(seed: 9, cameras: 10, requests: 150, nowMs: now)
        var oracle = CountOracle()
        for r in records { oracle.add(r.events) }
        // Half before the aggregator joins, half while it runs.
        for record in records[..<75] { _ = try await sink.ingest(record.events, arrivalMs: record.arrivalMs) }

        let engines = Mutex<[Aggregator]>([])
        let open = sqlitePartitions(chain.dir)
        var consumer = KafkaConsumerConfiguration(bootstrapServers: chain.cluster.bootstrapServers, groupID: "aggregators", topics: [KafkaChain.topic])
        consumer.properties["fetch.wait.max.ms"] = "20"
        var service = AggregatorService(consumer: consumer, logger: testLogger("aggregator")) { p in
            let engine = try open(p)
            engines.withLock { $0.append(engine) }
            return engine
        }
        let pool = Mutex<NIOThreadPool?>(nil)
        service.poolStarted = { p in pool.withLock { $0 = p } }
        let aggregator = service.aggregator
        let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: testLogger("group")))
        let running = Task { try await group.run() }

        try await eventually(.seconds(60), "all 4 partitions assigned") { aggregator.owned.partitions.count == 4 }
        for record in records[75...] { _ = try await sink.ingest(record.events, arrivalMs: record.arrivalMs) }
        await chain.producer.close()
        let total = messagesPerCamera(records)
        try await eventually(.seconds(60), "every message applied") {
            aggregator.owned.all.map(\.appliedOffset).reduce(0, +) == UInt64(total)
        }

        await group.triggerGracefulShutdown()
        try await withTimeout(.seconds(60), "the service returns after graceful shutdown") { try await running.value }

        let opened = engines.withLock { $0 }
        #expect(opened.count == 4)
        for partition in opened {
            #expect(partition.storedOffset == partition.appliedOffset, "relinquished: everything applied is in the store")
        }
        #expect(aggregator.owned.all.isEmpty, "every partition let go before leaving the group")
        #expect(try await storedCounts(opened.map(\.store), nowMs: now) == oracle.counts)
        #expect(aggregator.offsetGaps == 0)
        // The pool the service ran its blocking work on is shut down (its threads joined).
        let threadPool = try #require(pool.withLock { $0 })
        await #expect(throws: (any Error).self) { try await threadPool.runIfActive { 1 } }
    }

    /// Messages a topic gets from `records`: one per camera per request.
    func messagesPerCamera(_ records: [EventRecord]) -> Int {
        records.map { Set($0.events.map(\.kvfvId)).count }.reduce(0, +)
    }
}
#endif
