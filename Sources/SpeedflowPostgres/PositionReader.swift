import Foundation
import Logging
import PostgresNIO
import SpeedflowModel

/// `poll` and `notify`: reads the table by position `(xid, id)` up to the commit-safe horizon.
///
/// The trap of `WHERE id > last_id`: ids are taken when a row is inserted but become visible when its
/// transaction commits, so id 41 may commit after id 42 was read and be skipped for ever. Here every row carries
/// the id of its inserting transaction (`xid8` column, `DEFAULT pg_current_xact_id()`), rows are read in
/// `(xid, id)` order, and only rows with `xid < pg_snapshot_xmin(pg_current_snapshot())` are taken: every
/// transaction below that horizon has ended (committed or rolled back), so no row can ever appear behind the
/// position. The horizon is taken from the same snapshot the rows are read with. A transaction left open holds
/// the source back (visible as lag), never makes it skip.
final class PositionReader {
    enum ReadResult {
        /// Rows were delivered and the position moved.
        case progress
        /// Nothing past the position.
        case caughtUp
        /// Rows past the position exist but wait behind a transaction that is still open.
        case blocked
    }

    let source: PostgresSource
    let connection: PostgresConnection
    let mapping: ColumnMapping
    var position: SourcePosition
    let selectSQL: String
    let lagSQL: String
    var lastLagCheck = ContinuousClock.now - .seconds(60)
    var configuration: PostgresSourceConfiguration { source.configuration }

    init(source: PostgresSource, connection: PostgresConnection, mapping: ColumnMapping) async throws {
        self.source = source
        self.connection = connection
        self.mapping = mapping
        let c = source.configuration
        position = try source.state.loadPosition(mode: c.mode.rawValue, table: c.table) ?? .start
        let xid = "t." + SQL.identifier(c.xidColumn)
        let id = "t." + SQL.identifier(c.idColumn)
        guard mapping.types[c.xidColumn] != nil else {
            throw PostgresSourceError(
                .schema,
                "\(c.table) has no column \(c.xidColumn) (xid8): run `speedflow source postgres install-trigger --dsn ... --table \(c.table) --apply` (see --help)")
        }
        selectSQL = """
            SELECT \(xid)::text, \(id)::bigint, \(mapping.jsonExpression()), pg_snapshot_xmin(pg_current_snapshot())::text \
            FROM \(c.qualifiedTable) AS t WHERE (\(xid), \(id)) > ($1::text::xid8, $2::bigint) ORDER BY \(xid), \(id) LIMIT $3
            """
        lagSQL = """
            SELECT count(*) FROM (SELECT 1 FROM \(c.qualifiedTable) AS t \
            WHERE (\(xid), \(id)) > ($1::text::xid8, $2::bigint) LIMIT 100000000) s
            """
        source.logger.info("Reading by position", metadata: ["position": "\(position)", "mode": "\(c.mode.rawValue)"])
    }

    /// Reads until done (`exitWhenCaughtUp`) or cancelled.
    func run() async throws -> Bool {
        switch configuration.mode {
        case .notify: return try await runNotify()
        default: return try await runPoll()
        }
    }

    func runPoll() async throws -> Bool {
        while true {
            switch try await readOnce() {
            case .progress: continue
            case .caughtUp:
                if configuration.exitWhenCaughtUp { return true }
                try await Task.sleep(for: .milliseconds(configuration.pollIntervalMs))
            case .blocked:
                try await Task.sleep(for: .milliseconds(configuration.pollIntervalMs))
            }
        }
    }

    /// LISTEN first, then read by position whenever a notification (or the fallback tick) arrives: a lost
    /// notification delays rows by at most `notifyFallbackInterval`, never loses them.
    func runNotify() async throws -> Bool {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let connection = self.connection
        let channel = configuration.channel
        let fallbackMs = configuration.notifyFallbackIntervalMs
        let logger = source.logger
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await connection.listen(on: channel) { notifications in
                        wake.yield()  // listening: the first read may start
                        for try await _ in notifications { wake.yield() }
                    }
                } catch {
                    logger.debug("LISTEN ended", metadata: ["error": "\(error)"])
                    wake.yield()  // the main loop's next query meets the broken connection
                    throw error
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(fallbackMs))
                    wake.yield()
                }
            }
            defer { group.cancelAll() }
            var iterator = wakes.makeAsyncIterator()
            guard await iterator.next() != nil else { throw CancellationError() }
            while true {
                switch try await readOnce() {
                case .progress: continue
                case .blocked: try await Task.sleep(for: .milliseconds(configuration.pollIntervalMs))
                case .caughtUp:
                    if configuration.exitWhenCaughtUp { return true }
                    guard await iterator.next() != nil else { throw CancellationError() }
                }
            }
        }
    }

    func readOnce() async throws -> ReadResult {
        var binds = PostgresBindings(capacity: 3)
        binds.append(String(position.major))
        binds.append(position.minor)
        binds.append(configuration.batchSize)
        let result = try await connection.rows(PostgresQuery(unsafeSQL: selectSQL, binds: binds), logger: source.logger)
        var rows: [PostgresSource.SourceRow] = []
        rows.reserveCapacity(configuration.batchSize)
        var blocked = false
        for row in result {
            let (xidText, id, json, horizonText) = try row.decode((String, Int64, String, String).self)
            guard let xid = UInt64(xidText), let horizon = UInt64(horizonText) else {
                throw PostgresSourceError(.decoding, "unexpected xid8 text '\(xidText)' / '\(horizonText)'")
            }
            if xid >= horizon {
                blocked = true
                continue  // keep draining the stream
            }
            if blocked { continue }
            rows.append(.init(position: SourcePosition(major: xid, minor: id), rowId: String(id), json: json))
        }
        if !rows.isEmpty {
            try await source.deliver(rows)
            position = rows.last!.position
            try source.savePosition(position)
        }
        try await updateLag()
        if !rows.isEmpty { return .progress }
        return blocked ? .blocked : .caughtUp
    }

    /// Rows past the position (committed or waiting), at most every 2 s: it is a count over the index.
    func updateLag() async throws {
        let now = ContinuousClock.now
        guard now - lastLagCheck >= .seconds(2) else { return }
        lastLagCheck = now
        var binds = PostgresBindings(capacity: 2)
        binds.append(String(position.major))
        binds.append(position.minor)
        let result = try await connection.rows(PostgresQuery(unsafeSQL: lagSQL, binds: binds), logger: source.logger)
        for row in result { source.metrics.lagRows.record(try row.decode(Int64.self)) }
    }
}
