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

func bootstrapPrometheus() -> PrometheusCollectorRegistry {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.defaultValueHistogramBuckets = IngestStats.latenessBounds
    MetricsSystem.bootstrap(factory)
    return registry
}

struct ApiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Query API and dashboard on top of the store that aggregators write (no ingest).",
        discussion: """
            Answers GET /kvfv/{id}/avg-speed, /kvfv, the dashboard, /metrics from the store (ClickHouse, or a \
            SQLite store written by a single aggregator). Cameras new to the store appear within a second. \
            POST /events answers 503: send events to an ingest node.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var storeOptions: StoreOptions

    @Option(help: "Address to bind. Default: 127.0.0.1.") var host: String?
    @Option(help: "Port; 0 picks a free port. Default: 8080.") var port: Int?

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = bootstrapLogging(settings.string("log_level", storage.logLevel, default: "info"))
        let registry = bootstrapPrometheus()
        let configuration = EngineConfiguration(policy: try settings.policy(storage))
        let store: any StoreReader
        switch try settings.storeKind(storeOptions) {
        case .clickhouse:
            store = try settings.clickHouseStore(storeOptions, writer: "api", logger: logger)
        case .sqlite:
            let dataDir = settings.string("data_dir", storage.dataDir, default: "./data")
            store = try SQLiteStore(path: URL(fileURLWithPath: dataDir).appendingPathComponent("store.sqlite").path, logger: logger)
        }
        // Queries over the store alone: cameras learnt from it as aggregators write them.
        let queries = CameraQueries(view: try StoreFollower(store: store, logger: logger), store: store, configuration: configuration)
        let node = HTTPNode(
            role: "api", intake: nil, queries: queries, stats: IngestStats(nowMs: queries.now),
            status: NodeStatus(storeBytes: { store.sizeInBytes() }))
        let server = ServerConfiguration(
            host: settings.string("host", host, default: "127.0.0.1"), port: try settings.int("port", port, default: 8080))
        try await runHTTPNode(
            node, server: server, registry: registry, logger: logger,
            banner: { "speedflow api listening on http://\(server.host):\($0)" })
    }
}
