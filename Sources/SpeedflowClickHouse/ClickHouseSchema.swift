import Logging

/// The ClickHouse schema, as numbered migrations applied on every node (`speedflow clickhouse migrate`, and at
/// start-up). Each node records what it applied in `<db>.schema_migrations`.
///
/// Kept to SQL that ClickHouse 18.16 (Debian 12) and current releases both accept: no TTL clauses (19.6+),
/// no `LowCardinality` defaults, no `SimpleAggregateFunction` (19.8+), no query parameters (19.x), no
/// `ON CLUSTER` DDL (needs a distributed_ddl setup): DDL is sent to each node with `{shard}`/`{replica}` macros.
public struct ClickHouseSchema: Sendable {
    public let database: String
    public let replicated: Bool

    public init(database: String, replicated: Bool) {
        self.database = database
        self.replicated = replicated
    }

    func engine(_ table: String, _ kind: String = "ReplacingMergeTree", version: String? = nil) -> String {
        let args = version.map { ", \($0)" } ?? ""
        if replicated {
            return "Replicated\(kind)('/clickhouse/tables/{shard}/\(database)/\(table)', '{replica}'\(args))"
        }
        return version.map { "\(kind)(\($0))" } ?? kind
    }

    /// In order; never edit an applied one, add a new one.
    public var migrations: [(version: Int, name: String, sql: String)] {
        [
            (1, "bucket deltas: per (camera, 5-minute bucket, writer, flush) the delta aggregate and its identities", """
                CREATE TABLE IF NOT EXISTS \(database).bucket_delta (
                    day Date,
                    kvfv_id String,
                    bucket Int64,
                    writer String,
                    flush UInt64,
                    events UInt64,
                    speed_sum Float64,
                    speed_min Float64,
                    speed_max Float64,
                    state String,
                    ids Array(UInt64)
                ) ENGINE = \(engine("bucket_delta"))
                PARTITION BY day
                ORDER BY (kvfv_id, bucket, writer, flush)
                """),
            (2, "cameras: newest event and arrival times, kept per camera", """
                CREATE TABLE IF NOT EXISTS \(database).camera (
                    kvfv_id String,
                    last_event_ms Int64,
                    last_arrival_ms Int64
                ) ENGINE = \(engine("camera", version: "last_arrival_ms"))
                ORDER BY kvfv_id
                """),
            (3, "raw events: every counted event, by day of event time, per-camera time order", """
                CREATE TABLE IF NOT EXISTS \(database).events (
                    day Date,
                    kvfv_id String,
                    ts_ms Int64,
                    identity UInt64,
                    speed Float64,
                    event_id Nullable(String),
                    lane Nullable(Int32),
                    plate Nullable(String),
                    extra Nullable(String)
                ) ENGINE = \(engine("events"))
                PARTITION BY day
                ORDER BY (kvfv_id, ts_ms, identity)
                """),
        ]
    }

    /// Creates the database and applies missing migrations on every reachable node. A node that is down is
    /// skipped (and migrated on a later start; a replica created late fetches its shard's parts from its peers);
    /// a shard with no reachable node is an error. Returns what was applied.
    public func migrate(_ client: ClickHouseClient, logger: Logger) throws -> [String] {
        var applied: [String] = []
        for (index, shard) in client.topology.shards.enumerated() {
            var reached = 0
            var lastError: (any Error)?
            for node in shard {
                do {
                    applied += try migrate(node: node, client: client, logger: logger)
                    reached += 1
                } catch let error as ClickHouseError where error.kind == .unreachable {
                    logger.warning("ClickHouse node unreachable; not migrated", metadata: ["node": "\(node)", "error": "\(error)"])
                    lastError = error
                }
            }
            if reached == 0, let lastError {
                throw ClickHouseError(kind: .unreachable, message: "no node of shard \(index + 1) reachable: \(lastError)")
            }
        }
        return applied
    }

    func migrate(node: String, client: ClickHouseClient, logger: Logger) throws -> [String] {
        func run(_ sql: String) throws -> [UInt8] {
            try client.call(node: node, sql: sql)
        }
        var applied: [String] = []
        _ = try run("CREATE DATABASE IF NOT EXISTS \(database)")
        _ = try run("""
            CREATE TABLE IF NOT EXISTS \(database).schema_migrations (version UInt32, name String, applied_at DateTime)
            ENGINE = MergeTree ORDER BY version
            """)
        let done = Set(
            String(decoding: try run("SELECT version FROM \(database).schema_migrations FORMAT TabSeparated"), as: UTF8.self)
                .split(separator: "\n").compactMap { Int($0) })
        for m in migrations where !done.contains(m.version) {
            _ = try run(m.sql)
            _ = try run("INSERT INTO \(database).schema_migrations SELECT \(m.version), \(sqlString(m.name)), now()")
            logger.info("ClickHouse migration applied", metadata: ["node": "\(node)", "version": "\(m.version)", "name": "\(m.name)"])
            applied.append("\(node): \(m.version) \(m.name)")
        }
        return applied
    }
}
