import ArgumentParser
import Foundation
import Logging
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowLog
import SpeedflowRuntime
import SpeedflowStore

/// Where aggregates live: `--store sqlite` (embedded, the default) or `--store clickhouse`.
struct StoreOptions: ParsableArguments {
    @Option(help: """
        Where bucket aggregates, dedup identities (and, for clickhouse, raw events) are stored: sqlite (embedded, \
        in the data dir) or clickhouse. The log stays in the data dir either way. Default: \(StoreConfiguration().kind.rawValue). Env: SPEEDFLOW_STORE.
        """)
    var store: String?

    @Option(help: """
        ClickHouse HTTP interface URL(s). One URL for a single node; for a cluster, shards separated by ';' and \
        each shard's replicas by ',', e.g. "http://h1:8123,http://h2:8123;http://h3:8123,http://h4:8123" \
        (replicated tables on ZooKeeper when a shard has two replicas). Default: \(StoreConfiguration().clickHouseURL).
        """)
    var clickhouseUrl: String?

    @Option(help: "ClickHouse database for Speedflow's tables. Default: \(StoreConfiguration().clickHouseDatabase).")
    var clickhouseDatabase: String?

    @Option(help: "Drop ClickHouse day partitions (aggregates, identities, raw events) older than this many days. Default: keep.")
    var clickhouseRetentionDays: Int?

    @Option(help: "ClickHouse user (HTTP basic authentication; use https:// URLs to keep it private on the network). Its password comes from SPEEDFLOW_CLICKHOUSE_PASSWORD or --clickhouse-password-file, never a flag. Env: SPEEDFLOW_CLICKHOUSE_USER.")
    var clickhouseUser: String?

    @Option(help: "File holding the ClickHouse user's password (one line). Env: SPEEDFLOW_CLICKHOUSE_PASSWORD_FILE.")
    var clickhousePasswordFile: String?
}

extension Settings {
    /// The store configuration: flags, environment, file, then `StoreConfiguration`'s defaults.
    func store(_ options: StoreOptions) throws -> StoreConfiguration {
        let d = StoreConfiguration()
        var c = d
        let raw = string("store", options.store, default: d.kind.rawValue)
        guard let kind = StoreConfiguration.Kind(rawValue: raw) else {
            throw ValidationError("--store must be \(StoreConfiguration.Kind.allCases.map(\.rawValue).joined(separator: " or ")), not '\(raw)'")
        }
        c.kind = kind
        c.clickHouseURL = string("clickhouse_url", options.clickhouseUrl, default: d.clickHouseURL)
        do {
            _ = try ClickHouseTopology(parsing: c.clickHouseURL)
        } catch {
            throw ValidationError("--clickhouse-url: \(error)")
        }
        c.clickHouseDatabase = string("clickhouse_database", options.clickhouseDatabase, default: d.clickHouseDatabase)
        let retention = try int("clickhouse_retention_days", options.clickhouseRetentionDays, default: d.clickHouseRetentionDays ?? 0)
        c.clickHouseRetentionDays = retention > 0 ? retention : nil
        if let user = options.clickhouseUser ?? reader.string(forKey: "clickhouse_user") {
            var password = reader.string(forKey: "clickhouse_password") ?? ""
            if let file = options.clickhousePasswordFile ?? reader.string(forKey: "clickhouse_password_file") {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("cannot read the ClickHouse password file \(file)")
                }
                password = text.trimmingCharacters(in: .newlines)
            }
            c.clickHouseCredentials = ClickHouseCredentials(user: user, password: password)
        }
        return c
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
            let logger = Observability.bootstrapLogging("warning")
            let store = try settings.store(storeOptions)
            let topology = try ClickHouseTopology(parsing: store.clickHouseURL)
            let client = ClickHouseClient(topology: topology, credentials: store.clickHouseCredentials, logger: logger)
            defer { client.shutdown() }
            let schema = ClickHouseSchema(database: store.clickHouseDatabase, replicated: topology.isReplicated)
            let applied = try schema.migrate(client, logger: logger)
            print(applied.isEmpty ? "schema up to date on \(topology.shards.joined().count) node(s)" : applied.joined(separator: "\n"))
        }
    }
}
