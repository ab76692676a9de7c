import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PostgresNIO
import SpeedflowModel
import SpeedflowTestSupport
import SpeedflowPostgres
import Testing

/// The PostgreSQL 15 that `scripts/test` starts on loopback (`SPEEDFLOW_TEST_PG_DSN`).
enum TestDatabase {
    static var dsn: String? { ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_PG_DSN"] }
    static var enabled: Bool { dsn != nil && SpeedflowProcess.binaryPath != nil }
    static let logger = Logger(label: "test.pg")

    static func connect(applicationName: String = "speedflow-test") async throws -> PostgresConnection {
        let dsn = try PostgresDSN(try #require(Self.dsn))
        var c = PostgresConnection.Configuration(
            host: dsn.host, port: dsn.port, username: dsn.user, password: dsn.password, database: dsn.database, tls: .disable)
        c.options.additionalStartupParameters = [("application_name", applicationName), ("TimeZone", "UTC")]
        return try await PostgresConnection.connect(configuration: c, id: 1, logger: logger)
    }

    /// Runs one statement on a fresh connection.
    static func execute(_ sql: String) async throws {
        let c = try await connect()
        do { try await c.query(PostgresQuery(unsafeSQL: sql), logger: logger) } catch {
            try? await c.close()
            throw error
        }
        try await c.close()
    }

    /// A fresh table of camera passes with an integer key; some rows will be invalid on purpose.
    static func createTable(_ name: String) async throws {
        try await execute(
            """
            CREATE TABLE \(name) (id bigserial PRIMARY KEY, kvfv_id text NOT NULL, ts timestamptz NOT NULL,
              speed double precision NOT NULL, lane int, plate_number text, note text)
            """)
    }

    /// Terminates the source's backend(s) by application_name; true when at least one was terminated.
    static func terminate(applicationName: String) async throws -> Bool {
        let c = try await connect()
        defer { Task { try? await c.close() } }
        let rows = try await c.query(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = \(applicationName)",
            logger: logger)
        var n: Int64 = 0
        for try await v in rows.decode(Int64.self) { n = v }
        return n > 0
    }

    /// The truth, by SQL: per camera and 5-minute window, count and average of the valid rows.
    static func truth(_ table: String) async throws -> [String: [Int64: (count: Int, avg: Double)]] {
        let c = try await connect()
        defer { Task { try? await c.close() } }
        let rows = try await c.query(
            PostgresQuery(
                unsafeSQL: """
                    SELECT kvfv_id, (floor(extract(epoch FROM ts) / 300) * 300)::bigint, count(*), avg(speed)
                    FROM \(table) WHERE speed > 0 AND speed <= 300 GROUP BY 1, 2
                    """), logger: logger)
        var truth: [String: [Int64: (Int, Double)]] = [:]
        for try await (camera, start, count, avg) in rows.decode((String, Int64, Int64, Double).self) {
            truth[camera, default: [:]][start] = (Int(count), avg)
        }
        return truth
    }

    /// Ids of the rows validation must reject.
    static func invalidIds(_ table: String) async throws -> Set<String> {
        let c = try await connect()
        defer { Task { try? await c.close() } }
        let rows = try await c.query(
            PostgresQuery(unsafeSQL: "SELECT id::text FROM \(table) WHERE NOT (speed > 0 AND speed <= 300)"), logger: logger)
        var ids = Set<String>()
        for try await id in rows.decode(String.self) { ids.insert(id) }
        return ids
    }
}

/// Reads `GET /kvfv/:id/avg-speed` at 5m for every camera of the truth.
enum API {
    static func windows(
        _ server: SpeedflowProcess, camera: String, from: Int64, to: Int64
    ) async throws -> [Int64: (count: Int, avg: Double?)] {
        let uri = "\(server.url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from * 1000))&to=\(Timestamp.format(to * 1000))&interval=5m"
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: uri), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        if response.status == .notFound { return [:] }  // the camera has no event yet
        guard response.status == .ok else { throw SpeedflowProcess.ProcessError("avg-speed answered \(response.status)") }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        var result: [Int64: (Int, Double?)] = [:]
        for w in try #require(json["windows"] as? [[String: Any]]) {
            let startText = try #require(w["start"] as? String)
            let start = try #require(Timestamp.parse(startText)) / 1000
            let count = try #require(w["count"] as? Int)
            if count > 0 { result[start] = (count, w["avg_speed"] as? Double) }
        }
        return result
    }

    /// Total events counted for these cameras over [from, to).
    static func total(_ server: SpeedflowProcess, cameras: [String], from: Int64, to: Int64) async throws -> Int {
        var n = 0
        for camera in cameras {
            n += try await windows(server, camera: camera, from: from, to: to).values.reduce(0) { $0 + $1.count }
        }
        return n
    }

    /// `GET /metrics` text.
    static func metrics(_ server: SpeedflowProcess) async throws -> String {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: server.url + "/metrics"), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return String(buffer: body)
    }
}
