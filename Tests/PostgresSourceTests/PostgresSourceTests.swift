import Foundation
import Logging
import PostgresNIO
import SpeedflowModel
import SpeedflowTestSupport
import SpeedflowPostgres
import Synchronization
import Testing

/// Each mode streams a table receiving concurrent inserts (transactions interleaving, so ids commit out of
/// order), through `kill -9` of speedflow and a terminated PostgreSQL connection; then every 5-minute window of
/// the API equals the truth computed from the table with SQL, and every invalid row is in the rejected-rows
/// record exactly once.
@Suite("PostgreSQL source against a real PostgreSQL 15", .enabled(if: TestDatabase.enabled), .serialized)
struct PostgresSourceTests {
    static let cameras = (0..<5).map { "PGC\($0)" }
    static let rowsPerWriter = 1500
    static let writers = 4

    @Test("poll: out-of-order commits, kill -9, killed connection; windows equal the SQL truth")
    func poll() async throws { try await scenario(mode: "poll") }

    @Test("notify: woken by NOTIFY only (fallback 120 s), kill -9, killed connection; windows equal the SQL truth")
    func notify() async throws { try await scenario(mode: "notify") }

    @Test("logical: wal2json slot, kill -9, killed connection, updates/deletes ignored; windows equal the SQL truth")
    func logical() async throws { try await scenario(mode: "logical") }

    func scenario(mode: String) async throws {
        let dsn = try #require(TestDatabase.dsn)
        let table = "passes_\(mode)_\(UInt32.random(in: 0...UInt32.max))"
        let appName = "sf-test-\(table)"
        try await TestDatabase.createTable(table)

        let setup = try SpeedflowProcess.run(["source", "postgres", "install-trigger", "--dsn", dsn, "--table", table, "--mode", mode, "--apply"])
        #expect(setup.status == 0, "install-trigger: \(setup.output)")

        var arguments = [
            "--flush-interval", "250ms", "--source-postgres-dsn", dsn, "--source-postgres-table", table,
            "--source-postgres-mode", mode, "--source-postgres-application-name", appName,
            "--source-postgres-map", "timestamp=ts,vehicle_speed=speed",
            "--source-postgres-batch-size", "150", "--source-postgres-poll-interval", "50ms",
        ]
        // notify: progress must come from notifications, not from the fallback tick.
        if mode == "notify" { arguments += ["--source-postgres-notify-fallback-interval", "120s"] }
        let server = try SpeedflowProcess(extraArguments: arguments)
        defer { server.remove() }
        do {
            try await stream(mode: mode, table: table, appName: appName, server: server)
        } catch {
            Issue.record("speedflow log tail:\n\(server.logTail(8000))")
            throw error
        }
    }

    func stream(mode: String, table: String, appName: String, server: SpeedflowProcess) async throws {
        try await server.start()

        let nowS = Int64(Date().timeIntervalSince1970)
        let from = (nowS - 4 * 3600) / 300 * 300
        let to = (nowS + 900) / 300 * 300
        let allCameras = Self.cameras + ["PGX"]

        // 1. Out-of-order commits, made explicit. B takes its transaction id first; A then inserts the lower row id
        //    and stays open while B inserts higher ids and commits: B's rows stream past A's open row (the API shows
        //    them), then A commits its lower id, which must still be counted.
        try await outOfOrderCommits(table: table, server: server, from: from, to: to)

        // 2. Concurrent writers with interleaving transactions, while speedflow is killed and its connection cut.
        let writing = Mutex(true)
        let writers = Task {
            defer { writing.withLock { $0 = false } }
            try await Self.write(table: table, nowS: nowS)
        }
        try await waitUntil("1,500 events counted", timeout: .seconds(120)) {
            try await API.total(server, cameras: allCameras, from: from, to: to) >= 1500
        }
        server.kill9()
        try await server.start()
        try await waitUntil("3,000 events counted", timeout: .seconds(120)) {
            try await API.total(server, cameras: allCameras, from: from, to: to) >= 3000
        }
        try await waitUntil("the source's PostgreSQL connection terminated", timeout: .seconds(120)) {
            try await TestDatabase.terminate(applicationName: appName)
        }
        try await waitUntil("4,500 events counted", timeout: .seconds(120)) {
            try await API.total(server, cameras: allCameras, from: from, to: to) >= 4500
        }
        #expect(writing.withLock { $0 }, "the writers are still inserting at the second kill -9")
        server.kill9()
        try await server.start()
        try await writers.value

        // 3. The truth from the table, and the API converging to it.
        let truth = try await TestDatabase.truth(table)
        let expectedTotal = truth.values.flatMap(\.values).reduce(0) { $0 + $1.count }
        #expect(expectedTotal > Self.rowsPerWriter * Self.writers * 9 / 10)
        try await waitUntil("all \(expectedTotal) valid rows counted", timeout: .seconds(120)) {
            try await API.total(server, cameras: allCameras, from: from, to: to) == expectedTotal
        }
        var compared = 0
        for camera in allCameras {
            let windows = try await API.windows(server, camera: camera, from: from, to: to)
            let expected = truth[camera] ?? [:]
            #expect(Set(windows.keys) == Set(expected.keys), "\(camera): the same non-empty windows")
            for (start, e) in expected {
                let got = windows[start]
                #expect(got?.count == e.count, "\(camera) window \(start)")
                let avg = got?.avg ?? .nan
                #expect(abs(avg - e.avg) <= 1e-9 * e.avg, "\(camera) window \(start): \(avg) vs \(e.avg)")
                compared += 1
            }
        }
        #expect(compared > 100)

        // 4. Every invalid row reported once, with its reason and position.
        let invalid = try await TestDatabase.invalidIds(table)
        #expect(!invalid.isEmpty)
        let rejectedFile = server.dataDirectory.appendingPathComponent("sources/postgres-\(table).rejected.ndjson")
        try await waitUntil("every invalid row recorded", timeout: .seconds(30)) {
            Set(Self.rejectedRows(rejectedFile).map(\.rowId)) == invalid
        }
        let rejected = Self.rejectedRows(rejectedFile)
        #expect(rejected.count == invalid.count, "no row recorded twice")
        #expect(rejected.allSatisfy { $0.reason == "speed_out_of_range" && $0.field == "vehicle_speed" })

        // 5. logical: updates and deletes are counted and ignored; the aggregate stays as it was.
        if mode == "logical" {
            try await TestDatabase.execute("UPDATE \(table) SET note = 'checked' WHERE id % 10 = 0")
            let updated = try await Self.count(table, "note = 'checked'")
            try await TestDatabase.execute("DELETE FROM \(table) WHERE NOT (speed > 0 AND speed <= 300)")
            var seen: (Double?, Double?) = (nil, nil)
            do {
                try await waitUntil("updates and deletes counted as ignored", timeout: .seconds(60)) {
                    let metrics = try await API.metrics(server)
                    seen = (
                        Self.metric(metrics, "speedflow_source_postgres_changes_ignored_total", "action=\"update\""),
                        Self.metric(metrics, "speedflow_source_postgres_changes_ignored_total", "action=\"delete\"")
                    )
                    return seen.0 == Double(updated) && seen.1 == Double(invalid.count)
                }
            } catch {
                Issue.record("ignored updates/deletes: \(String(describing: seen)), expected \(updated)/\(invalid.count)")
                throw error
            }
            #expect(try await API.total(server, cameras: allCameras, from: from, to: to) == expectedTotal)
            server.stop()
            try await waitUntil("slot dropped", timeout: .seconds(30)) {
                try await TestDatabase.execute("SELECT pg_drop_replication_slot('speedflow_\(table)')")
                return true
            }
        }
        try? await TestDatabase.execute("DROP TABLE \(table)")
    }

    func outOfOrderCommits(table: String, server: SpeedflowProcess, from: Int64, to: Int64) async throws {
        let a = try await TestDatabase.connect()
        let b = try await TestDatabase.connect()
        let logger = TestDatabase.logger
        let ts = Timestamp.format((Int64(Date().timeIntervalSince1970) - 600) * 1000)
        try await b.query("BEGIN", logger: logger)
        try await b.query("SELECT pg_current_xact_id()", logger: logger)
        try await a.query("BEGIN", logger: logger)
        try await a.query(
            PostgresQuery(unsafeSQL: "INSERT INTO \(table) (kvfv_id, ts, speed) VALUES ('PGX', '\(ts)', 50)"), logger: logger)
        for i in 0..<20 {
            try await b.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \(table) (kvfv_id, ts, speed) VALUES ('PGX', '\(ts)', \(60 + i))"),
                logger: logger)
        }
        try await b.query("COMMIT", logger: logger)
        try await waitUntil("B's 20 higher ids counted while A's lower id is uncommitted", timeout: .seconds(120)) {
            try await API.total(server, cameras: ["PGX"], from: from, to: to) == 20
        }
        try await a.query("COMMIT", logger: logger)
        try await waitUntil("A's lower id counted after it committed", timeout: .seconds(120)) {
            try await API.total(server, cameras: ["PGX"], from: from, to: to) == 21
        }
        try await a.close()
        try await b.close()
    }

    /// `writers` connections, each committing transactions of 1–12 rows with pauses between statements, so
    /// transactions interleave and row ids commit out of order. About 1% of rows have an invalid speed.
    static func write(table: String, nowS: Int64) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    let c = try await TestDatabase.connect()
                    let logger = TestDatabase.logger
                    var written = 0
                    var n = 0
                    while written < rowsPerWriter {
                        let rows = min(Int.random(in: 1...12), rowsPerWriter - written)
                        try await c.query("BEGIN", logger: logger)
                        for _ in 0..<rows {
                            n += 1
                            let camera = cameras.randomElement()!
                            let ts = Timestamp.format((nowS - Int64.random(in: 0..<3 * 3600)) * 1000 - Int64.random(in: 0..<1000))
                            let speed = n % 97 == 0 ? 500 : Double(Int.random(in: 1500...14000)) / 100
                            try await c.query(
                                PostgresQuery(
                                    unsafeSQL: """
                                        INSERT INTO \(table) (kvfv_id, ts, speed, lane, plate_number)
                                        VALUES ('\(camera)', '\(ts)', \(speed), \(Int.random(in: 1...3)), 'P\(w)-\(n)')
                                        """), logger: logger)
                            // Paced so the stream is still flowing when speedflow and its connection are killed.
                            try await Task.sleep(for: .milliseconds(Int.random(in: 2...10)))
                        }
                        try await c.query("COMMIT", logger: logger)
                        written += rows
                    }
                    try await c.close()
                }
            }
            try await group.waitForAll()
        }
    }

    static func count(_ table: String, _ condition: String) async throws -> Int {
        let c = try await TestDatabase.connect()
        defer { Task { try? await c.close() } }
        let rows = try await c.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table) WHERE \(condition)"), logger: TestDatabase.logger)
        var n: Int64 = 0
        for try await v in rows.decode(Int64.self) { n = v }
        return Int(n)
    }

    static func rejectedRows(_ file: URL) -> [RejectedRow] {
        guard let data = try? Data(contentsOf: file) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(RejectedRow.self, from: Data($0)) }
    }

    /// The value of the first sample of `name` whose labels contain `label`.
    static func metric(_ text: String, _ name: String, _ label: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") && line.contains(label) {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }
}

/// TLS to PostgreSQL with libpq's `sslmode`: verified against the test cluster's CA (`scripts/postgres` makes one),
/// refused against another CA, and the source's connection is encrypted on the server's side.
@Suite("PostgreSQL source over TLS", .enabled(if: TestDatabase.enabled && ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_PG_CA"] != nil), .serialized)
struct PostgresTLSTests {
    @Test("sslmode=verify-full with the right CA connects and the server sees TLS; another CA is refused")
    func verifyFull() async throws {
        let dsn = try #require(TestDatabase.dsn)
        let ca = try #require(ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_PG_CA"])
        let table = "passes_tls_\(UInt32.random(in: 0...UInt32.max))"
        let appName = "sf-test-\(table)"
        try await TestDatabase.createTable(table)
        let verified = dsn + "?sslmode=verify-full&sslrootcert=" + ca
        let setup = try SpeedflowProcess.run(["source", "postgres", "install-trigger", "--dsn", verified, "--table", table, "--mode", "poll", "--apply"])
        #expect(setup.status == 0, "install-trigger over verified TLS: \(setup.output)")

        // Another CA: the handshake fails and nothing runs.
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let otherCA = dir.appendingPathComponent("other-ca.pem").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", dir.appendingPathComponent("k").path, "-out", otherCA]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let refused = try SpeedflowProcess.run(["source", "postgres", "install-trigger", "--dsn", dsn + "?sslmode=verify-full&sslrootcert=" + otherCA, "--table", table, "--mode", "poll", "--apply"])
        #expect(refused.status != 0, "a server certificate from another CA was accepted")
        let bad = try SpeedflowProcess.run(["source", "postgres", "install-trigger", "--dsn", dsn + "?sslmode=sometimes", "--table", table])
        #expect(bad.status != 0 && bad.output.contains("sslmode must be"), "\(bad.output)")

        // The running source's connection is encrypted, as PostgreSQL itself reports.
        let server = try SpeedflowProcess(extraArguments: [
            "--source-postgres-dsn", verified, "--source-postgres-table", table, "--source-postgres-mode", "poll",
            "--source-postgres-application-name", appName, "--source-postgres-map", "timestamp=ts,vehicle_speed=speed",
        ])
        defer { server.remove() }
        try await server.start()
        try await waitUntil("the source's connection appears encrypted in pg_stat_ssl", timeout: .seconds(20)) {
            try await PostgresSourceTests.count(
                "pg_stat_ssl JOIN pg_stat_activity USING (pid)", "application_name = '\(appName)' AND ssl") >= 1
        }
    }
}
