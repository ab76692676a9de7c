import ArgumentParser
import Configuration
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowServer

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

    @OptionGroup(title: "Access") var access: AuthOptions

    @OptionGroup(title: "Camera registry") var registryOptions: RegistryOptions

    @OptionGroup(title: "PostgreSQL source (see `speedflow source postgres --help`)") var postgresSource: PostgresSourceOptions

    @Option(help: "Address to bind. Default: \(ServerConfiguration().host). Env: SPEEDFLOW_HOST.")
    var host: String?

    @Option(help: "Port to bind; 0 picks a free port (printed on stdout). Default: \(ServerConfiguration().port). Env: SPEEDFLOW_PORT.")
    var port: Int?

    @Option(help: "Largest request body (also after gunzip), e.g. 64MiB. Larger requests get 413. Default: \(Settings.formatBytes(ServerConfiguration().maxBodyBytes)).")
    var maxBodySize: String?

    @Option(help: "A connection that sends nothing for this long is closed (before its first request or between requests). Default: \(Settings.formatDuration(ServerConfiguration().idleTimeoutMs)).")
    var idleTimeout: String?

    @OptionGroup(title: "Connections") var connections: ConnectionOptions

    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup(title: "MQTT") var mqtt: MQTTOptions

    @Option(help: "How often aggregates, dedup state and the log offset are committed to the store. Default: \(Settings.formatDuration(EngineConfiguration().flushIntervalMs)).")
    var flushInterval: String?

    @Option(help: "Events queued for the log beyond which requests get 503 + Retry-After. Default: \(EngineConfiguration().maxPendingEvents).")
    var maxPendingEvents: Int?

    @Option(help: "Event identities kept in memory before persisted buckets are evicted early. Default: \(EngineConfiguration().maxHotIdentities).")
    var maxHotIdentities: Int?

    @Option(help: "Free space kept on the data directory's file system: below it ingest gets 503 insufficient_storage (queries go on) until space returns. A size (1GiB), a share of the file system (2%), both (the larger: 1GiB,2%), or 0 (off). Default: \(FreeSpaceGuard.Threshold.default). Env: SPEEDFLOW_MIN_FREE_SPACE.")
    var minFreeSpace: String?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        var c = ServeConfiguration()
        c.dataDir = settings.dataDir(storage)
        c.store = try settings.store(storeOptions)
        c.engine = try settings.engine(
            storage, flushInterval: flushInterval, maxPendingEvents: maxPendingEvents, maxHotIdentities: maxHotIdentities)
        c.engine.freeSpace = FreeSpaceGuard.Configuration(path: c.dataDir, threshold: try settings.minFreeSpace(minFreeSpace))
        c.server = try settings.server(
            host: host, port: port, maxBodySize: maxBodySize, idleTimeout: idleTimeout, connections: connections, tls: tls)
        c.postgresSource = try postgresSource.values.resolve(settings)
        c.auth = try settings.auth(access)
        c.registry = settings.registry(registryOptions)
        c.mqtt = try settings.mqtt(mqtt)
        try await Roles.serve(c, observability)
    }
}

extension Settings {
    /// The pipeline's tuning: flags, environment, file, then `EngineConfiguration`'s defaults (or `defaults`,
    /// a role's own, such as an aggregator's shorter flush interval).
    func engine(
        _ storage: StorageOptions, flushInterval: String? = nil, maxPendingEvents: Int? = nil, maxHotIdentities: Int? = nil,
        defaults: EngineConfiguration = EngineConfiguration()
    ) throws -> EngineConfiguration {
        var c = defaults
        c.policy = try policy(storage)
        c.flushIntervalMs = try durationMs("flush_interval", flushInterval, default: defaults.flushIntervalMs)
        c.maxPendingEvents = try int("max_pending_events", maxPendingEvents, default: defaults.maxPendingEvents)
        c.maxHotIdentities = try int("max_hot_identities", maxHotIdentities, default: defaults.maxHotIdentities)
        c.lateGraceMs = try lateGraceMs(storage)
        return c
    }

    /// `--min-free-space`: a size, a percentage, both, or 0.
    func minFreeSpace(_ flag: String?) throws -> FreeSpaceGuard.Threshold {
        let text = flag ?? reader.string(forKey: ConfigKey("min_free_space")) ?? reader.int(forKey: ConfigKey("min_free_space")).map(String.init)
        guard let text else { return .default }
        guard let t = FreeSpaceGuard.Threshold.parse(text) else {
            throw ValidationError("min_free_space must be a size (1GiB), a percentage (2%), both (1GiB,2%) or 0, not '\(text)'")
        }
        return t
    }

    /// `--late-grace`: how long after its bucket's end an event still arrives on time.
    func lateGraceMs(_ storage: StorageOptions) throws -> Int64 {
        try durationMs("late_grace", storage.lateGrace, default: EngineConfiguration().lateGraceMs)
    }
}
