import Foundation
import NIOSSL
import PostgresNIO

/// What to read, how, and where each event field comes from.
public struct PostgresSourceConfiguration: Sendable, Hashable {
    /// How new rows are found.
    public enum Mode: String, Sendable, CaseIterable, Hashable {
        /// Read by position every `pollInterval`.
        case poll
        /// Read by position when a trigger's `NOTIFY` arrives (and every `notifyFallbackInterval` regardless).
        case notify
        /// Logical decoding (wal2json) through a replication slot.
        case logical
    }

    /// libpq-style URL: `postgres://user:password@host:port/database`.
    public var dsn: String
    /// `schema.table` or `table` (schema `public`).
    public var table: String
    /// Default: poll.
    public var mode: Mode = .poll
    /// Event field → column. Fields not listed read a column of the same name when the table has one
    /// (`kvfv_id`, `timestamp`, `vehicle_speed` are required, the others optional).
    public var columns: [String: String] = [:]
    /// The table's unique, never-updated integer key: the tie-breaker of the poll position and the fallback
    /// idempotency key (`pg:<table>:<id>`). Default: id.
    public var idColumn = "id"
    /// `xid8` column filled by `DEFAULT pg_current_xact_id()` (poll / notify): the commit-safe position.
    /// Default: speedflow_xid.
    public var xidColumn = "speedflow_xid"
    /// Rows per read (and per durable ingest). Default: 5000.
    public var batchSize = 5000
    /// Wait between reads once caught up (poll), or while rows wait behind an open transaction (notify,
    /// logical). Default: 200 ms.
    public var pollIntervalMs: Int64 = 200
    /// Longest wait for a notification before reading anyway (notify): bounds the delay of a lost one.
    /// Default: 5 s.
    public var notifyFallbackIntervalMs: Int64 = 5000
    /// Replication slot (logical). Default: speedflow_<table>.
    public var slot: String?
    /// `application_name` of the source's connection (visible in `pg_stat_activity`). Default: speedflow-source.
    public var applicationName = "speedflow-source"
    /// Name of this source: its position file and metric label. Default: the table name.
    public var name: String?
    /// Stop (successfully) at the first read that finds nothing new; for backfills and benchmarks.
    public var exitWhenCaughtUp = false

    public init(dsn: String, table: String) {
        self.dsn = dsn
        self.table = table
    }

    /// The event fields a column can be mapped to.
    public static let fields = ["kvfv_id", "timestamp", "vehicle_speed", "event_id", "lane", "plate_number"]
    static let requiredFields: Set<String> = ["kvfv_id", "timestamp", "vehicle_speed"]

    public var schemaName: String { table.split(separator: ".", maxSplits: 1).count == 2 ? String(table.split(separator: ".")[0]) : "public" }
    public var tableName: String { String(table.split(separator: ".", maxSplits: 1).last ?? Substring(table)) }
    public var sourceName: String { name ?? tableName }
    public var slotName: String { slot ?? "speedflow_\(tableName)" }
    /// The NOTIFY channel the trigger signals.
    public var channel: String { "speedflow_\(tableName)" }
    /// `"schema"."table"`.
    var qualifiedTable: String { "\(SQL.identifier(schemaName)).\(SQL.identifier(tableName))" }

    /// Parses `field=column,field=column`.
    public static func parseColumnMap(_ text: String) throws(PostgresSourceError) -> [String: String] {
        var map: [String: String] = [:]
        for pair in text.split(separator: ",") where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[1].isEmpty, fields.contains(parts[0]) else {
                throw PostgresSourceError(.configuration, "--map expects field=column pairs with fields among \(fields.joined(separator: ", ")), not '\(pair)'")
            }
            map[parts[0]] = parts[1]
        }
        return map
    }

    /// Checks everything that does not need the database.
    public func validate() throws(PostgresSourceError) {
        _ = try PostgresDSN(dsn)
        guard !tableName.isEmpty else { throw PostgresSourceError(.configuration, "the table name is empty") }
        guard batchSize > 0 else { throw PostgresSourceError(.configuration, "batch size must be positive") }
        guard sourceName.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
            throw PostgresSourceError(.configuration, "source name '\(sourceName)' may only contain letters, digits, _ - .")
        }
    }
}

/// An error of the PostgreSQL source, with a stable code.
public struct PostgresSourceError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        public static let configuration = Code(raw: "configuration")
        public static let schema = Code(raw: "schema")
        public static let position = Code(raw: "position")
        public static let decoding = Code(raw: "decoding")
        public static let connectionClosed = Code(raw: "connection_closed")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// `postgres://user:password@host:port/database[?sslmode=…&sslrootcert=…]` split into connection settings.
///
/// TLS follows libpq's `sslmode`: `disable`; `prefer` (the default: TLS when the server offers it, not verified);
/// `require` (TLS, not verified); `verify-ca` (the server's certificate must chain to `sslrootcert`, or the
/// system's trust store); `verify-full` (and name the DSN's host). The password may come from `PGPASSWORD`
/// instead of the DSN, so it need not be on a command line.
public struct PostgresDSN: Sendable, Hashable {
    public enum SSLMode: String, Sendable, CaseIterable { case disable, prefer, require, verifyCA = "verify-ca", verifyFull = "verify-full" }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode = .prefer
    /// PEM file of the CA(s) to verify the server against (`verify-ca`, `verify-full`).
    public var sslRootCert: String?

    public init(_ text: String) throws(PostgresSourceError) {
        guard let url = URLComponents(string: text), let scheme = url.scheme,
            scheme == "postgres" || scheme == "postgresql", let host = url.host, !host.isEmpty
        else {
            throw PostgresSourceError(.configuration, "the DSN must look like postgres://user:password@host:5432/database")
        }
        self.host = host
        port = url.port ?? 5432
        user = url.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = url.password.flatMap { $0.removingPercentEncoding }
        if password == nil, let env = ProcessInfo.processInfo.environment["PGPASSWORD"] { password = env }
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        database = path.isEmpty ? user : path
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: item.value ?? "") else {
                    throw PostgresSourceError(
                        .configuration, "sslmode must be \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), not '\(item.value ?? "")'")
                }
                sslMode = mode
            case "sslrootcert": sslRootCert = item.value
            default:
                throw PostgresSourceError(.configuration, "unknown DSN parameter '\(item.name)' (supported: sslmode, sslrootcert)")
            }
        }
    }

    /// postgres-nio's TLS setting for `sslMode`.
    public func tls() throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable: return .disable
        case .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let sslRootCert {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(sslRootCert))
            } catch {
                throw PostgresSourceError(.configuration, "cannot read sslrootcert \(sslRootCert): \(error)")
            }
        }
        let context = try NIOSSLContext(configuration: tls)
        return sslMode == .prefer ? .prefer(context) : .require(context)
    }
}

/// Quoting for the few identifiers and literals the source splices into SQL.
enum SQL {
    /// `"name"` with embedded quotes doubled.
    static func identifier(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
    /// `'text'` with embedded quotes doubled.
    static func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
}
