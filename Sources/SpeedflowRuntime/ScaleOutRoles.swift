#if Kafka
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
import SpeedflowScaleOut
import SpeedflowServer

/// Where the Kafka roles meet.
public struct KafkaConfiguration: Sendable {
    /// Bootstrap servers, `host:port[,host:port...]`. Required.
    public var brokers = ""
    /// Topic of camera events (keyed by `kvfv_id`, so a camera lives in one partition).
    public var topic = "speedflow-events"
    /// The aggregators' consumer group.
    public var group = "speedflow-aggregators"
    /// librdkafka properties passed through (CONFIGURATION.md), e.g. `security.protocol=SASL_SSL`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`. Applied to the producer and the
    /// consumer before Speedflow's own settings (idempotence, manual offsets), which cannot be overridden.
    public var properties: [String: String] = [:]

    public init() {}

    /// Keys whose values are secrets: accepted from a file or the environment only, never a command line.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.hasSuffix(".key.pem") || k == "ssl.key.pem"
            || k == "sasl.oauthbearer.config"
    }

    /// `key=value` lines (`#` comments and blank lines skipped), as in a librdkafka properties file.
    public static func parseProperties(_ text: String, source: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else {
                throw KafkaConfigurationError(message: "\(source):\(n + 1): expected key=value, got '\(line.prefix(60))'")
            }
            out[line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}

public struct KafkaConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// `speedflow ingest`: a stateless HTTP node producing valid events to Kafka.
public struct IngestConfiguration: Sendable {
    public var kafka = KafkaConfiguration()
    public var policy = ValidationPolicy()
    public var server = ServerConfiguration()
    public var auth = AuthConfiguration()
    /// Where the default credentials file lives (`<data dir>/credentials.json`).
    public var dataDir = DataDirectory.defaultPath
    /// Events waiting for Kafka's delivery reports beyond which requests get 503.
    public var maxPendingEvents = EngineConfiguration().maxPendingEvents
    /// The MQTT listener (`--mqtt-port`), if any: PUBACK once Kafka's delivery reports are in. Default: none.
    public var mqtt: MQTTConfiguration?

    public init() {}
}

/// `speedflow aggregate`: a consumer-group member counting its partitions into the store.
public struct AggregateConfiguration: Sendable {
    public var kafka = KafkaConfiguration()
    public var dataDir = DataDirectory.defaultPath
    public var store = StoreConfiguration()
    /// An aggregator's defaults (a 250 ms flush interval).
    public var engine = EngineConfiguration.aggregator
    /// `/health` and `/metrics`.
    public var server = ServerConfiguration(port: 8081)
    public var auth = AuthConfiguration()

    public init() {}
}

extension Roles {
    /// Runs an ingest node until SIGTERM/SIGINT.
    public static func ingest(_ c: IngestConfiguration, _ o: Observability) async throws {
        if let tls = c.server.tls { try TLSCertificates.validate(tls) }
        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: c.kafka.brokers)
        producerConfiguration.properties = c.kafka.properties
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: o.logger)
        let sink = KafkaEventSink(producer: producer, topic: c.kafka.topic, maxPendingEvents: c.maxPendingEvents)
        let stats = IngestStats(nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        // No cameras known here: rejections count in the statistics only.
        let node = HTTPNode(
            role: "ingest", intake: Intake(sink: sink, stats: stats, policy: c.policy, cameras: nil), queries: nil,
            stats: stats, status: NodeStatus(queueDepth: { sink.queueDepth }))
        try await runHTTP(
            node, server: c.server, auth: c.auth, dataDir: c.dataDir, o,
            banner: { "speedflow ingest listening on \(c.server.scheme)://\(c.server.host):\($0) (kafka \(c.kafka.brokers), topic \(c.kafka.topic))" },
            mqtt: c.mqtt)
        await producer.close()
    }

    /// Runs an aggregator until SIGTERM/SIGINT: one `Aggregator` per assigned partition, over the partition's
    /// store (with ClickHouse the markers of writer `<topic>/<partition>`), consuming from its stored offset.
    public static func aggregate(_ c: AggregateConfiguration, _ o: Observability) async throws {
        let logger = o.logger
        let stores = try StoreOpener(c.store, dataDir: c.dataDir, logger: logger)
        defer { stores.shutdown() }
        var consumer = KafkaConsumerConfiguration(bootstrapServers: c.kafka.brokers, groupID: c.kafka.group, topics: [c.kafka.topic])
        // Freshness: hand out what is there now instead of waiting up to 500 ms for fuller fetches.
        consumer.properties.merge(c.kafka.properties) { _, passed in passed }
        consumer.properties["fetch.wait.max.ms"] = consumer.properties["fetch.wait.max.ms"] ?? "20"
        let engine = c.engine
        let service = AggregatorService(consumer: consumer, logger: logger) { p in
            try Aggregator(store: try stores.open(.partition(topic: p.topic, partition: p.partition)), configuration: engine, logger: logger)
        }
        let (access, authServices) = try c.auth.resolve(host: c.server.host, dataDir: c.dataDir, secure: false, logger: logger)
        let router = SpeedflowHTTP.healthAndMetricsRouter(prometheus: o.registry, access: access)
        let app = Application(
            router: router, configuration: .init(address: .hostname(c.server.host, port: c.server.port)),
            onServerRunning: { channel in
                FileHandle.standardOutput.write(Data("speedflow aggregate listening on http://\(c.server.host):\(channel.localAddress?.port ?? 0) (kafka \(c.kafka.brokers), topic \(c.kafka.topic))\n".utf8))
                o.systemd?.ready(status: "Listening on port \(channel.localAddress?.port ?? 0)")
            }, logger: logger)
        let gauges: ServiceGroupConfiguration.ServiceConfiguration = .init(service: OperationalMetrics(dataDir: c.dataDir, queries: nil))
        let group = ServiceGroup(
            configuration: .init(
                services: [gauges] + authServices + [.init(service: service), .init(service: app)] + stoppingService(o),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await runNotifying(group, o)
    }
}
#endif
