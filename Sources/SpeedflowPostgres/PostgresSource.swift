import Foundation
import Logging
import Metrics
import NIOCore
import PostgresNIO
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowModel
import Synchronization

/// Streams camera events out of a PostgreSQL table into the engine, exactly once.
///
/// Exactly once = at-least-once delivery + deterministic identities: every row carries a stable `event_id`
/// (its mapped column, else `pg:<table>:<id>`), a batch is handed to `Intake.ingest`, and only once that returns
/// (the events are fsync'd in the log) does the position move (position file, or the replication slot). A crash
/// in between re-reads the batch; the engine's identity dedup counts those rows as duplicates, not twice.
public final class PostgresSource: Service {
    public let configuration: PostgresSourceConfiguration
    let intake: Intake
    let state: SourceStateFiles
    let logger: Logger
    let metrics: SourceMetrics
    /// Totals since start, for the command's summary and for tests of the service in process.
    public let totals = Mutex(Totals())
    /// Position of the last rejected row on record: rows re-read after a crash are not recorded twice.
    let lastRejected: Mutex<SourcePosition?>

    public struct Totals: Sendable {
        public var rowsRead = 0
        public var accepted = 0
        public var duplicates = 0
        public var rejected = 0
        public var ignoredChanges = 0
    }

    public init(configuration: PostgresSourceConfiguration, intake: Intake, dataDir: String, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        self.intake = intake
        self.state = try SourceStateFiles(dataDir: dataDir, sourceName: configuration.sourceName)
        self.lastRejected = Mutex(state.lastRejectedPosition())
        var logger = logger
        logger[metadataKey: "source"] = "postgres:\(configuration.sourceName)"
        self.logger = logger
        self.metrics = SourceMetrics(source: configuration.sourceName)
    }

    /// Runs until graceful shutdown (or, with `exitWhenCaughtUp`, until a read finds nothing new); reconnects
    /// with backoff after any connection or query error.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await self.runLoop()
        }
    }

    func runLoop() async throws {
        var backoffMs: Int64 = 100
        while !Task.isCancelled {
            do {
                let connection = try await connect()
                backoffMs = 100
                let finished: Bool
                do {
                    finished = try await session(connection)
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
                if finished { return }
            } catch is CancellationError {
                return
            } catch let error as IngestError where error.code == .shuttingDown {
                return
            } catch let error as PostgresSourceError where error.code == .configuration || error.code == .schema || error.code == .position {
                metrics.errors(.configuration)
                logger.error("PostgreSQL source cannot run", metadata: ["error": "\(error)"])
                throw error
            } catch {
                if Task.isCancelled { return }
                metrics.errors(.connection)
                logger.warning(
                    "PostgreSQL source error; reconnecting",
                    metadata: ["error": "\(String(reflecting: error))", "retry.ms": "\(backoffMs)"])
                try? await Task.sleep(for: .milliseconds(backoffMs))
                backoffMs = min(backoffMs * 2, 5000)
            }
        }
    }

    func connect() async throws -> PostgresConnection {
        let dsn = try PostgresDSN(configuration.dsn)
        var pg = PostgresConnection.Configuration(
            host: dsn.host, port: dsn.port, username: dsn.user, password: dsn.password, database: dsn.database,
            tls: try dsn.tls())
        pg.options.additionalStartupParameters = [
            ("application_name", configuration.applicationName), ("TimeZone", "UTC"), ("DateStyle", "ISO"),
        ]
        let connection = try await PostgresConnection.connect(configuration: pg, id: 1, logger: logger)
        logger.info(
            "PostgreSQL source connected",
            metadata: ["pg.host": "\(dsn.host):\(dsn.port)", "mode": "\(configuration.mode.rawValue)", "pg.sslmode": "\(dsn.sslMode.rawValue)"])
        return connection
    }

    /// One connection's worth of work; `true` when the source is done (`exitWhenCaughtUp`).
    func session(_ connection: PostgresConnection) async throws -> Bool {
        let mapping = try ColumnMapping(configuration: configuration, tableColumns: try await tableColumns(connection))
        switch configuration.mode {
        case .poll, .notify:
            let reader = try await PositionReader(source: self, connection: connection, mapping: mapping)
            return try await reader.run()
        case .logical:
            let reader = try await LogicalReader(source: self, connection: connection, mapping: mapping)
            return try await reader.run()
        }
    }

    func tableColumns(_ connection: PostgresConnection) async throws -> [String: String] {
        let rows = try await connection.rows(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = \(configuration.schemaName) AND table_name = \(configuration.tableName)",
            logger: logger)
        var columns: [String: String] = [:]
        for row in rows {
            let (name, type) = try row.decode((String, String).self)
            columns[name] = type
        }
        return columns
    }

    // MARK: - Delivery (shared by every mode)

    /// One row or change read: where it is, its key, and the event as a JSON object's text.
    struct SourceRow {
        var position: SourcePosition
        var rowId: String
        var json: String
    }

    /// Validates like `POST /events`, makes the valid events durable, records rejected rows, and only then
    /// lets the caller move the position.
    func deliver(_ rows: [SourceRow]) async throws {
        guard !rows.isEmpty else { return }
        metrics.rowsRead.increment(by: rows.count)
        var body = "["
        body.reserveCapacity(rows.count * 200)
        for (i, row) in rows.enumerated() {
            if i > 0 { body += "," }
            body += row.json
        }
        body += "]"
        let nowMs = intake.now
        let batch = try EventBatch.decode(Data(body.utf8), ndjson: false, policy: intake.policy, nowMs: nowMs)
        let outcome = try await ingest(batch, arrivalMs: nowMs)

        // Rejections (already in the statistics and camera health, by the intake, as for HTTP): in metrics and
        // logs, and in the persisted record.
        if !batch.rejections.isEmpty {
            let last = lastRejected.withLock { $0 }
            let at = Timestamp.format(nowMs)
            var records: [RejectedRow] = []
            for r in batch.rejections {
                let row = rows[r.index]
                metrics.rejected(r.reason)
                if let last, row.position <= last { continue }  // already recorded before a crash
                records.append(RejectedRow(position: row.position, rowId: row.rowId, reason: r.reason.rawValue, field: r.field, at: at))
                logger.warning(
                    "Row rejected",
                    metadata: ["row.id": "\(row.rowId)", "row.position": "\(row.position)", "reason": "\(r.reason.rawValue)", "field": "\(r.field ?? "")"])
            }
            do {
                try state.appendRejected(records)
                if let newest = records.last?.position { lastRejected.withLock { $0 = newest } }
            } catch {
                metrics.errors(.position)
                throw error
            }
        }
        metrics.accepted.increment(by: outcome.accepted)
        metrics.duplicates.increment(by: outcome.duplicates)
        totals.withLock {
            $0.rowsRead += rows.count
            $0.accepted += outcome.accepted
            $0.duplicates += outcome.duplicates
            $0.rejected += batch.rejections.count
        }
    }

    /// `Intake.ingest`, waiting out a full intake queue.
    func ingest(_ batch: EventBatch, arrivalMs: Int64) async throws -> IngestOutcome {
        var delayMs = 10
        while true {
            do {
                return try await intake.ingest(batch, arrivalMs: arrivalMs, writer: "source:postgres")
            } catch {
                switch error.code {
                case .overloaded:
                    try await Task.sleep(for: .milliseconds(delayMs))
                    delayMs = min(delayMs * 2, 1000)
                default:
                    metrics.errors(.ingest)
                    throw error
                }
            }
        }
    }

    func noteIgnored(_ action: String) {
        metrics.ignored(action)
        totals.withLock { $0.ignoredChanges += 1 }
    }

    func savePosition(_ position: SourcePosition) throws {
        do {
            try state.savePosition(position, mode: configuration.mode.rawValue, table: configuration.table)
        } catch {
            metrics.errors(.position)
            throw error
        }
    }
}

extension PostgresConnection {
    /// Runs a query and collects every row before returning.
    ///
    /// Why not the async row sequence: in PostgresNIO 1.33.2 its back-pressure state traps
    /// (`RowStreamStateMachine.channelReadComplete`, "How can we receive a body part…") when the server closes
    /// the connection while rows wait for demand — exactly what `pg_terminate_backend` does. Collecting on the
    /// event loop always signals demand at once. Batches are bounded by `batchSize`, so memory is too.
    ///
    /// It also fails as soon as the connection closes: a query written to a connection the server has just
    /// closed may otherwise never complete.
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        guard !isClosed else { throw PostgresSourceError(.connectionClosed, "the connection is closed") }
        let answer = eventLoop.makePromise(of: PostgresQueryResult.self)
        let settled = Mutex(false)
        let settle: @Sendable (Result<PostgresQueryResult, any Error>) -> Void = { result in
            guard settled.withLock({ done in defer { done = true }; return !done }) else { return }
            answer.completeWith(result)
        }
        let result: EventLoopFuture<PostgresQueryResult> = self.query(query, logger: logger)
        result.whenComplete(settle)
        closeFuture.whenComplete { _ in settle(.failure(PostgresSourceError(.connectionClosed, "the connection closed"))) }
        // Shutdown cancels the source's task: give up the query (and the connection) instead of waiting it out.
        return try await withTaskCancellationHandler {
            try await answer.futureResult.get().rows
        } onCancel: {
            settle(.failure(CancellationError()))
            let _: EventLoopFuture<Void> = self.close()
        }
    }
}
