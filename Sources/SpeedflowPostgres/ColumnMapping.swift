import Foundation
import SpeedflowModel

/// Which column feeds which event field, resolved against the table's real columns, and how a row becomes the
/// JSON object `POST /events` would have received (so validation and reason codes are exactly the server's).
struct ColumnMapping: Sendable {
    /// Event field → column.
    let columns: [String: String]
    /// Column → `information_schema` data type.
    let types: [String: String]
    let idColumn: String
    let tableName: String

    init(configuration c: PostgresSourceConfiguration, tableColumns: [String: String]) throws(PostgresSourceError) {
        guard !tableColumns.isEmpty else {
            throw PostgresSourceError(.schema, "table \(c.schemaName).\(c.tableName) not found (or it has no columns)")
        }
        var resolved: [String: String] = [:]
        for field in PostgresSourceConfiguration.fields {
            if let column = c.columns[field] {
                guard tableColumns[column] != nil else {
                    throw PostgresSourceError(.schema, "column '\(column)' (mapped to \(field)) is not in \(c.table)")
                }
                resolved[field] = column
            } else if tableColumns[field] != nil {
                resolved[field] = field
            } else if PostgresSourceConfiguration.requiredFields.contains(field) {
                throw PostgresSourceError(
                    .schema, "\(c.table) has no column '\(field)'; map one with --map \(field)=<column>")
            }
        }
        guard tableColumns[c.idColumn] != nil else {
            throw PostgresSourceError(.schema, "\(c.table) has no key column '\(c.idColumn)' (see --id-column)")
        }
        columns = resolved
        types = tableColumns
        idColumn = c.idColumn
        tableName = c.tableName
    }

    /// The fallback idempotency key of a row: stable, so a re-read row is a duplicate, never a second event.
    func fallbackEventId(_ id: String) -> String { "pg:\(tableName):\(id)" }

    /// Where the values of the JSON expression come from.
    enum ValueSource {
        /// A table row, alias `t` (poll, notify).
        case row
        /// A wal2json change's columns as one `jsonb` object `{"column": value}`, alias `y.cols` (logical):
        /// wal2json writes values as PostgreSQL prints them, so typed columns are cast back to their own type,
        /// which cannot fail, before being rendered like a row's.
        case change
    }

    /// `json_build_object(...)::text`: PostgreSQL renders values as JSON (timestamptz as ISO 8601 with offset),
    /// and `EventBatch.decode` validates them as it does HTTP bodies.
    func jsonExpression(_ source: ValueSource = .row) -> String {
        func value(_ column: String) -> String {
            switch source {
            case .row: return "t." + SQL.identifier(column)
            case .change: return "(y.cols -> \(SQL.literal(column)))"
            }
        }
        func text(_ column: String) -> String {
            switch source {
            case .row: return "t.\(SQL.identifier(column))::text"
            case .change: return "(y.cols ->> \(SQL.literal(column)))"
            }
        }
        func typed(_ column: String, _ type: String) -> String {
            switch source {
            case .row: return "t." + SQL.identifier(column)
            case .change: return "(y.cols ->> \(SQL.literal(column)))::\(type)"
            }
        }
        var parts: [String] = []
        for field in PostgresSourceConfiguration.fields {
            let column = columns[field]
            switch field {
            case "event_id":
                let fallback = "\(SQL.literal("pg:\(tableName):")) || \(text(idColumn))"
                parts.append("'event_id', " + (column.map { "COALESCE(\(text($0)), \(fallback))" } ?? fallback))
            case "timestamp":
                guard let column else { continue }
                switch types[column] {
                case "timestamp without time zone":  // read as UTC
                    parts.append("'timestamp', (\(typed(column, "timestamp")) AT TIME ZONE 'UTC')")
                case "timestamp with time zone":
                    parts.append("'timestamp', \(typed(column, "timestamptz"))")
                default:
                    parts.append("'timestamp', \(value(column))")
                }
            default:
                guard let column else { continue }
                parts.append("\(SQL.literal(field)), \(value(column))")
            }
        }
        return "json_build_object(\(parts.joined(separator: ", ")))::text"
    }
}
