#if Kafka
import ArgumentParser
import Dispatch
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowLog
import SpeedflowModel
import SpeedflowServer
import SpeedflowRuntime
import SpeedflowStore
import Synchronization

// Scale-out: `ingest` nodes (HTTP → Kafka) · `aggregate` members of a consumer group (Kafka → store) ·
// `api` nodes (store → HTTP). Built only with the `Kafka` package trait.

struct KafkaOptions: ParsableArguments {
    @Option(help: "The log between ingest and aggregation: kafka (the only choice for these commands). Default: kafka.")
    var log: String?

    @Option(help: "Kafka bootstrap servers, host:port[,host:port...]. Env: SPEEDFLOW_BROKERS.")
    var brokers: String?

    @Option(help: "Topic of camera events (keyed by kvfv_id, so a camera lives in one partition). Default: speedflow-events.")
    var topic: String?

    func resolve(_ settings: Settings) throws -> (brokers: String, topic: String) {
        let log = settings.string("log", self.log, default: "kafka")
        guard log == "kafka" else { throw ValidationError("--log must be kafka for this command, not '\(log)'") }
        let brokers = settings.string("brokers", self.brokers, default: "")
        guard !brokers.isEmpty else { throw ValidationError("--brokers is required (e.g. 127.0.0.1:9092)") }
        return (brokers, settings.string("topic", topic, default: "speedflow-events"))
    }
}

/// Runs `body` on a thread of its own: blocking work (librdkafka-backed waits, ClickHouse over HTTP, flushes)
/// never occupies the cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        Thread.detachNewThread { c.resume(with: Result { try body() }) }
    }
}


/// The event sink of an ingest node: one Kafka message per camera per request, keyed by `kvfv_id`, value an
/// `EventRecord`; returns only when every delivery report says it is in Kafka (idempotent producer,
/// `acks=all`). Requests wait for their own messages only (the producer batches and pipelines them).
/// Counting and dedup happen downstream in the aggregators, so every valid event is "accepted".
final class KafkaEventSink: EventSink {
    let producer: KafkaProducer
    let topic: String
    let maxPendingEvents: Int
    private let pending = Atomic<Int>(0)
    private let closing = Atomic<Bool>(false)

    init(producer: KafkaProducer, topic: String, maxPendingEvents: Int) {
        self.producer = producer
        self.topic = topic
        self.maxPendingEvents = maxPendingEvents
    }

    /// One message per camera, keyed by `kvfv_id`, each camera's events in request order.
    func messages(_ events: [CameraEvent], arrivalMs: Int64) -> [KafkaProducerMessage] {
        var order: [String] = []
        var byCamera: [String: [CameraEvent]] = [:]
        for e in events {
            if byCamera[e.kvfvId] == nil { order.append(e.kvfvId) }
            byCamera[e.kvfvId, default: []].append(e)
        }
        return order.map { camera in
            KafkaProducerMessage(
                topic: topic, key: Array(camera.utf8),
                value: EventRecord(arrivalMs: arrivalMs, events: byCamera[camera] ?? []).encoded())
        }
    }

    func ingest(_ events: [CameraEvent], arrivalMs: Int64) async throws(IngestError) -> IngestOutcome {
        guard !events.isEmpty else { return IngestOutcome() }
        if closing.load(ordering: .relaxed) { throw IngestError(.shuttingDown, "the server is shutting down") }
        let before = pending.add(events.count, ordering: .relaxed).oldValue
        defer { pending.subtract(events.count, ordering: .relaxed) }
        if before > 0 && before + events.count > maxPendingEvents {
            throw IngestError(.overloaded, "\(before) events are waiting for Kafka")
        }
        do {
            try await producer.send(messages(events, arrivalMs: arrivalMs))
        } catch {
            throw IngestError(.logFailure, "Kafka did not confirm delivery: \(error)")
        }
        return IngestOutcome(accepted: events.count)
    }

    var queueDepth: Int { pending.load(ordering: .relaxed) }
}

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Stateless HTTP ingest node: POST /events (same contract) into Kafka, answered once Kafka has them.",
        discussion: """
            Validates exactly as `serve` does, then produces the valid events to the topic keyed by kvfv_id with the \
            idempotent producer (acks=all), and answers 200 only after the delivery reports say every one is in \
            Kafka. Broker trouble: 503 + Retry-After, never a lost acknowledgement. Dedup happens downstream in the \
            aggregators, so "accepted" counts every valid event and "duplicates" is 0. Run as many as you like \
            behind a load balancer.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions

    @Option(help: "Address to bind. Default: 127.0.0.1.") var host: String?
    @Option(help: "Port; 0 picks a free port (printed on stdout). Default: 8080.") var port: Int?
    @Option(help: "Largest request body. Default: 64MiB.") var maxBodySize: String?
    @Option(help: "Events waiting for Kafka beyond which requests get 503. Default: 500000.") var maxPendingEvents: Int?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        let logger = observability.logger
        let (brokers, topic) = try kafka.resolve(settings)
        let policy = try settings.policy(storage)
        let server = try settings.server(host: host, port: port, maxBodySize: maxBodySize)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokers), logger: logger)
        let sink = KafkaEventSink(
            producer: producer, topic: topic,
            maxPendingEvents: try settings.int("max_pending_events", maxPendingEvents, default: 500_000))
        let stats = IngestStats(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        // No cameras known here: rejections count in the statistics only.
        let node = HTTPNode(
            role: "ingest", intake: Intake(sink: sink, stats: stats, policy: policy, cameras: nil), queries: nil,
            stats: stats, status: NodeStatus(queueDepth: { sink.queueDepth }))
        try await Roles.runHTTP(
            node, server: server, observability,
            banner: { "speedflow ingest listening on http://\(server.host):\($0) (kafka \(brokers), topic \(topic))" })
        await producer.close()
    }
}

struct AggregateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregate",
        abstract: "Consumer-group member: Kafka partitions → dedup + 5-minute buckets → the store, exactly once.",
        discussion: """
            Joins the consumer group and, for each partition assigned to it, opens the partition's state in the \
            store (offsets and dedup identities; with ClickHouse the markers of writer "<topic>/<partition>") and \
            consumes from the stored offset. Flushes write state and offset together (see the ClickHouse store), \
            so a crash at any point is replayed exactly by whoever gets the partition next. On revocation it \
            flushes before letting go. /health and /metrics on --port.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var storeOptions: StoreOptions

    @Option(help: "Consumer group. Default: speedflow-aggregators.") var group: String?
    @Option(help: "Address for /health and /metrics. Default: 127.0.0.1.") var host: String?
    @Option(help: "Port for /health and /metrics; 0 picks one. Default: 8081.") var port: Int?
    @Option(help: "How often each partition's state and offset are committed to the store. Default: \(Settings.formatDuration(EngineConfiguration.aggregator.flushIntervalMs)).")
    var flushInterval: String?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        let logger = observability.logger
        let registry = observability.registry
        let (brokers, topic) = try kafka.resolve(settings)
        let configuration = try settings.engine(storage, flushInterval: flushInterval, defaults: .aggregator)
        let stores = try StoreOpener(try settings.store(storeOptions), dataDir: settings.dataDir(storage), logger: logger)
        defer { stores.shutdown() }

        @Sendable func openPartition(_ p: KafkaPartition) throws -> Aggregator {
            try Aggregator(store: try stores.open(.partition(topic: p.topic, partition: p.partition)), configuration: configuration, logger: logger)
        }

        let aggregators = PartitionAggregators()
        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: brokers, groupID: settings.string("group", group, default: "speedflow-aggregators"), topics: [topic])
        // Freshness: hand out what is there now instead of waiting up to 500 ms for fuller fetches.
        consumerConfiguration.properties["fetch.wait.max.ms"] = "20"
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration,
            logger: logger,
            startOffsets: { partitions in
                try await offPool {
                    var offsets: [KafkaPartition: Int64] = [:]
                    for p in partitions {
                        let aggregator = try openPartition(p)
                        aggregators.set(p, aggregator)
                        offsets[p] = Int64(aggregator.storedOffset)
                    }
                    logger.info("Partitions assigned", metadata: ["offsets": "\(offsets.sorted { $0.key < $1.key })"])
                    return offsets
                }
            })

        let router = Router()
        router.get("/health") { _, _ in "{\"status\":\"ok\"}" }
        router.get("/metrics") { _, _ -> Response in SpeedflowHTTP.metricsResponse(registry) }
        let host = settings.string("host", self.host, default: "127.0.0.1")
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: try settings.int("port", port, default: 8081))),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("speedflow aggregate listening on http://\(host):\(channel.localAddress?.port ?? 0) (kafka \(brokers), topic \(topic))\n".utf8))
            }, logger: logger)
        let service = AggregatorService(consumer: consumer, aggregators: aggregators, logger: logger)
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: service), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
    }
}

/// The aggregators of the partitions this aggregator owns.
final class PartitionAggregators: Sendable {
    private let map = Mutex<[KafkaPartition: Aggregator]>([:])

    subscript(_ p: KafkaPartition) -> Aggregator? { map.withLock { $0[p] } }
    func set(_ p: KafkaPartition, _ e: Aggregator) { map.withLock { $0[p] = e } }
    func remove(_ p: KafkaPartition) -> Aggregator? { map.withLock { $0.removeValue(forKey: p) } }
    var all: [Aggregator] { map.withLock { Array($0.values) } }
    var entries: [(KafkaPartition, Aggregator)] { map.withLock { $0.map { ($0.key, $0.value) } } }
}

/// The consume → apply → flush loop of one aggregator.
struct AggregatorService: Service {
    let consumer: KafkaConsumer
    let aggregators: PartitionAggregators
    let logger: Logger

    func run() async throws {
        let aggregators = self.aggregators
        let logger = self.logger
        // Flushes are started by records arriving; this makes the last ones land when the topic goes quiet.
        let ticker = Task {
            var reported = ""
            var lastReport = ContinuousClock.now
            while !Task.isCancelled {
                for aggregator in aggregators.all { aggregator.tick() }
                // Every 5 s, where each owned partition is (applied in memory / stored), when that changed.
                if lastReport.duration(to: .now) >= .seconds(5) {
                    lastReport = .now
                    let progress = aggregators.entries.sorted { $0.0 < $1.0 }
                        .map { "\($0.0): \($0.1.appliedOffset)/\($0.1.storedOffset)" }.joined(separator: ", ")
                    if progress != reported {
                        logger.info("Partition progress", metadata: ["applied/stored": "\(progress)"])
                        reported = progress
                    }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        defer { ticker.cancel() }
        try await withGracefulShutdownHandler {
            for try await event in consumer.events {
                switch event {
                case .assigned(let partitions):
                    logger.info("Consuming", metadata: ["partitions": "\(partitions.keys.sorted())"])
                case .messages(let messages):
                    try await offPool { Self.apply(messages, aggregators: aggregators, logger: logger) }
                case .revoked(let partitions):
                    // Flush before letting go: the next owner starts from what is stored (a failed flush only
                    // means it replays more).
                    try await offPool {
                        for p in partitions {
                            guard let aggregator = aggregators.remove(p) else { continue }
                            do {
                                try aggregator.relinquish()
                            } catch {
                                logger.warning("Flush on revoke failed; the next owner replays", metadata: ["partition": "\(p)", "error": "\(error)"])
                            }
                        }
                        logger.info("Partitions revoked", metadata: ["partitions": "\(partitions.sorted())"])
                    }
                }
            }
        } onGracefulShutdown: {
            Task { await consumer.close() }
        }
        // Leaving: commit what we have.
        try await offPool {
            for aggregator in aggregators.all { try? aggregator.relinquish() }
        }
    }

    /// Applies in partition order; a record whose late bucket cannot be read from the store is retried (its
    /// already-applied events are duplicates on the retry, so it stays exact) until the store answers.
    static func apply(_ messages: [KafkaConsumerMessage], aggregators: PartitionAggregators, logger: Logger) {
        var next: [KafkaPartition: UInt64] = [:]  // the offset each partition should continue at
        for m in messages {
            let partition = KafkaPartition(topic: m.topic, partition: m.partition)
            guard let aggregator = aggregators[partition] else { continue }
            let record: EventRecord
            do {
                record = try m.value.withUnsafeBytes { try EventRecord.decode($0) }
            } catch {
                logger.error("Skipping a message that is not an event record", metadata: ["partition": "\(partition)", "offset": "\(m.offset)", "error": "\(error)"])
                continue
            }
            // Offsets of a partition are contiguous here (no compaction, no transactions): anything else means
            // records were skipped or re-read, which the store's exactness does not cover for skips.
            let expected = next[partition] ?? aggregator.appliedOffset
            next[partition] = UInt64(m.offset + 1)
            if UInt64(m.offset) != expected {
                logger.warning("Kafka offsets not contiguous", metadata: [
                    "partition": "\(partition)", "expected": "\(expected)", "offset": "\(m.offset)"])
            }
            var delay = 0.05
            while true {
                do {
                    _ = try aggregator.apply(record, endOffset: UInt64(m.offset + 1))
                    aggregator.tick()
                    break
                } catch {
                    logger.warning("Apply failed; retrying", metadata: ["partition": "\(partition)", "offset": "\(m.offset)", "error": "\(error)"])
                    Thread.sleep(forTimeInterval: delay)
                    delay = min(delay * 2, 2)
                }
            }
        }
    }
}

#endif
