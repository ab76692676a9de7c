import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowLog
import SpeedflowServer
import SpeedflowStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the whole pipeline in one process: HTTP ingest, log, aggregation, SQLite store, query API, dashboard.",
        discussion: """
            Listens on http://127.0.0.1:8080 by default and keeps its data in ./data (log segments in data/log, \
            aggregates in data/store.sqlite). On start it replays any log not yet reflected in the store, so a \
            restart after kill -9 is exact. SIGTERM/SIGINT stop intake, answer queued requests, commit and exit.
            """)

    @OptionGroup var storage: StorageOptions

    @OptionGroup var storeOptions: StoreOptions

    @OptionGroup(title: "PostgreSQL source (see `speedflow source postgres --help`)") var postgresSource: PostgresSourceOptions

    @Option(help: "Address to bind. Default: 127.0.0.1. Env: SPEEDFLOW_HOST.")
    var host: String?

    @Option(help: "Port to bind; 0 picks a free port (printed on stdout). Default: 8080. Env: SPEEDFLOW_PORT.")
    var port: Int?

    @Option(help: "Largest request body (also after gunzip), e.g. 64MiB. Larger requests get 413. Default: 64MiB.")
    var maxBodySize: String?

    @Option(help: "How often aggregates, dedup state and the log offset are committed to SQLite. Default: 1s.")
    var flushInterval: String?

    @Option(help: "Events queued for the log beyond which requests get 503 + Retry-After. Default: 500000.")
    var maxPendingEvents: Int?

    @Option(help: "Event identities kept in memory before persisted buckets are evicted early. Default: 8000000.")
    var maxHotIdentities: Int?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = bootstrapLogging(settings.string("log_level", storage.logLevel, default: "info"))
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = IngestStats.latenessBounds
        MetricsSystem.bootstrap(factory)

        var engineConfiguration = EngineConfiguration(policy: try settings.policy(storage))
        engineConfiguration.flushIntervalMs = try settings.durationMs("flush_interval", flushInterval, default: "1s")
        engineConfiguration.maxPendingEvents = try settings.int("max_pending_events", maxPendingEvents, default: 500_000)
        engineConfiguration.maxHotIdentities = try settings.int("max_hot_identities", maxHotIdentities, default: 8_000_000)
        let server = ServerConfiguration(
            host: settings.string("host", host, default: "127.0.0.1"),
            port: try settings.int("port", port, default: 8080),
            maxBodyBytes: try settings.bytes("max_body_size", maxBodySize, default: "64MiB"))

        let dataDir = settings.string("data_dir", storage.dataDir, default: "./data")
        let engine = try settings.openEngine(
            dataDir: dataDir, store: storeOptions, configuration: engineConfiguration, logger: logger)
        try engine.recover(progress: { done, total, events in
            logger.info("Replaying log", metadata: ["replay.bytes": "\(done)/\(total)", "replay.events": "\(events)"])
        })

        try await runHTTPNode(
            .serve(engine), server: server, registry: registry, logger: logger,
            banner: { "speedflow listening on http://\(server.host):\($0) (data: \(dataDir))" },
            services: [.init(service: EngineService(engine: engine))]
                + (try postgresSource.services(settings: settings, engine: engine, dataDir: dataDir, logger: logger)))
    }
}

func bootstrapLogging(_ level: String) -> Logger {
    let parsed = Logger.Level(rawValue: level.lowercased()) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
    var logger = Logger(label: "speedflow")
    logger.logLevel = parsed
    return logger
}

/// Opens (creating or upgrading if needed) the log and the store under `dataDir`.
func openStorage(dataDir: String, logger: Logger) throws -> (log: SegmentLog, store: SQLiteStore) {
    try DataDirectory.open(dataDir, logger: logger)
}

/// Runs an HTTP role (`serve`, `ingest`, `api`) until SIGTERM/SIGINT: the role's `services` (the engine, then
/// sources), and the HTTP server listed after them so it stops first (intake ends before the engine drains).
/// `banner` gets the bound port and is printed on stdout once the server listens.
func runHTTPNode(
    _ node: HTTPNode, server: ServerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger,
    banner: @escaping @Sendable (Int) -> String, services: [ServiceGroupConfiguration.ServiceConfiguration] = []
) async throws {
    // On SIGTERM the drain service (listed last, so it stops first) answers every request 503 shutting_down
    // for a moment while the server still runs, instead of keep-alive connections being cut under a request.
    let drain = DrainGate()
    let app = SpeedflowHTTP.application(
        node: node, configuration: server, prometheus: registry, logger: logger, drain: drain,
        onServerRunning: { port in FileHandle.standardOutput.write(Data((banner(port) + "\n").utf8)) })
    let group = ServiceGroup(
        configuration: .init(
            services: services + [.init(service: app), .init(service: DrainService(gate: drain))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

func openEngine(dataDir: String, configuration: EngineConfiguration, logger: Logger) throws -> Engine {
    let (log, store) = try openStorage(dataDir: dataDir, logger: logger)
    return try Engine(log: log, store: store, configuration: configuration, logger: logger)
}
