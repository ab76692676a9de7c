import ArgumentParser
import Foundation
import Logging
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowLog
import SpeedflowStore

/// Where aggregates live: `--store sqlite` (embedded, the default) or `--store clickhouse`.
struct StoreOptions: ParsableArguments {
    @Option(help: """
        Where bucket aggregates, dedup identities (and, for clickhouse, raw events) are stored: sqlite (embedded, \
        in the data dir) or clickhouse. The log stays in the data dir either way. Default: sqlite. Env: SPEEDFLOW_STORE.
        """)
    var store: String?

    @Option(help: """
        ClickHouse HTTP interface URL(s). One URL for a single node; for a cluster, shards separated by ';' and \
        each shard's replicas by ',', e.g. "http://h1:8123,http://h2:8123;http://h3:8123,http://h4:8123" \
        (replicated tables on ZooKeeper when a shard has two replicas). Default: http://127.0.0.1:8123.
        """)
    var clickhouseUrl: String?

    @Option(help: "ClickHouse database for Speedflow's tables. Default: speedflow.")
    var clickhouseDatabase: String?

    @Option(help: "Drop ClickHouse day partitions (aggregates, identities, raw events) older than this many days. Default: keep.")
    var clickhouseRetentionDays: Int?
}

enum StoreKind: String { case sqlite, clickhouse }

extension Settings {
    func storeKind(_ options: StoreOptions) throws -> StoreKind {
        let raw = string("store", options.store, default: "sqlite")
        guard let kind = StoreKind(rawValue: raw) else {
            throw ValidationError("--store must be sqlite or clickhouse, not '\(raw)'")
        }
        return kind
    }

    func clickHouseTopology(_ options: StoreOptions) throws -> ClickHouseTopology {
        do {
            return try ClickHouseTopology(parsing: string("clickhouse_url", options.clickhouseUrl, default: "http://127.0.0.1:8123"))
        } catch {
            throw ValidationError("--clickhouse-url: \(error)")
        }
    }

    /// The ClickHouse store; `writer` names the log whose offsets it records (`embedded`, or a Kafka partition),
    /// `client` lets several stores (one per partition) share connections.
    func clickHouseStore(
        _ options: StoreOptions, writer: String = "embedded", client: ClickHouseClient? = nil, logger: Logger
    ) throws -> ClickHouseStore {
        let topology = try clickHouseTopology(options)
        let client = client ?? ClickHouseClient(topology: topology, logger: logger)
        let retention = try int("clickhouse_retention_days", options.clickhouseRetentionDays, default: 0)
        logger.info(
            "Using the ClickHouse store",
            metadata: ["clickhouse": "\(topology)", "replicated": "\(topology.isReplicated)", "writer": "\(writer)"])
        return try ClickHouseStore(
            client: client, database: string("clickhouse_database", options.clickhouseDatabase, default: "speedflow"),
            writer: writer, retentionDays: retention > 0 ? retention : nil, logger: logger)
    }

    /// The embedded log under `dataDir` and the chosen store.
    func openEngine(
        dataDir: String, store options: StoreOptions, configuration: EngineConfiguration, logger: Logger
    ) throws -> Engine {
        switch try storeKind(options) {
        case .sqlite:
            return try speedflow.openEngine(dataDir: dataDir, configuration: configuration, logger: logger)
        case .clickhouse:
            let log = try DataDirectory.openLogOnly(dataDir, logger: logger)
            let store = try clickHouseStore(options, logger: logger)
            return try Engine(log: log, store: store, configuration: configuration, logger: logger)
        }
    }
}

struct ClickHouseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clickhouse",
        abstract: "ClickHouse store administration.",
        subcommands: [Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or migrate Speedflow's ClickHouse schema on every node (serve also does this at start-up).",
            discussion: """
                Creates the database, then applies each numbered migration a node has not applied yet (recorded in \
                <database>.schema_migrations on that node). With more than one replica in a shard the tables are \
                ReplicatedReplacingMergeTree under /clickhouse/tables/{shard}/<database>/, using each node's \
                {shard} and {replica} macros.
                """)

        @OptionGroup var storeOptions: StoreOptions

        @Option(name: .customLong("config"), help: "JSON configuration file. Env: SPEEDFLOW_CONFIG.")
        var configFile: String?

        func run() async throws {
            let settings = try await Settings.load(configFile: configFile)
            let logger = bootstrapLogging("warning")
            let topology = try settings.clickHouseTopology(storeOptions)
            let client = ClickHouseClient(topology: topology, logger: logger)
            defer { client.shutdown() }
            let schema = ClickHouseSchema(
                database: settings.string("clickhouse_database", storeOptions.clickhouseDatabase, default: "speedflow"),
                replicated: topology.isReplicated)
            let applied = try schema.migrate(client, logger: logger)
            print(applied.isEmpty ? "schema up to date on \(topology.shards.joined().count) node(s)" : applied.joined(separator: "\n"))
        }
    }
}
