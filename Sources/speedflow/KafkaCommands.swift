#if Kafka
import ArgumentParser
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowServer

// Scale-out: `ingest` nodes (HTTP → Kafka) · `aggregate` members of a consumer group (Kafka → store) ·
// `api` nodes (store → HTTP). Built only with the `Kafka` package trait. The roles themselves are in
// SpeedflowRuntime (`Roles.ingest`, `Roles.aggregate`); these commands only read their configuration.

struct KafkaOptions: ParsableArguments {
    @Option(help: "The log between ingest and aggregation: kafka (the only choice for these commands). Default: kafka.")
    var log: String?

    @Option(help: "Kafka bootstrap servers, host:port[,host:port...]. Env: SPEEDFLOW_BROKERS.")
    var brokers: String?

    @Option(help: "Topic of camera events (keyed by kvfv_id, so a camera lives in one partition). Default: \(KafkaConfiguration().topic).")
    var topic: String?

    @Option(help: "A librdkafka property, key=value (e.g. security.protocol=SASL_SSL, ssl.ca.location=/etc/ssl/kafka-ca.pem); repeatable. Secrets (passwords, keys) only in --kafka-config-file: ps shows command lines.")
    var kafkaConfig: [String] = []

    @Option(help: "A librdkafka properties file (key=value lines, # comments): TLS and SASL settings including secrets (sasl.password=…). Env: SPEEDFLOW_KAFKA_CONFIG_FILE.")
    var kafkaConfigFile: String?

    func resolve(_ settings: Settings, group: String? = nil) throws -> KafkaConfiguration {
        let log = settings.string("log", self.log, default: "kafka")
        guard log == "kafka" else { throw ValidationError("--log must be kafka for this command, not '\(log)'") }
        var c = KafkaConfiguration()
        c.brokers = settings.string("brokers", brokers, default: c.brokers)
        guard !c.brokers.isEmpty else { throw ValidationError("--brokers is required (e.g. 127.0.0.1:9092)") }
        c.topic = settings.string("topic", topic, default: c.topic)
        c.group = settings.string("group", group, default: c.group)
        if let file = kafkaConfigFile ?? settings.reader.string(forKey: "kafka_config_file") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ValidationError("cannot read the Kafka properties file \(file)")
            }
            c.properties = try KafkaConfiguration.parseProperties(text, source: file)
        }
        for pair in kafkaConfig {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                throw ValidationError("--kafka-config takes key=value, not '\(pair)'")
            }
            let key = String(pair[..<eq])
            guard !KafkaConfiguration.isSecret(key) else {
                throw ValidationError("\(key) is a secret: put it in --kafka-config-file (mode 0600), not on the command line where ps shows it")
            }
            c.properties[key] = String(pair[pair.index(after: eq)...])
        }
        return c
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
            behind a load balancer. Queries answer 404 not_served_here: ask an api node.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions

    @OptionGroup(title: "Access") var access: AuthOptions

    @Option(help: "Address to bind. Default: \(ServerConfiguration().host).") var host: String?
    @Option(help: "Port; 0 picks a free port (printed on stdout). Default: \(ServerConfiguration().port).") var port: Int?
    @Option(help: "Largest request body. Default: \(Settings.formatBytes(ServerConfiguration().maxBodyBytes)).") var maxBodySize: String?
    @Option(help: "A connection that sends nothing for this long is closed. Default: \(Settings.formatDuration(ServerConfiguration().idleTimeoutMs)).")
    var idleTimeout: String?

    @OptionGroup(title: "Connections") var connections: ConnectionOptions

    @OptionGroup(title: "TLS") var tls: TLSOptions
    @Option(help: "Events waiting for Kafka beyond which requests get 503. Default: \(IngestConfiguration().maxPendingEvents).")
    var maxPendingEvents: Int?

    @OptionGroup(title: "MQTT") var mqtt: MQTTOptions

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        var c = IngestConfiguration()
        c.kafka = try kafka.resolve(settings)
        c.policy = try settings.policy(storage)
        c.server = try settings.server(
            host: host, port: port, maxBodySize: maxBodySize, idleTimeout: idleTimeout, connections: connections, tls: tls)
        c.maxPendingEvents = try settings.int("max_pending_events", maxPendingEvents, default: c.maxPendingEvents)
        c.auth = try settings.auth(access)
        c.dataDir = settings.dataDir(storage)
        c.mqtt = try settings.mqtt(mqtt)
        try await Roles.ingest(c, observability)
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
            so a crash at any point is replayed exactly by whoever gets the partition next. On revocation, and on \
            SIGTERM before leaving the group, it flushes before letting go. /health and /metrics on --port.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var storeOptions: StoreOptions

    @OptionGroup(title: "Access (/metrics)") var access: AuthOptions

    @Option(help: "Consumer group. Default: \(KafkaConfiguration().group).") var group: String?
    @Option(help: "Address for /health and /metrics. Default: \(AggregateConfiguration().server.host).") var host: String?
    @Option(help: "Port for /health and /metrics; 0 picks one. Default: \(AggregateConfiguration().server.port).") var port: Int?
    @Option(help: "How often each partition's state and offset are committed to the store. Default: \(Settings.formatDuration(AggregateConfiguration().engine.flushIntervalMs)).")
    var flushInterval: String?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        var c = AggregateConfiguration()
        c.kafka = try kafka.resolve(settings, group: group)
        c.dataDir = settings.dataDir(storage)
        c.store = try settings.store(storeOptions)
        c.engine = try settings.engine(storage, flushInterval: flushInterval, defaults: c.engine)
        let d = c.server
        c.server = ServerConfiguration(host: settings.string("host", host, default: d.host), port: try settings.int("port", port, default: d.port))
        c.auth = try settings.auth(access)
        try await Roles.aggregate(c, observability)
    }
}

#endif
