import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowLog
import SpeedflowPostgres
import SpeedflowRegistry
import SpeedflowServer
import SpeedflowStore

// Each role is a composition of parts, put together here and nowhere else; the executable only turns flags,
// environment and the configuration file into these configurations.
//
//   serve  = segment log + group commit + Aggregator (bucket table, flusher) + queries (memory ∪ store) + HTTP
//   api    = queries over a StoreReader, cameras learnt from it (StoreFollower) + HTTP
//   ingest = HTTP with the Kafka event sink, no engine           (SpeedflowScaleOut, Kafka trait)
//   aggregate = one Aggregator per assigned Kafka partition      (SpeedflowScaleOut, Kafka trait)

/// Logging and metrics of a process: bootstrapped once, before any role starts.
public struct Observability: Sendable {
    public let logger: Logger
    /// Served by every role on `GET /metrics`.
    public let registry: PrometheusCollectorRegistry
    /// systemd's `NOTIFY_SOCKET`, when started by a `Type=notify` unit (readiness, watchdog, stopping).
    public let systemd: SystemdNotifier?

    /// Log lines to stderr at `level` (trace … critical; anything else is info); swift-metrics into Prometheus.
    public static func bootstrap(logLevel level: String) -> Observability {
        let logger = bootstrapLogging(level)
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = IngestStats.latenessBounds
        MetricsSystem.bootstrap(factory)
        OperationalMetrics.registerLazyCounters()
        return Observability(logger: logger, registry: registry, systemd: SystemdNotifier.fromEnvironment())
    }

    /// Logging only (tools: `log check`, `rebuild`, `clickhouse migrate`): lines to stderr at `level`.
    public static func bootstrapLogging(_ level: String) -> Logger {
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
}

/// `speedflow serve`: the whole pipeline in one process.
public struct ServeConfiguration: Sendable {
    public var dataDir = DataDirectory.defaultPath
    public var store = StoreConfiguration()
    public var engine = EngineConfiguration()
    public var server = ServerConfiguration()
    public var auth = AuthConfiguration()
    public var registry = RegistryConfiguration()
    /// A PostgreSQL table read into the same engine, if any.
    public var postgresSource: PostgresSourceConfiguration?
    /// The MQTT listener (`--mqtt-port`), if any. Default: none.
    public var mqtt: MQTTConfiguration?

    public init() {}
}

/// `speedflow api`: queries and the dashboard over a store other processes write.
public struct APIConfiguration: Sendable {
    public var dataDir = DataDirectory.defaultPath
    public var store = StoreConfiguration()
    /// Health thresholds (silent, lagging) of `GET /kvfv`.
    public var engine = EngineConfiguration()
    public var server = ServerConfiguration()
    public var auth = AuthConfiguration()
    public var registry = RegistryConfiguration()

    public init() {}
}

public enum Roles {
    /// Runs `serve` until SIGTERM/SIGINT: replays the log into the store first (exact after kill -9).
    public static func serve(_ c: ServeConfiguration, _ o: Observability) async throws {
        let logger = o.logger
        // Bad TLS files stop the start before the log is replayed, not after.
        if let tls = c.server.tls { try TLSCertificates.validate(tls) }
        // So is an unreadable camera registry.
        let (registry, registryWatcher) = try c.registry.open(dataDir: c.dataDir, logger: logger)
        let stores = try StoreOpener(c.store, dataDir: c.dataDir, logger: logger)
        defer { stores.shutdown() }
        let (log, store) = try stores.openEmbedded()
        let engine = try Engine(log: log, store: store, configuration: c.engine, logger: logger)
        try engine.recover(progress: { done, total, events in
            logger.info("Replaying log", metadata: ["replay.bytes": "\(done)/\(total)", "replay.events": "\(events)"])
            o.systemd?.replaying(status: "Replaying log: \(done)/\(total) bytes, \(events) events")
        })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [registryWatcher, .init(service: EngineService(engine: engine))]
        if let source = c.postgresSource {
            // After the engine, so it stops before the engine drains.
            services.append(.init(service: try PostgresSource(configuration: source, intake: engine.intake, dataDir: c.dataDir, logger: logger)))
        }
        try await runHTTP(
            .serve(engine, registry: registry), server: c.server, auth: c.auth, dataDir: c.dataDir, o,
            banner: { "speedflow listening on \(c.server.scheme)://\(c.server.host):\($0) (data: \(c.dataDir))" }, services: services,
            mqtt: c.mqtt)
    }

    /// Runs `api` until SIGTERM/SIGINT.
    public static func api(_ c: APIConfiguration, _ o: Observability) async throws {
        if let tls = c.server.tls { try TLSCertificates.validate(tls) }
        let stores = try StoreOpener(c.store, dataDir: c.dataDir, logger: o.logger)
        defer { stores.shutdown() }
        let store: any StoreReader = try stores.open(.reader)
        // Queries over the store alone: cameras learnt from it as aggregators write them.
        let queries = CameraQueries(view: try StoreFollower(store: store, logger: o.logger), store: store, configuration: c.engine)
        let (registry, registryWatcher) = try c.registry.open(dataDir: c.dataDir, logger: o.logger)
        let node = HTTPNode(
            role: "api", intake: nil, queries: queries, stats: IngestStats(nowMs: queries.now),
            status: NodeStatus(storeBytes: { store.sizeInBytes() }), registry: registry)
        try await runHTTP(
            node, server: c.server, auth: c.auth, dataDir: c.dataDir, o, banner: { "speedflow api listening on \(c.server.scheme)://\(c.server.host):\($0)" },
            services: [registryWatcher])
    }

    /// Runs an HTTP role until SIGTERM/SIGINT: the role's `services` (the engine, then sources), and the HTTP
    /// server listed after them so it stops first (intake ends before the engine drains). `banner` gets the
    /// bound port and is printed on stdout once the server listens. With `mqtt` (and an intake), the MQTT listener
    /// runs beside HTTP on the same host, credentials and TLS, and prints its own line once it listens.
    public static func runHTTP(
        _ node: HTTPNode, server: ServerConfiguration, auth: AuthConfiguration, dataDir: String, _ o: Observability,
        banner: @escaping @Sendable (Int) -> String, services: [ServiceGroupConfiguration.ServiceConfiguration] = [],
        mqtt: MQTTConfiguration? = nil
    ) async throws {
        MemoryTuning.keepFreedMemory()
        var (access, authServices) = try auth.resolve(host: server.host, dataDir: dataDir, secure: server.tls != nil, logger: o.logger)
        access.clientCertificates = server.tls?.clientCAFile != nil
        // On SIGTERM the drain service (listed last, so it stops first) answers every request 503 shutting_down
        // for a moment while the server still runs, instead of keep-alive connections being cut under a request.
        let drain = DrainGate()
        // Loaded before anything listens: a bad file stops the start with an error naming it.
        let tls = try server.tls.map { try TLSCertificates(files: $0, logger: o.logger) }
        let app = SpeedflowHTTP.application(
            node: node, configuration: server, prometheus: o.registry, logger: o.logger, access: access, drain: drain, tls: tls,
            onServerRunning: { port in
                FileHandle.standardOutput.write(Data((banner(port) + "\n").utf8))
                o.systemd?.ready(status: "Listening on port \(port)")
            })
        // The reloader (SIGHUP, file changes) before the server, so it stops after it.
        let reloader: [ServiceGroupConfiguration.ServiceConfiguration] = tls.map { [.init(service: $0)] } ?? []
        // After the engine and the reloader, so it stops before them (finishing its PUBLISHes in flight).
        var listeners: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let mqtt, let intake = node.intake {
            let url = "\(server.tls == nil ? "mqtt" : "mqtts")://\(server.host)"
            let listener = MQTTListener(
                configuration: mqtt, intake: intake, server: server, access: access, tls: tls, logger: o.logger,
                onListening: { port in FileHandle.standardOutput.write(Data("speedflow MQTT listening on \(url):\(port)\n".utf8)) })
            listeners.append(.init(service: listener))
        }
        // Disk and camera-health gauges for /metrics, first so they are refreshed until the end.
        let gauges: ServiceGroupConfiguration.ServiceConfiguration = .init(service: OperationalMetrics(dataDir: dataDir, queries: node.queries))
        // Last (so told first on SIGTERM): the drain, and systemd's STOPPING=1 before it.
        let last: [ServiceGroupConfiguration.ServiceConfiguration] =
            [.init(service: app), .init(service: DrainService(gate: drain))] + stoppingService(o)
        let group = ServiceGroup(
            configuration: .init(
                services: [gauges] + authServices + services + reloader + listeners + last,
                gracefulShutdownSignals: [.sigterm, .sigint], logger: o.logger))
        try await runNotifying(group, o)
    }
}
