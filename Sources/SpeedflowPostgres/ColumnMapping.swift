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

    /// `json_build_object(...)::text` over alias `t`: PostgreSQL renders values as JSON (timestamptz as ISO 8601
    /// with offset), and `EventBatch.decode` validates them as it does HTTP bodies.
    func jsonExpression() -> String {
        var parts: [String] = []
        for field in PostgresSourceConfiguration.fields {
            let column = columns[field].map { "t." + SQL.identifier($0) }
            switch field {
            case "event_id":
                let fallback = "\(SQL.literal("pg:\(tableName):")) || t.\(SQL.identifier(idColumn))::text"
                parts.append("'event_id', " + (column.map { "COALESCE(\($0)::text, \(fallback))" } ?? fallback))
            case "timestamp":
                guard let column else { continue }
                // A timestamp without time zone is read as UTC.
                let isLocal = types[columns[field]!] == "timestamp without time zone"
                parts.append("'timestamp', " + (isLocal ? "(\(column) AT TIME ZONE 'UTC')" : column))
            default:
                guard let column else { continue }
                parts.append("\(SQL.literal(field)), \(column)")
            }
        }
        return "json_build_object(\(parts.joined(separator: ", ")))::text"
    }

    /// The same object built from a logical-decoding change (wal2json `columns`).
    func jsonObject(fromChange values: [String: JSONValue]) -> (json: String, id: String) {
        var object: [String: JSONValue] = [:]
        let id: String
        switch values[idColumn] {
        case .integer(let i): id = String(i)
        case .string(let s): id = s
        case .number(let d): id = String(d)
        default: id = ""
        }
        for field in PostgresSourceConfiguration.fields {
            guard let column = columns[field] else { continue }
            var value = values[column] ?? .null
            switch field {
            case "timestamp":
                if case .string(let s) = value { value = .string(Self.rfc3339(fromPostgres: s)) }
            case "event_id":
                switch value {
                case .integer(let i): value = .string(String(i))
                case .number(let d): value = .string(String(d))
                default: break
                }
            default: break
            }
            object[field] = value
        }
        if object["event_id"] == nil || object["event_id"] == .null { object["event_id"] = .string(fallbackEventId(id)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = (try? encoder.encode(object)) ?? Data("{}".utf8)
        return (String(decoding: data, as: UTF8.self), id)
    }

    /// `2026-11-22 10:15:30.123+00` (PostgreSQL's ISO output) → `2026-11-22T10:15:30.123+00:00`; no offset
    /// (timestamp without time zone) → UTC. Anything else is passed on and rejected by validation.
    static func rfc3339(fromPostgres s: String) -> String {
        var chars = Array(s)
        guard chars.count >= 19, chars[10] == " " else { return s }
        chars[10] = "T"
        var out = String(chars)
        // The offset: a sign after the seconds (position ≥ 19), as ±HH, ±HH:MM or ±HH:MM:SS.
        if let signIndex = chars.indices.dropFirst(19).first(where: { chars[$0] == "+" || chars[$0] == "-" }) {
            let offset = chars.count - signIndex - 1
            if offset == 2 { out += ":00" }
        } else if !out.hasSuffix("Z") {
            out += "Z"
        }
        return out
    }
}
