#if Kafka
import Foundation
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowKafka
@testable import SpeedflowScaleOut
import SpeedflowTestSupport
import Synchronization

/// The scale-out chain as the chain tests drive it: an ingest node's `KafkaEventSink` → librdkafka's mock cluster
/// (topic `events`) → aggregator services whose partitions keep SQLite stores in a temporary directory.
struct KafkaChain {
    static let topic = "events"
    let cluster: KafkaMockCluster
    let producer: KafkaProducer
    let sink: KafkaEventSink
    /// Where the partitions' stores are (`<topic>-<partition>.sqlite`); `remove()` deletes it.
    let dir: URL

    init(partitions: Int) throws {
        cluster = try mockCluster(topic: Self.topic, partitions: partitions)
        producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers), logger: testLogger("producer"))
        sink = KafkaEventSink(producer: producer, topic: Self.topic, maxPendingEvents: 1_000_000)
        dir = temporaryDirectory()
    }

    func remove() { try? FileManager.default.removeItem(at: dir) }

    /// Runs an aggregator service of consumer group `group` (new groups start at the earliest offset) over the
    /// SQLite stores in `stores` (default: the chain's) until its partitions have applied `messages` messages in all;
    /// returns the partitions' aggregators after a graceful shutdown.
    func aggregate(group: String, messages: Int, stores: URL? = nil) async throws -> [Aggregator] {
        let engines = Mutex<[Aggregator]>([])
        let open = sqlitePartitions(stores ?? dir)
        var consumer = KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: group, topics: [Self.topic])
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
}
#endif
