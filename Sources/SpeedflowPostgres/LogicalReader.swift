import Foundation
import Logging
import PostgresNIO
import SpeedflowModel

/// `logical`: logical decoding through a replication slot with the wal2json plugin (format 2), via the SQL
/// slot functions.
///
/// Changes are *peeked* (`pg_logical_slot_peek_changes`, whole transactions, in commit order), the inserts of
/// the table are delivered, and only once they are durable is the slot advanced (`pg_replication_slot_advance`)
/// to the end of the last transaction read. A crash in between peeks the same transactions again; their rows'
/// identities make them duplicates. UPDATE, DELETE and TRUNCATE are not applied (the aggregate is append-only:
/// an event once counted stays counted); each is counted in `speedflow_source_postgres_changes_ignored_total`.
final class LogicalReader {
    let source: PostgresSource
    let connection: PostgresConnection
    let mapping: ColumnMapping
    var configuration: PostgresSourceConfiguration { source.configuration }

    init(source: PostgresSource, connection: PostgresConnection, mapping: ColumnMapping) async throws {
        self.source = source
        self.connection = connection
        self.mapping = mapping
        try await ensureSlot()
    }

    /// Creates the slot if it is missing. Rows committed before the slot existed are not in its stream.
    func ensureSlot() async throws {
        let slot = configuration.slotName
        let existing = try await connection.rows(
            "SELECT plugin::text, database::text FROM pg_replication_slots WHERE slot_name = \(slot)", logger: source.logger)
        var found: (String, String)?
        for row in existing { found = try row.decode((String, String).self) }
        if let (plugin, _) = found {
            guard plugin == "wal2json" else {
                throw PostgresSourceError(.schema, "replication slot \(slot) uses plugin \(plugin), not wal2json")
            }
            return
        }
        source.logger.warning(
            "Creating logical replication slot; rows committed before it are not streamed (backfill them with --mode poll)",
            metadata: ["slot": "\(slot)"])
        _ = try await connection.rows(
            "SELECT pg_create_logical_replication_slot(\(slot), 'wal2json')", logger: source.logger)
    }

    func run() async throws -> Bool {
        while true {
            let (delivered, empty) = try await readOnce()
            if delivered { continue }
            if empty && configuration.exitWhenCaughtUp { return true }
            try await Task.sleep(for: .milliseconds(configuration.pollIntervalMs))
        }
    }

    /// One peek: `(true, _)` when transactions were consumed (the slot advanced), `(_, true)` when the slot
    /// had nothing.
    ///
    /// PostgreSQL itself turns each wal2json insert into the event's JSON object (the same expression as the
    /// row read of poll/notify, over the change's columns), so Swift only sees one short text per change.
    func readOnce() async throws -> (Bool, Bool) {
        let c = configuration
        var binds = PostgresBindings(capacity: 5)
        binds.append(c.slotName)
        binds.append(Int32(clamping: c.batchSize))
        binds.append(wal2jsonTableName(c))
        binds.append(c.schemaName)
        binds.append(c.tableName)
        let ours = "x.j ->> 'schema' = $4 AND x.j ->> 'table' = $5"
        let sql = """
            SELECT c.lsn::text, x.j ->> 'action', (\(ours)),
              CASE WHEN x.j ->> 'action' = 'I' AND \(ours) THEN \(mapping.jsonExpression(.change)) END,
              CASE WHEN x.j ->> 'action' = 'I' AND \(ours) THEN y.cols ->> \(SQL.literal(c.idColumn)) END
            FROM pg_logical_slot_peek_changes($1, NULL, $2, 'format-version', '2', 'include-transaction', 'true',
                   'include-types', 'false', 'add-tables', $3) WITH ORDINALITY AS c(lsn, xid, data, n)
            CROSS JOIN LATERAL (SELECT c.data::jsonb AS j OFFSET 0) x  -- OFFSET 0: parse once, not per reference
            CROSS JOIN LATERAL (SELECT jsonb_object_agg(e ->> 'name', e -> 'value') AS cols
                                FROM jsonb_array_elements(x.j -> 'columns') e) y
            ORDER BY c.n
            """
        let result = try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger: source.logger)
        var rows: [PostgresSource.SourceRow] = []
        var transaction: [(lsn: UInt64, row: PostgresSource.SourceRow)] = []
        var endLSN: String?
        for row in result {
            let (lsnText, action, isOurs, json, id) = try row.decode((String, String, Bool?, String?, String?).self)
            guard let lsn = Self.parseLSN(lsnText) else {
                throw PostgresSourceError(.decoding, "unexpected LSN '\(lsnText)'")
            }
            switch action {
            case "B":
                transaction.removeAll(keepingCapacity: true)
            case "C":
                // The commit's end LSN orders transactions; the change LSN orders rows inside one.
                for var pending in transaction {
                    pending.row.position = SourcePosition(major: lsn, minor: Int64(bitPattern: pending.lsn))
                    rows.append(pending.row)
                }
                transaction.removeAll(keepingCapacity: true)
                endLSN = lsnText
            case "I":
                guard isOurs == true, let json else { continue }
                transaction.append((lsn, .init(position: .start, rowId: id ?? "", json: json)))
            case "U":
                if isOurs == true { source.noteIgnored("update") }
            case "D":
                if isOurs == true { source.noteIgnored("delete") }
            case "T":
                if isOurs == true { source.noteIgnored("truncate") }
            default:
                source.noteIgnored("message")
            }
        }
        guard let endLSN else { return (false, result.isEmpty) }
        try await source.deliver(rows)
        // Durable: now the slot may forget these transactions.
        _ = try await connection.rows(
            "SELECT pg_replication_slot_advance(\(c.slotName), \(endLSN)::pg_lsn)", logger: source.logger)
        if let last = rows.last { try source.savePosition(last.position) }
        try await updateLag()
        return (true, false)
    }

    /// wal2json's `add-tables` syntax: `schema.table` with `\` before special characters.
    func wal2jsonTableName(_ c: PostgresSourceConfiguration) -> String {
        func escape(_ s: String) -> String {
            var out = ""
            for ch in s {
                if ch == "," || ch == "." || ch == "*" || ch == "\\" || ch == " " { out.append("\\") }
                out.append(ch)
            }
            return out
        }
        return "\(escape(c.schemaName)).\(escape(c.tableName))"
    }

    func updateLag() async throws {
        let result = try await connection.rows(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = \(configuration.slotName)",
            logger: source.logger)
        for row in result { source.metrics.lagBytes.record(try row.decode(Int64?.self) ?? 0) }
    }

    /// `16/B374D848` → 0x16_B374D848.
    static func parseLSN(_ text: String) -> UInt64? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16) else { return nil }
        return hi << 32 | lo
    }
}
