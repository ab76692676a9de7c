#if Kafka
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowLog
import SpeedflowModel
import SpeedflowScaleOut
import SpeedflowServer
import SpeedflowStore

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
        let logger = bootstrapLogging(settings.string("log_level", storage.logLevel, default: "info"))
        let registry = bootstrapPrometheus()
        let (brokers, topic) = try kafka.resolve(settings)
        var configuration = EngineConfiguration(policy: try settings.policy(storage))
        configuration.aggregates = false
        configuration.maxPendingEvents = try settings.int("max_pending_events", maxPendingEvents, default: 500_000)
        let server = ServerConfiguration(
            host: settings.string("host", host, default: "127.0.0.1"), port: try settings.int("port", port, default: 8080),
            maxBodyBytes: try settings.bytes("max_body_size", maxBodySize, default: "64MiB"))
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: brokers), logger: logger)
        let engine = try Engine(
            log: KafkaLog(producer: producer, topic: topic), store: NullStore(), configuration: configuration, logger: logger)
        try await runHTTPNode(
            engine: engine, server: server, registry: registry, logger: logger,
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
    @Option(help: "How often each partition's state and offset are committed to the store. Default: 250ms.")
    var flushInterval: String?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = bootstrapLogging(settings.string("log_level", storage.logLevel, default: "info"))
        let registry = bootstrapPrometheus()
        let (brokers, topic) = try kafka.resolve(settings)
        var engineConfiguration = EngineConfiguration(policy: try settings.policy(storage))
        engineConfiguration.flushIntervalMs = try settings.durationMs("flush_interval", flushInterval, default: "250ms")
        let configuration = engineConfiguration
        let kind = try settings.storeKind(storeOptions)
        let dataDir = settings.string("data_dir", storage.dataDir, default: "./data")
        let client = kind == .clickhouse
            ? ClickHouseClient(topology: try settings.clickHouseTopology(storeOptions), logger: logger) : nil
        let storeOptions = self.storeOptions

        @Sendable func openPartition(_ p: KafkaPartition) throws -> Engine {
            let store: any Store
            switch kind {
            case .clickhouse:
                store = try settings.clickHouseStore(storeOptions, writer: "\(p.topic)/\(p.partition)", client: client, logger: logger)
            case .sqlite:
                let dir = URL(fileURLWithPath: dataDir).appendingPathComponent("aggregate", isDirectory: true)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                store = try SQLiteStore(path: dir.appendingPathComponent("\(p.topic)-\(p.partition).sqlite").path, logger: logger)
            }
            return try Engine(log: ExternalLog(), store: store, configuration: configuration, logger: logger)
        }

        var consumerConfiguration = KafkaConsumerConfiguration(
            bootstrapServers: brokers, groupID: settings.string("group", group, default: "speedflow-aggregators"), topics: [topic])
        // Freshness: hand out what is there now instead of waiting up to 500 ms for fuller fetches.
        consumerConfiguration.properties["fetch.wait.max.ms"] = "20"

        let router = Router()
        router.get("/health") { _, _ in "{\"status\":\"ok\"}" }
        router.get("/metrics") { _, _ -> Response in
            var bytes = [UInt8]()
            registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        let host = settings.string("host", self.host, default: "127.0.0.1")
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: try settings.int("port", port, default: 8081))),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("speedflow aggregate listening on http://\(host):\(channel.localAddress?.port ?? 0) (kafka \(brokers), topic \(topic))\n".utf8))
            }, logger: logger)
        let service = AggregatorService(consumer: consumerConfiguration, logger: logger, openPartition: openPartition)
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: service), .init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
        client?.shutdown()
    }
}

#endif
