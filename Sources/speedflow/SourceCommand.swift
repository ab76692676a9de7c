import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowPostgres

/// `speedflow source …`: pull camera events out of another system into the data directory.
struct SourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "source",
        abstract: "Stream camera events from another system into Speedflow, exactly once.",
        subcommands: [PostgresSourceCommand.self])
}

struct PostgresSourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres",
        abstract: "Stream camera events out of a PostgreSQL table (poll, notify or logical).",
        discussion: """
            `speedflow source postgres --dsn postgres://user:pw@host/db --table passes --mode poll` reads the table \
            into the data directory (engine and log, no HTTP; stop `serve` first, or run the source inside \
            `serve` with its --source-postgres-* options). `install-trigger` prints (or with --apply runs) the SQL \
            the table needs for the chosen mode.

            Modes: poll (read by position every --poll-interval), notify (a trigger's NOTIFY wakes the reader, \
            which still reads by position), logical (wal2json replication slot; inserts only, updates/deletes are \
            counted and ignored). Exactly once: rows carry a stable event_id (the mapped column, else \
            pg:<table>:<id>) and the position moves only after the events are durable; a re-read row is a \
            duplicate. Rows failing validation go to <data-dir>/sources/postgres-<name>.rejected.ndjson with \
            their reason code and position.
            """,
        subcommands: [PostgresRunCommand.self, PostgresInstallTriggerCommand.self],
        defaultSubcommand: PostgresRunCommand.self)
}

struct PostgresRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Read the table into the data directory (the default subcommand of `source postgres`).",
        discussion: """
            Runs until SIGTERM/SIGINT, or with --exit-when-caught-up until a read finds nothing new, then prints \
            rows read, accepted, duplicates, rejected and rows/s.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var source: PostgresSourceFlags

    @Flag(help: "Stop once a read finds nothing new (backfills, benchmarks), printing a summary.")
    var exitWhenCaughtUp = false

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = Observability.bootstrapLogging(settings.logLevel(storage))
        guard var configuration = try source.values.resolve(settings) else {
            throw ValidationError("--dsn and --table are required (or SPEEDFLOW_SOURCE_POSTGRES_DSN / _TABLE)")
        }
        configuration.exitWhenCaughtUp = exitWhenCaughtUp
        let dataDir = settings.dataDir(storage)
        let (log, store) = try DataDirectory.open(dataDir, logger: logger)
        let engine = try Engine(log: log, store: store, configuration: try settings.engine(storage), logger: logger)
        try engine.recover()
        let postgres = try PostgresSource(configuration: configuration, intake: engine.intake, dataDir: dataDir, logger: logger)
        let started = ContinuousClock.now
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: EngineService(engine: engine)),
                    .init(service: postgres, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - started).components.seconds)
        let t = postgres.totals.withLock { $0 }
        let rate = seconds > 0 ? Double(t.rowsRead) / seconds : 0
        print(
            "rows read \(t.rowsRead), accepted \(t.accepted), duplicates \(t.duplicates), rejected \(t.rejected), "
                + "ignored changes \(t.ignoredChanges), \(String(format: "%.2f", seconds)) s, \(Int(rate)) rows/s")
    }
}

struct PostgresInstallTriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-trigger",
        abstract: "Print (or --apply) the SQL the table needs for --mode.",
        discussion: """
            poll: an xid8 column (default speedflow_xid, DEFAULT pg_current_xact_id()) recording the inserting \
            transaction, and an index on (xid, id): the reader takes only rows of transactions that have ended, so \
            ids committed out of order are never skipped. notify: the same, plus a statement-level AFTER INSERT \
            trigger calling pg_notify('speedflow_<table>', ''). logical: the wal2json replication slot.
            """)

    @OptionGroup var source: PostgresSourceFlags

    @Flag(help: "Run the SQL against --dsn instead of only printing it.")
    var apply = false

    func run() async throws {
        let settings = try await Settings.load(configFile: nil)
        let logger = Observability.bootstrapLogging("warning")
        guard let configuration = try source.values.resolve(settings) else {
            throw ValidationError("--dsn and --table are required")
        }
        print(SourceSetupSQL.script(for: configuration), terminator: "")
        if apply {
            try await SourceSetupSQL.apply(configuration, logger: logger)
            FileHandle.standardError.write(Data("applied to \(configuration.table)\n".utf8))
        }
    }
}

/// The source's defaults, as `PostgresSourceConfiguration` has them (shown by `--help`).
private let pgDefaults = PostgresSourceConfiguration(dsn: "", table: "")

/// The source's options as given (nil = not given), whatever their flag names. They are declared twice, plain
/// (`source postgres`) and prefixed `--source-postgres-` (inside `serve`): ArgumentParser has no prefixed option
/// groups; both resolve here, against the same defaults.
struct PostgresSourceValues {
    var dsn, table, mode, map, idColumn, xidColumn, pollInterval, notifyFallbackInterval, slot, applicationName, name: String?
    var batchSize: Int?

    /// Flag, then `SPEEDFLOW_SOURCE_POSTGRES_*`, then the config file key `source_postgres_*`. `nil`: no DSN, no source.
    func resolve(_ settings: Settings) throws -> PostgresSourceConfiguration? {
        func key(_ k: String) -> String { "source_postgres_" + k }
        let dsnValue = settings.string(key("dsn"), dsn, default: "")
        guard !dsnValue.isEmpty else { return nil }
        let tableValue = settings.string(key("table"), table, default: "")
        guard !tableValue.isEmpty else { throw ValidationError("a PostgreSQL source needs a table (--table)") }
        var c = PostgresSourceConfiguration(dsn: dsnValue, table: tableValue)
        let modeText = settings.string(key("mode"), mode, default: c.mode.rawValue)
        guard let m = PostgresSourceConfiguration.Mode(rawValue: modeText) else {
            throw ValidationError("mode must be poll, notify or logical, not '\(modeText)'")
        }
        c.mode = m
        c.columns = try PostgresSourceConfiguration.parseColumnMap(settings.string(key("map"), map, default: ""))
        c.idColumn = settings.string(key("id_column"), idColumn, default: c.idColumn)
        c.xidColumn = settings.string(key("xid_column"), xidColumn, default: c.xidColumn)
        c.batchSize = try settings.int(key("batch_size"), batchSize, default: c.batchSize)
        c.pollIntervalMs = try settings.durationMs(key("poll_interval"), pollInterval, default: c.pollIntervalMs)
        c.notifyFallbackIntervalMs = try settings.durationMs(key("notify_fallback_interval"), notifyFallbackInterval, default: c.notifyFallbackIntervalMs)
        let slotValue = settings.string(key("slot"), slot, default: "")
        c.slot = slotValue.isEmpty ? nil : slotValue
        c.applicationName = settings.string(key("application_name"), applicationName, default: c.applicationName)
        let nameValue = settings.string(key("name"), name, default: "")
        c.name = nameValue.isEmpty ? nil : nameValue
        try c.validate()
        return c
    }
}

/// `speedflow source postgres` options (plain names).
struct PostgresSourceFlags: ParsableArguments {
    @Option(help: "PostgreSQL URL, postgres://user:password@host:5432/database. Env: SPEEDFLOW_SOURCE_POSTGRES_DSN.")
    var dsn: String?
    @Option(help: "Table to read, table or schema.table. Env: SPEEDFLOW_SOURCE_POSTGRES_TABLE.")
    var table: String?
    @Option(help: "poll | notify | logical. Default: \(pgDefaults.mode.rawValue).")
    var mode: String?
    @Option(help: "Column for each event field, e.g. kvfv_id=camera,timestamp=passed_at,vehicle_speed=speed_kmh. Fields: kvfv_id, timestamp (timestamptz; timestamp = UTC; or RFC 3339 text), vehicle_speed, event_id, lane, plate_number. Unlisted fields use a same-named column if there is one. Default: none.")
    var map: String?
    @Option(help: "Unique integer key of the table; position tie-breaker and fallback event_id pg:<table>:<id>. Default: \(pgDefaults.idColumn).")
    var idColumn: String?
    @Option(help: "xid8 column recording the inserting transaction (poll, notify; see install-trigger). Default: \(pgDefaults.xidColumn).")
    var xidColumn: String?
    @Option(help: "Rows per read and per durable ingest. Default: \(pgDefaults.batchSize).")
    var batchSize: Int?
    @Option(help: "Wait between reads when caught up (poll), or while rows wait behind an open transaction. Default: \(Settings.formatDuration(pgDefaults.pollIntervalMs)).")
    var pollInterval: String?
    @Option(help: "notify: read anyway after this long without a notification. Default: \(Settings.formatDuration(pgDefaults.notifyFallbackIntervalMs)).")
    var notifyFallbackInterval: String?
    @Option(help: "logical: replication slot (wal2json), created if missing. Default: speedflow_<table>.")
    var slot: String?
    @Option(help: "application_name of the source's connection. Default: \(pgDefaults.applicationName).")
    var applicationName: String?
    @Option(help: "Name of this source: position file <data-dir>/sources/postgres-<name>.position.json, metric label. Default: the table name.")
    var name: String?

    var values: PostgresSourceValues {
        PostgresSourceValues(
            dsn: dsn, table: table, mode: mode, map: map, idColumn: idColumn, xidColumn: xidColumn,
            pollInterval: pollInterval, notifyFallbackInterval: notifyFallbackInterval, slot: slot,
            applicationName: applicationName, name: name, batchSize: batchSize)
    }
}

/// The same options inside `speedflow serve`, prefixed `--source-postgres-`.
struct PostgresSourceOptions: ParsableArguments {
    @Option(help: "Run a PostgreSQL source inside serve: postgres://user:password@host:5432/database (see `speedflow source postgres --help`). Env: SPEEDFLOW_SOURCE_POSTGRES_DSN.")
    var sourcePostgresDsn: String?
    @Option(help: "Source table, table or schema.table.")
    var sourcePostgresTable: String?
    @Option(help: "poll | notify | logical. Default: \(pgDefaults.mode.rawValue).")
    var sourcePostgresMode: String?
    @Option(help: "Column for each event field, e.g. kvfv_id=camera,timestamp=passed_at,vehicle_speed=speed_kmh (unlisted fields: same-named column).")
    var sourcePostgresMap: String?
    @Option(help: "Unique integer key column. Default: \(pgDefaults.idColumn).")
    var sourcePostgresIdColumn: String?
    @Option(help: "xid8 position column (poll, notify). Default: \(pgDefaults.xidColumn).")
    var sourcePostgresXidColumn: String?
    @Option(help: "Rows per read. Default: \(pgDefaults.batchSize).")
    var sourcePostgresBatchSize: Int?
    @Option(help: "Wait between reads when caught up. Default: \(Settings.formatDuration(pgDefaults.pollIntervalMs)).")
    var sourcePostgresPollInterval: String?
    @Option(help: "notify: read anyway after this long without a notification. Default: \(Settings.formatDuration(pgDefaults.notifyFallbackIntervalMs)).")
    var sourcePostgresNotifyFallbackInterval: String?
    @Option(help: "logical: replication slot. Default: speedflow_<table>.")
    var sourcePostgresSlot: String?
    @Option(help: "application_name of the source's connection. Default: \(pgDefaults.applicationName).")
    var sourcePostgresApplicationName: String?
    @Option(help: "Name of the source (position file, metric label). Default: the table name.")
    var sourcePostgresName: String?

    var values: PostgresSourceValues {
        PostgresSourceValues(
            dsn: sourcePostgresDsn, table: sourcePostgresTable, mode: sourcePostgresMode, map: sourcePostgresMap,
            idColumn: sourcePostgresIdColumn, xidColumn: sourcePostgresXidColumn,
            pollInterval: sourcePostgresPollInterval, notifyFallbackInterval: sourcePostgresNotifyFallbackInterval,
            slot: sourcePostgresSlot, applicationName: sourcePostgresApplicationName, name: sourcePostgresName,
            batchSize: sourcePostgresBatchSize)
    }
}
