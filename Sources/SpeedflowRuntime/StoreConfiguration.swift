import Logging
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowLog
import SpeedflowStore

/// Where aggregates live — `sqlite` (embedded, in the data directory) or `clickhouse` — and the one place a
/// store is opened for a role. Adding a store kind means a case here and nothing in the roles.
public struct StoreConfiguration: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case sqlite, clickhouse }

    public var kind: Kind = .sqlite
    /// ClickHouse HTTP interface: one URL, or shards separated by `;` with each shard's replicas by `,`.
    public var clickHouseURL = "http://127.0.0.1:8123"
    public var clickHouseDatabase = "speedflow"
    /// Day partitions older than this are dropped (`nil`: kept).
    public var clickHouseRetentionDays: Int?
    /// ClickHouse user and password (`nil`: ClickHouse's `default` user without a password).
    public var clickHouseCredentials: ClickHouseCredentials?

    public init() {}

    public static let defaults = StoreConfiguration()
}

/// Which store a role opens, and so which file or which ClickHouse writer name it uses.
public enum StoreSlot: Sendable {
    /// `serve`'s store, beside its log in the data directory (ClickHouse writer `embedded`).
    case embedded
    /// The store of one Kafka partition an aggregator owns (writer `<topic>/<partition>`).
    case partition(topic: String, partition: Int32)
    /// What an API node reads: the embedded store, or ClickHouse.
    case reader
}

/// Opens stores of one configuration; ClickHouse connections are shared by every store it opens.
public final class StoreOpener: Sendable {
    public let configuration: StoreConfiguration
    let dataDir: String
    let client: ClickHouseClient?
    let logger: Logger

    public init(_ configuration: StoreConfiguration, dataDir: String, logger: Logger) throws {
        self.configuration = configuration
        self.dataDir = dataDir
        self.logger = logger
        client = configuration.kind == .clickhouse
            ? ClickHouseClient(
                topology: try ClickHouseTopology(parsing: configuration.clickHouseURL), credentials: configuration.clickHouseCredentials,
                logger: logger) : nil
    }

    /// The store for `slot` — the one switch over store kinds.
    public func open(_ slot: StoreSlot) throws -> any StoreWriter {
        switch configuration.kind {
        case .sqlite:
            let path: String
            switch slot {
            case .embedded, .reader: path = DataDirectory.storeFile(dataDir)
            case .partition(let topic, let partition):
                path = try DataDirectory.partitionStoreFile(dataDir, topic: topic, partition: partition)
            }
            return try SQLiteStore(path: path, logger: logger)
        case .clickhouse:
            let writer: String
            switch slot {
            case .embedded: writer = "embedded"
            case .partition(let topic, let partition): writer = "\(topic)/\(partition)"
            case .reader: writer = "api"
            }
            logger.info(
                "Using the ClickHouse store",
                metadata: ["clickhouse": "\(configuration.clickHouseURL)", "writer": "\(writer)"])
            return try ClickHouseStore(
                client: try clickHouseClient(), database: configuration.clickHouseDatabase, writer: writer,
                retentionDays: configuration.clickHouseRetentionDays, logger: logger)
        }
    }

    /// `serve`'s log and store: the data directory's log (created, upgraded if older: its SQLite store is
    /// backed up before anything opens it) and the configured store.
    public func openEmbedded() throws -> (log: SegmentLog, store: any StoreWriter) {
        let log = try DataDirectory.openLog(dataDir, logger: logger)
        return (log, try open(.embedded))
    }

    private func clickHouseClient() throws -> ClickHouseClient {
        guard let client else { throw ClickHouseError(kind: .configuration, message: "the store is not ClickHouse") }
        return client
    }

    public func shutdown() { client?.shutdown() }
}
