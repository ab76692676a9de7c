import Foundation
import SpeedflowLoadgen
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS, mutual TLS and certificate reloads of the real binary, with real clients: `curl` and `openssl s_client`
/// against a CA and certificates the test makes with `openssl`. Every child process runs off the cooperative pool.
@Suite("TLS with curl and openssl s_client", .enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil))
struct TLSTests {
    static let curl = "/usr/bin/curl"
    static let openssl = "/usr/bin/openssl"

    /// CA `ca` with server certificates `server` and `server2` (IP:127.0.0.1, DNS:localhost); camera client
    /// certificates `camera` (KV00001), `expired`, and `stranger` from another CA `otherca`.
    static func pki() async throws -> TestPKI {
        let pki = TestPKI()
        try await offCooperativePool {
            try pki.makeCA("ca", subject: "/CN=Speedflow Test CA")
            try pki.makeCA("otherca", subject: "/CN=Someone Else's CA")
            for name in ["server", "server2"] {
                try pki.makeLeaf(
                    name, ca: "ca", subject: "/CN=localhost", subjectAltName: "IP:127.0.0.1,DNS:localhost", usage: .server)
            }
            let camera = "URI:urn:speedflow:kvfv:KV00001"
            try pki.makeLeaf("camera", ca: "ca", subject: "/CN=camera KV00001", subjectAltName: camera, usage: .client)
            try pki.makeLeaf("expired", ca: "ca", subject: "/CN=old camera", subjectAltName: camera, usage: .client, days: -1)
            try pki.makeLeaf("stranger", ca: "otherca", subject: "/CN=stranger", subjectAltName: camera, usage: .client)
        }
        return pki
    }

    /// The server's certificate files live at fixed paths (`live.pem`, `live.key`), so a test can replace them.
    static func install(_ name: String, in pki: TestPKI) throws {
        for (from, to) in [(pki.certificate(name), pki.certificate("live")), (pki.key(name), pki.key("live"))] {
            let staged = to + ".new"
            try? FileManager.default.removeItem(atPath: staged)
            try FileManager.default.copyItem(atPath: from, toPath: staged)
            // rename(2): a reader sees the old file or the new one, never half of one.
            guard rename(staged, to) == 0 else { throw ChildProcess.Failure("rename \(staged) → \(to)") }
        }
    }

    static func tlsArguments(_ pki: TestPKI, clientCA: Bool = false, extra: [String] = []) -> [String] {
        ["--tls-cert", pki.certificate("live"), "--tls-key", pki.key("live")]
            + (clientCA ? ["--tls-client-ca", pki.certificate("ca")] : []) + extra
    }

    static func curl(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await offCooperativePool {
            try ChildProcess.run(Self.curl, ["-sS", "--max-time", "10"] + arguments, timeout: .seconds(20))
        }
    }

    /// The SHA-256 fingerprint of the certificate a new `openssl s_client` connection is shown.
    static func servedFingerprint(port: Int, pki: TestPKI) async throws -> String {
        let r = try await offCooperativePool {
            try ChildProcess.run(
                Self.openssl, ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", pki.certificate("ca")],
                input: Data(), timeout: .seconds(20))
        }
        guard r.stdout.contains("BEGIN CERTIFICATE") else { throw ChildProcess.Failure("s_client: \(r.stdout)\n\(r.stderr)") }
        return try await offCooperativePool { try TestPKI.fingerprint(ofPEM: r.stdout) }
    }

    static let event = #"{"kvfv_id":"KV00001","timestamp":"TS","vehicle_speed":88.5,"event_id":"KV00001-tls-1"}"#
        .replacingOccurrences(of: "TS", with: ISO8601DateFormatter().string(from: Date()))

    @Test("curl over HTTPS: /health and POST /events answer; plain HTTP to the TLS port does not; s_client sees the certificate")
    func httpsServes() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki))
        defer { server.remove() }
        try await server.start()
        #expect(server.logTail().contains("speedflow listening on https://127.0.0.1:\(server.port)"))

        for host in ["127.0.0.1", "localhost"] {
            let health = try await Self.curl(["--cacert", pki.certificate("ca"), "https://\(host):\(server.port)/health"])
            #expect(health.status == 0 && health.stdout == #"{"status":"ok"}"#, "\(host): \(health)")
        }
        let post = try await Self.curl([
            "--cacert", pki.certificate("ca"), "https://localhost:\(server.port)/events", "-H", "Content-Type: application/json",
            "-d", Self.event,
        ])
        #expect(post.status == 0 && post.stdout.contains(#""accepted":1"#), "\(post)")

        // Without the CA, curl refuses the server (it is not a public certificate).
        let untrusted = try await Self.curl(["https://localhost:\(server.port)/health"])
        #expect(untrusted.status != 0, "\(untrusted)")

        let plain = try await Self.curl(["-i", "http://127.0.0.1:\(server.port)/health"])
        #expect(plain.status != 0 && !plain.stdout.contains("200"), "plain HTTP on the TLS port: \(plain)")

        let served = try await Self.servedFingerprint(port: server.port, pki: pki)
        let expected = try pki.fingerprint("server")
        #expect(served == expected)
        // The server is still healthy after the garbage plain-HTTP connection.
        let again = try await Self.curl(["--cacert", pki.certificate("ca"), "https://localhost:\(server.port)/health"])
        #expect(again.status == 0, "\(again)")
    }

    @Test("mutual TLS: no certificate, an expired one and one from another CA are refused at the handshake; the camera's is accepted")
    func mutualTLS() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki, clientCA: true))
        defer { server.remove() }
        try await server.start()
        let url = "https://localhost:\(server.port)/health"
        let ca = ["--cacert", pki.certificate("ca")]

        let good = try await Self.curl(ca + ["--cert", pki.certificate("camera"), "--key", pki.key("camera"), url])
        #expect(good.status == 0 && good.stdout == #"{"status":"ok"}"#, "\(good)")
        let post = try await Self.curl(
            ca + ["--cert", pki.certificate("camera"), "--key", pki.key("camera"), "-d", Self.event,
                  "https://localhost:\(server.port)/events"])
        #expect(post.status == 0 && post.stdout.contains(#""accepted""#), "\(post)")

        // Refused by a TLS alert, before any HTTP: no status line is ever read.
        for (name, arguments) in [
            ("no certificate", [String]()),
            ("expired", ["--cert", pki.certificate("expired"), "--key", pki.key("expired")]),
            ("another CA", ["--cert", pki.certificate("stranger"), "--key", pki.key("stranger")]),
        ] {
            let r = try await Self.curl(ca + ["-i"] + arguments + [url])
            #expect(r.status != 0 && !r.stdout.contains("HTTP/"), "\(name) was not refused: \(r)")
            #expect(r.stderr.lowercased().contains("alert"), "\(name): refused, but not by a TLS alert: \(r.stderr)")
        }
        // The same seen by openssl s_client, which names the alert the server sent (-ign_eof: it waits for the
        // server's answer instead of closing when its input ends).
        let port = server.port
        for (arguments, alert) in [
            ([String](), "alert certificate required"),
            (["-cert", pki.certificate("expired"), "-key", pki.key("expired")], "alert certificate expired"),
            (["-cert", pki.certificate("stranger"), "-key", pki.key("stranger")], "alert unknown ca"),
            (["-cert", pki.certificate("camera"), "-key", pki.key("camera")], ""),
        ] {
            let r = try await offCooperativePool {
                try ChildProcess.run(
                    Self.openssl, ["s_client", "-ign_eof", "-connect", "127.0.0.1:\(port)", "-CAfile", pki.certificate("ca")] + arguments,
                    input: Data("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8), timeout: .seconds(20))
            }
            if alert.isEmpty {
                #expect(r.status == 0 && r.stdout.contains(" 200 OK"), "camera certificate: \(r)")
            } else {
                #expect(r.status != 0 && !r.stdout.contains("HTTP/1"), "\(alert): \(r)")
                #expect(r.stderr.contains(alert), "\(r.stderr)")
            }
        }
        // Each refusal is logged and counted (three by curl, three by s_client).
        #expect(server.logTail(1 << 16).contains("TLS handshake refused"))
        let metrics = try await Self.curl(
            ca + ["--cert", pki.certificate("camera"), "--key", pki.key("camera"), "https://localhost:\(server.port)/metrics"])
        let failures = metrics.stdout.split(separator: "\n").first { $0.hasPrefix("speedflow_tls_handshake_failures_total ") }
        #expect(failures.flatMap { Double($0.split(separator: " ")[1]) } == 6, "\(failures ?? "no counter")")
    }

    @Test("mutual TLS with --auth required: a camera certificate writes for the cameras its SAN names (others forbidden_kvfv_id), cannot read; a token still works; writes are attributed to the certificate")
    func certificateIdentifiesCamera() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki, clientCA: true, extra: ["--auth", "required"]))
        defer { server.remove() }
        let data = server.dataDirectory.path
        let reader = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "reader"]) }
        try await server.start()
        let base = "https://localhost:\(server.port)"
        let camera = ["--cacert", pki.certificate("ca"), "--cert", pki.certificate("camera"), "--key", pki.key("camera")]
        let ts = ISO8601DateFormatter().string(from: Date())
        let batch = "[{\"kvfv_id\":\"KV00001\",\"timestamp\":\"\(ts)\",\"vehicle_speed\":80,\"event_id\":\"c1\"},"
            + "{\"kvfv_id\":\"KV00002\",\"timestamp\":\"\(ts)\",\"vehicle_speed\":90,\"event_id\":\"c2\"}]"
        let post = try await Self.curl(camera + ["-H", "Content-Type: application/json", "-d", batch, base + "/events"])
        #expect(post.status == 0 && post.stdout.contains(#""accepted":1"#) && post.stdout.contains(#""forbidden_kvfv_id":1"#), "\(post)")
        let read = try await Self.curl(camera + ["-o", "/dev/null", "-w", "%{http_code}", base + "/kvfv"])
        #expect(read.stdout == "403", "\(read)")
        // A reader's token on the same (camera-certified) connection reads: the token wins over the certificate.
        let header = pki.directory.appendingPathComponent("reader.header").path
        try Data("Authorization: Bearer \(reader)\n".utf8).write(to: URL(fileURLWithPath: header))
        let withToken = try await Self.curl(camera + ["-H", "@" + header, "-o", "/dev/null", "-w", "%{http_code}", base + "/kvfv"])
        #expect(withToken.stdout == "200", "\(withToken)")
        server.stop()
        let writes = try await offCooperativePool { try SpeedflowProcess.run(["log", "writes", "--data-dir", data]) }
        #expect(writes.output.contains("cert:"), "\(writes.output)")
    }

    @Test("SIGHUP reloads the certificate for new connections while open ones keep theirs; a bad file keeps the old one")
    func reload() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki, extra: ["--tls-reload-interval", "1h"]))
        defer { server.remove() }
        try await server.start()
        let first = try pki.fingerprint("server")
        let second = try pki.fingerprint("server2")
        #expect(first != second)
        let before = try await Self.servedFingerprint(port: server.port, pki: pki)
        #expect(before == first)

        // An open connection made before the reload.
        let port = server.port
        let held = try await offCooperativePool { try HeldTLSConnection(port: port, caFile: pki.certificate("ca")) }
        defer { held.close() }

        try Self.install("server2", in: pki)
        server.send(signal: SIGHUP)
        try await waitUntil("a new connection is shown the new certificate", timeout: .seconds(20)) {
            try await Self.servedFingerprint(port: server.port, pki: pki) == second
        }
        // The connection from before still works, on the old certificate.
        let answer = try await offCooperativePool { try held.request("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n") }
        #expect(answer.contains("200 OK") && answer.contains(#"{"status":"ok"}"#), "\(answer)")
        let heldFingerprint = try TestPKI.fingerprint(ofPEM: held.handshakeOutput)
        #expect(heldFingerprint == first)

        // A reload of garbage keeps serving the certificate it had, and says why.
        try "not a certificate\n".write(toFile: pki.certificate("live"), atomically: true, encoding: .utf8)
        server.send(signal: SIGHUP)
        try await waitUntil("the failed reload is logged", timeout: .seconds(20)) {
            server.logTail(1 << 16).contains("TLS reload failed")
        }
        #expect(server.logTail(1 << 16).contains(pki.certificate("live")))
        let afterFailure = try await Self.servedFingerprint(port: server.port, pki: pki)
        #expect(afterFailure == second)
        let health = try await Self.curl(["--cacert", pki.certificate("ca"), "https://localhost:\(server.port)/health"])
        #expect(health.status == 0, "\(health)")
    }

    @Test("changed certificate files are picked up by the modification-time check, without a signal")
    func reloadOnFileChange() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki, extra: ["--tls-reload-interval", "200ms"]))
        defer { server.remove() }
        try await server.start()
        let before = try await Self.servedFingerprint(port: server.port, pki: pki)
        let first = try pki.fingerprint("server")
        #expect(before == first)
        try Self.install("server2", in: pki)
        let second = try pki.fingerprint("server2")
        try await waitUntil("the replaced files are served", timeout: .seconds(20)) {
            try await Self.servedFingerprint(port: server.port, pki: pki) == second
        }
    }

    @Test("speedflow loadgen --cacert over HTTPS: a short fleet on bad links is stored exactly")
    func loadgenOverTLS() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        try Self.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: Self.tlsArguments(pki))
        defer { server.remove() }
        try await server.start()
        var c = LoadgenConfiguration()
        c.url = "https://localhost:\(server.port)"
        c.caCertificateFile = pki.certificate("ca")
        c.cameras = 12
        c.concurrency = 4
        c.mode = .batch
        c.batchSize = 20
        c.rate = 2000
        c.duration = .seconds(2)
        c.outageShare = 0.5
        c.outageDuration = .milliseconds(500)
        c.backlogEvents = 50
        c.lostAckShare = 0.05
        c.invalidShare = 0.05
        c.freshnessInterval = .milliseconds(200)
        c.verify = true
        c.seed = 13
        let report = try await Loadgen.run(configuration: c)
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        #expect(report.anomalies.badAnswers == 0 && report.anomalies.validRejected == 0, "\(details)")
        #expect(report.unacknowledged == 0, "\(details)")
        let verification = try #require(report.verification)
        #expect(verification.passed, "\(details)")
        #expect(verification.eventsFound == report.eventsAcknowledged && report.eventsAcknowledged > 0, "\(details)")
        #expect(report.freshness.map { $0.delay.samples > 0 && $0.neverVisible == 0 } == true, "\(details)")
    }

    @Test("startup refuses half a configuration and unusable files, naming the file, with a non-zero exit")
    func startupErrors() async throws {
        let pki = try await Self.pki()
        defer { pki.remove() }
        let garbage = pki.directory.appendingPathComponent("garbage.pem").path
        try "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        let missing = pki.directory.appendingPathComponent("missing.pem").path
        let data = pki.directory.appendingPathComponent("data").path
        let cases: [(String, [String], String)] = [
            // (ArgumentParser prints the usage after these, which lists every flag: match the messages.)
            ("cert without key", ["--tls-cert", pki.certificate("server")], "--tls-cert needs --tls-key"),
            ("key without cert", ["--tls-key", pki.key("server")], "--tls-key needs --tls-cert"),
            ("client CA without TLS", ["--tls-client-ca", pki.certificate("ca")], "--tls-client-ca needs --tls-cert and --tls-key"),
            ("missing cert", ["--tls-cert", missing, "--tls-key", pki.key("server")], missing),
            ("garbage cert", ["--tls-cert", garbage, "--tls-key", pki.key("server")], garbage),
            ("a certificate as the key", ["--tls-cert", pki.certificate("server"), "--tls-key", pki.certificate("server")], pki.certificate("server")),
            ("someone else's key", ["--tls-cert", pki.certificate("server"), "--tls-key", pki.key("server2")], pki.key("server2")),
            ("garbage client CA", ["--tls-cert", pki.certificate("server"), "--tls-key", pki.key("server"), "--tls-client-ca", garbage], garbage),
        ]
        let binary = try #require(SpeedflowProcess.binaryPath)
        for (name, arguments, named) in cases {
            let r = try await offCooperativePool {
                try ChildProcess.run(
                    binary, ["serve", "--data-dir", data, "--host", "127.0.0.1", "--port", "0"] + arguments, timeout: .seconds(60))
            }
            #expect(!r.timedOut && r.status != 0, "\(name): \(r)")
            #expect((r.stdout + r.stderr).contains(named), "\(name) does not name \(named): \(r.stderr)")
            #expect(!r.stdout.contains("listening"), "\(name): \(r.stdout)")
        }
    }
}

/// One `openssl s_client` connection kept open: made before a reload, used after it.
final class HeldTLSConnection: @unchecked Sendable {
    // Safe: used by one test at a time, from one thread at a time (each call runs through offCooperativePool and
    // the test awaits it before the next).
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    /// What s_client printed about the handshake, with the server's certificate.
    private(set) var handshakeOutput = ""

    init(port: Int, caFile: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", caFile, "-ign_eof"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        handshakeOutput = try read(until: "---\n", orTimeout: 20, after: "END CERTIFICATE")
    }

    /// Sends `text` and reads until the answer's body arrived (or 20 s pass).
    func request(_ text: String) throws -> String {
        try input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        return try read(until: "}", orTimeout: 20, after: "HTTP/1.1")
    }

    private func read(until marker: String, orTimeout seconds: Double, after start: String) throws -> String {
        let fd = output.fileHandleForReading.fileDescriptor
        var text = ""
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let r = text.range(of: start), text[r.upperBound...].contains(marker) { return text }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) >= 0 else { break }
            if p.revents == 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 16384)
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        throw ChildProcess.Failure("s_client: no '\(marker)' after '\(start)' in: \(text)")
    }

    func close() {
        try? input.fileHandleForWriting.close()
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}
