import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowServer
import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

/// `--auth required`: who may write for which camera, who may read, the dashboard's session, the admin API, and
/// browser safety (with auth on or off) — driven in-process through the real router, engine, log and SQLite.
@Suite("Access control: credentials, roles, sessions, browser safety")
struct AccessControlTests {
    struct Fixture: Sendable {
        let engine: Engine
        let credentials: CredentialStore
        let admin: String, reader: String, camera: String, otherCamera: String
        let cameraId: String
    }

    static func withServer(mode: AuthMode = .required, quotas: Quotas = Quotas(), _ body: @Sendable (any TestClientProtocol, Fixture) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-auth-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("credentials.json").path
        let admin = try CredentialAdmin.create(at: path, role: .admin, kvfv: [], name: nil, actor: "test").token
        let reader = try CredentialAdmin.create(at: path, role: .reader, kvfv: [], name: nil, actor: "test").token
        let (cameraRecord, camera) = try CredentialAdmin.create(at: path, role: .camera, kvfv: ["CAMX", "GANTRY-*"], name: nil, actor: "test")
        let otherCamera = try CredentialAdmin.create(at: path, role: .camera, kvfv: ["CAMY"], name: nil, actor: "test").token
        let credentials = try CredentialStore(path: path)
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path), configuration: EngineConfiguration())
        engine.start()
        let router = SpeedflowHTTP.router(
            node: .serve(engine), configuration: ServerConfiguration(), prometheus: nil,
            access: AccessControl(mode: mode, credentials: mode == .required ? credentials : nil, quotas: quotas))
        try await Application(router: router).test(.router) { client in
            try await body(
                client,
                Fixture(
                    engine: engine, credentials: credentials, admin: admin, reader: reader, camera: camera, otherCamera: otherCamera,
                    cameraId: cameraRecord.id))
        }
        engine.shutdown()
    }

    static func object(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]) ?? [:]
    }

    static func auth(_ token: String?, _ more: HTTPFields = [:]) -> HTTPFields {
        var h = more
        if let token { h[.authorization] = "Bearer \(token)" }
        return h
    }

    static func event(_ camera: String, _ ms: Int64, _ speed: Double, id: String) -> String {
        "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed),\"event_id\":\"\(id)\"}"
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test("writes: 401 without or with a bad token, nothing stored; 403 for a reader; a camera only for its cameras, per event")
    func writes() async throws {
        try await Self.withServer { client, f in
            let t = Self.now - 60_000
            let body = ByteBuffer(string: "[" + Self.event("CAMX", t, 80, id: "a") + "]")
            for token in [nil, "sft_0123456789abcdef_nope", String(f.camera.dropLast()), "garbage"] {
                try await client.execute(uri: "/events", method: .post, headers: Self.auth(token), body: body) { r in
                    #expect(r.status == .unauthorized, "\(token ?? "none")")
                    #expect(Self.object(r.body)["reason"] as? String == "unauthorized")
                    #expect(r.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                }
            }
            try await client.execute(uri: "/events", method: .post, headers: Self.auth(f.reader), body: body) { r in
                #expect(r.status == .forbidden)
                #expect(Self.object(r.body)["reason"] as? String == "forbidden")
            }
            #expect(f.engine.stats.snapshot(nowMs: Self.now).accepted == 0)
            // A camera credential: its own ids and prefix accepted, another camera's rejected per event.
            let mixed = "[" + [
                Self.event("CAMX", t, 80, id: "x1"), Self.event("CAMY", t, 90, id: "y1"), Self.event("GANTRY-7", t, 70, id: "g1"),
                Self.event("GANTRY", t, 60, id: "g0"),
            ].joined(separator: ",") + "]"
            try await client.execute(uri: "/events", method: .post, headers: Self.auth(f.camera), body: ByteBuffer(string: mixed)) { r in
                #expect(r.status == .ok)
                let o = Self.object(r.body)
                #expect(o["accepted"] as? Int == 2)
                let rejected = (o["rejected"] as? [[String: Any]]) ?? []
                #expect(rejected.map { $0["index"] as? Int } == [1, 3])
                #expect(rejected.allSatisfy { $0["reason"] as? String == "forbidden_kvfv_id" && $0["field"] as? String == "kvfv_id" })
                #expect((o["rejected_by_reason"] as? [String: Int]) == ["forbidden_kvfv_id": 2])
            }
            // An admin writes for any camera.
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(f.admin), body: ByteBuffer(string: Self.event("ANY1", t, 50, id: "z"))
            ) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
            }
            try await client.execute(uri: "/stats", method: .get, headers: Self.auth(f.reader)) { r in
                let byReason = Self.object(r.body)["rejected_by_reason"] as? [String: Int]
                #expect(byReason?["forbidden_kvfv_id"] == 2)
            }
        }
    }

    @Test("status reports: a camera only for the cameras it covers, an admin for any; a reader or a cookie never; reads of gaps need a reader")
    func statusReports() async throws {
        try await Self.withServer { client, f in
            let body = ByteBuffer(string: "{\"seq\":7,\"timestamp\":\"\(Timestamp.format(Self.now - 60_000))\"}")
            let cases: [(String?, String, HTTPResponse.Status, String?)] = [
                (nil, "CAMX", .unauthorized, "unauthorized"), (f.reader, "CAMX", .forbidden, "forbidden"),
                (f.otherCamera, "CAMX", .forbidden, "forbidden_kvfv_id"), (f.camera, "CAMY", .forbidden, "forbidden_kvfv_id"),
                (f.camera, "CAMX", .ok, nil), (f.camera, "GANTRY-9", .ok, nil), (f.admin, "ANY2", .ok, nil),
            ]
            for (token, camera, status, reason) in cases {
                try await client.execute(uri: "/kvfv/\(camera)/status", method: .post, headers: Self.auth(token), body: body) { r in
                    #expect(r.status == status, "\(camera)")
                    if let reason { #expect(Self.object(r.body)["reason"] as? String == reason) }
                }
            }
            try await client.execute(uri: "/kvfv/CAMX/gaps", method: .get, headers: Self.auth(f.camera)) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/kvfv/CAMX/gaps", method: .get, headers: Self.auth(f.reader)) { r in
                #expect(r.status == .ok)
                #expect((Self.object(r.body)["backlog"] as? [String: Any])?["reported_seq"] as? Int == 7)
            }
        }
    }

    @Test("the event_id squatting reproduction of issue 13 is refused: the camera's real pass counts")
    func squatting() async throws {
        try await Self.withServer { client, f in
            let t = (Self.now / 300_000 - 2) * 300_000 + 1000
            // Another camera's credential tries to post CAMX's next pass first.
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(f.otherCamera),
                body: ByteBuffer(string: Self.event("CAMX", t, 250, id: "CAMX-000002"))
            ) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 0)
                #expect((Self.object(r.body)["rejected_by_reason"] as? [String: Int]) == ["forbidden_kvfv_id": 1])
            }
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(f.camera), body: ByteBuffer(string: Self.event("CAMX", t, 80, id: "CAMX-000002"))
            ) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
                #expect(Self.object(r.body)["duplicates"] as? Int == 0)
            }
            let from = Timestamp.format(t - 1000), to = Timestamp.format(t + 299_000)
            try await client.execute(uri: "/kvfv/CAMX/avg-speed?from=\(from)&to=\(to)&interval=5m", method: .get, headers: Self.auth(f.reader)) { r in
                let windows = (Self.object(r.body)["windows"] as? [[String: Any]]) ?? []
                #expect(windows.first?["count"] as? Int == 1)
                #expect(windows.first?["avg_speed"] as? Double == 80)
            }
        }
    }

    @Test("reads: a reader or admin; 401 without a credential, 403 for a camera; /health, the dashboard page and the spec stay open")
    func reads() async throws {
        try await Self.withServer { client, f in
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(f.camera), body: ByteBuffer(string: Self.event("CAMX", Self.now - 1000, 80, id: "r"))
            ) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
            }
            for uri in ["/kvfv", "/stats", "/metrics", "/kvfv/CAMX/avg-speed?from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"] {
                try await client.execute(uri: uri, method: .get) { r in #expect(r.status == .unauthorized, "\(uri)") }
                try await client.execute(uri: uri, method: .get, headers: Self.auth(f.camera)) { r in #expect(r.status == .forbidden, "\(uri)") }
                try await client.execute(uri: uri, method: .get, headers: Self.auth(f.reader)) { r in #expect(r.status == .ok, "\(uri)") }
                try await client.execute(uri: uri, method: .get, headers: Self.auth(f.admin)) { r in #expect(r.status == .ok, "\(uri)") }
            }
            for uri in ["/health", "/", "/openapi.yaml", "/dashboard/app.js"] {
                try await client.execute(uri: uri, method: .get) { r in #expect(r.status == .ok, "\(uri)") }
            }
            try await client.execute(uri: "/admin/credentials", method: .get, headers: Self.auth(f.reader)) { r in #expect(r.status == .forbidden) }
        }
    }

    @Test("dashboard session: sign in with a reader token, then the HttpOnly SameSite=Strict cookie reads; never writes; ends at revocation")
    func session() async throws {
        try await Self.withServer { client, f in
            try await client.execute(uri: "/session", method: .get) { r in
                #expect(r.status == .ok)
                #expect(Self.object(r.body).keys.sorted() == ["auth"])
            }
            try await client.execute(uri: "/session", method: .post, body: ByteBuffer(string: "{\"token\":\"\(f.camera)\"}")) { r in
                #expect(r.status == .forbidden)
            }
            try await client.execute(uri: "/session", method: .post, body: ByteBuffer(string: "{\"token\":\"sft_0123456789abcdef_x\"}")) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.setCookie] == nil)
            }
            let cookie = try await client.execute(
                uri: "/session", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{\"token\":\"\(f.admin)\"}")
            ) { r in
                #expect(r.status == .ok)
                #expect(Self.object(r.body)["role"] as? String == "admin")
                return r.headers[.setCookie] ?? ""
            }
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
            #expect(!cookie.contains(f.admin))
            let pair = String(cookie.split(separator: ";")[0])
            try await client.execute(uri: "/kvfv", method: .get, headers: [.cookie: pair]) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/session", method: .get, headers: [.cookie: pair]) { r in
                #expect(Self.object(r.body)["role"] as? String == "admin")
            }
            // A cookie never authorizes a write, even an admin's.
            try await client.execute(
                uri: "/events", method: .post, headers: [.cookie: pair], body: ByteBuffer(string: Self.event("CAMX", Self.now - 1000, 80, id: "c"))
            ) { r in
                #expect(r.status == .unauthorized)
            }
            // Revoking the credential ends its sessions.
            let adminId = try #require(Token.parse(f.admin)?.id)
            _ = try CredentialAdmin.revoke(at: f.credentials.path, id: adminId, actor: "test")
            try f.credentials.reloadIfChanged()
            try await client.execute(uri: "/kvfv", method: .get, headers: [.cookie: pair]) { r in #expect(r.status == .unauthorized) }
            // Sign out clears the cookie.
            try await client.execute(uri: "/session", method: .delete, headers: [.cookie: pair]) { r in
                #expect(r.status == .noContent)
                #expect(r.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
        }
    }

    @Test("admin API: create (token shown once), list (no secrets), revoke — written to the file and the audit log; the token works at once")
    func adminAPI() async throws {
        try await Self.withServer { client, f in
            let created = try await client.execute(
                uri: "/admin/credentials", method: .post, headers: Self.auth(f.admin),
                body: ByteBuffer(string: "{\"role\":\"camera\",\"kvfv\":[\"NEW1\"],\"name\":\"A-107 km 42\"}")
            ) { r in
                #expect(r.status == .created)
                #expect(r.headers[.cacheControl] == "no-store")
                return Self.object(r.body)
            }
            let token = try #require(created["token"] as? String)
            let id = try #require(created["id"] as? String)
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(token), body: ByteBuffer(string: Self.event("NEW1", Self.now - 1000, 80, id: "n"))
            ) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
            }
            try await client.execute(uri: "/admin/credentials", method: .get, headers: Self.auth(f.admin)) { r in
                let text = String(buffer: r.body)
                #expect(!text.contains("secret") && !text.contains(String(token.split(separator: "_").last!)))
                let list = (Self.object(r.body)["credentials"] as? [[String: Any]]) ?? []
                #expect(list.count == 5)
                #expect(list.contains { $0["id"] as? String == id && $0["name"] as? String == "A-107 km 42" })
            }
            for (body, reason) in [
                ("{\"role\":\"god\"}", "invalid_role"), ("{\"role\":\"camera\"}", "missing_kvfv"), ("{\"role\":\"camera\",\"kvfv\":[\"a b\"]}", "invalid_kvfv_pattern"),
                ("nope", "invalid_body"),
            ] {
                try await client.execute(uri: "/admin/credentials", method: .post, headers: Self.auth(f.admin), body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .badRequest, "\(body)")
                    #expect(Self.object(r.body)["reason"] as? String == reason, "\(body)")
                }
            }
            try await client.execute(uri: "/admin/credentials/\(id)", method: .delete, headers: Self.auth(f.admin)) { r in
                #expect(r.status == .ok)
                #expect(Self.object(r.body)["revoked_at"] is String)
            }
            let adminSelf = try #require(Token.parse(f.admin)?.id)
            try await client.execute(uri: "/admin/credentials/\(adminSelf)", method: .delete, headers: Self.auth(f.admin)) { r in
                #expect(r.status == .conflict)
                #expect(Self.object(r.body)["reason"] as? String == "cannot_revoke_self")
            }
            try await client.execute(uri: "/admin/credentials/ffffffffffffffff", method: .delete, headers: Self.auth(f.admin)) { r in
                #expect(r.status == .notFound)
                #expect(Self.object(r.body)["reason"] as? String == "unknown_credential")
            }
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(token), body: ByteBuffer(string: Self.event("NEW1", Self.now - 1000, 80, id: "n2"))
            ) { r in
                #expect(r.status == .unauthorized)
            }
            let audit = try AuditLog.entries(forCredentials: f.credentials.path)
            let adminId = try #require(Token.parse(f.admin)?.id)
            #expect(audit.suffix(2).map { $0["action"] } == ["create", "revoke"])
            #expect(audit.suffix(2).allSatisfy { $0["actor"] == "credential:\(adminId)" && $0["credential"] == id })
        }
    }

    @Test("browser safety, auth on or off: cross-site writes and text/plain or form bodies from a browser are refused; curl-style requests are not")
    func browserSafety() async throws {
        for mode in [AuthMode.off, .required] {
            try await Self.withServer(mode: mode) { client, f in
                let body = ByteBuffer(string: Self.event("CAMX", Self.now - 1000, 80, id: "b-\(mode)"))
                let token = mode == .required ? f.camera : nil
                for (headers, status, reason) in [
                    ([HTTPField.Name.origin: "https://evil.example", .contentType: "application/json"], HTTPResponse.Status.forbidden, "cross_site_request"),
                    ([.origin: "null", .contentType: "text/plain"], .forbidden, "cross_site_request"),
                    ([HTTPField.Name("Sec-Fetch-Site")!: "cross-site", .contentType: "application/json"], .forbidden, "cross_site_request"),
                    ([.origin: "http://localhost", .contentType: "text/plain;charset=UTF-8"], .unsupportedMediaType, "unsupported_media_type"),
                    ([.origin: "http://localhost", .contentType: "application/x-www-form-urlencoded"], .unsupportedMediaType, "unsupported_media_type"),
                ] as [(HTTPFields, HTTPResponse.Status, String)] {
                    try await client.execute(uri: "/events", method: .post, headers: Self.auth(token, headers), body: body) { r in
                        #expect(r.status == status, "\(mode) \(headers)")
                        #expect(Self.object(r.body)["reason"] as? String == reason, "\(mode) \(headers)")
                    }
                }
                #expect(f.engine.stats.snapshot(nowMs: Self.now).accepted == 0)
                // Same origin with JSON (the dashboard), and curl -d (a form type, no Origin): taken.
                try await client.execute(
                    uri: "/events", method: .post,
                    headers: Self.auth(token, [.origin: "http://localhost", HTTPField.Name("Sec-Fetch-Site")!: "same-origin", .contentType: "application/json"]),
                    body: body
                ) { r in
                    #expect(r.status == .ok, "\(mode)")
                }
                try await client.execute(
                    uri: "/events", method: .post, headers: Self.auth(token, [.contentType: "application/x-www-form-urlencoded"]), body: body
                ) { r in
                    #expect(r.status == .ok, "\(mode)")
                    #expect(Self.object(r.body)["duplicates"] as? Int == 1)
                }
            }
        }
    }

    /// A clock the test moves.
    final class TestClock: Sendable {
        let seconds = Mutex(1_000_000.0)
        func advance(_ s: Double) { seconds.withLock { $0 += s } }
        var now: Double { seconds.withLock { $0 } }
    }

    @Test("quotas: events and requests per credential (its own limit wins) → 429 + Retry-After, nothing stored; admins unlimited")
    func quotas() async throws {
        let clock = TestClock()
        let quotas = Quotas(limits: .init(requestsPerSecond: 1, eventsPerSecond: 1000), clock: { clock.now })
        try await Self.withServer(quotas: quotas) { client, f in
            let path = f.credentials.path
            let (_, slow) = try CredentialAdmin.create(
                at: path, role: .camera, kvfv: ["Q1"], name: nil, limits: RateLimits(requestsPerSecond: 100, eventsPerSecond: 100), actor: "t")
            try f.credentials.reloadIfChanged()
            let t = Self.now - 60_000
            func batch(_ range: Range<Int>) -> ByteBuffer {
                ByteBuffer(string: "[" + range.map { Self.event("Q1", t + Int64($0), 80, id: "q\($0)") }.joined(separator: ",") + "]")
            }
            // 1,000 tokens (100/s × 10 s): one batch of 1,500 passes (into debt), the next is refused.
            try await client.execute(uri: "/events", method: .post, headers: Self.auth(slow), body: batch(0..<1500)) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1500)
            }
            try await client.execute(uri: "/events", method: .post, headers: Self.auth(slow), body: batch(1500..<1501)) { r in
                #expect(r.status == .tooManyRequests)
                #expect(Self.object(r.body)["reason"] as? String == "rate_limited")
                #expect(Int(r.headers[.retryAfter] ?? "") == 6)
            }
            #expect(f.engine.stats.snapshot(nowMs: Self.now).accepted == 1500)
            clock.advance(6)
            try await client.execute(uri: "/events", method: .post, headers: Self.auth(slow), body: batch(1500..<1501)) { r in
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
            }
            // Requests: the node's default of 1/s × 10 s for the reader; the admin is not limited.
            for i in 0..<12 {
                try await client.execute(uri: "/stats", method: .get, headers: Self.auth(f.reader)) { r in
                    #expect(r.status == (i < 10 ? .ok : .tooManyRequests), "\(i)")
                }
                try await client.execute(uri: "/stats", method: .get, headers: Self.auth(f.admin)) { r in #expect(r.status == .ok) }
            }
        }
    }

    @Test("failed authentications per client address: 429 too_many_failed_attempts after the burst, then 401 again; valid credentials never blocked")
    func failedAttempts() async throws {
        let clock = TestClock()
        let quotas = Quotas(limits: .init(failedAuthPerSecond: 0.5), clock: { clock.now })
        try await Self.withServer(quotas: quotas) { client, f in
            for i in 0..<7 {
                try await client.execute(uri: "/kvfv", method: .get, headers: Self.auth("sft_0123456789abcdef_guess\(i)")) { r in
                    #expect(r.status == (i < 5 ? .unauthorized : .tooManyRequests), "\(i)")
                    if i >= 5 { #expect(Self.object(r.body)["reason"] as? String == "too_many_failed_attempts") }
                }
            }
            try await client.execute(uri: "/session", method: .post, body: ByteBuffer(string: "{\"token\":\"sft_0123456789abcdef_x\"}")) { r in
                #expect(r.status == .tooManyRequests)
            }
            // A valid credential from the same address (a camera behind the same NAT) is never locked out.
            try await client.execute(uri: "/kvfv", method: .get, headers: Self.auth(f.reader)) { r in #expect(r.status == .ok) }
            clock.advance(2)
            try await client.execute(uri: "/kvfv", method: .get, headers: Self.auth("sft_0123456789abcdef_again")) { r in
                #expect(r.status == .unauthorized)
            }
        }
    }

    @Test("an aggregator's /metrics needs a reader when auth is required; /health stays open")
    func aggregatorMetrics() async throws {
        let path = temporaryDirectory().path + "/credentials.json"
        let reader = try CredentialAdmin.create(at: path, role: .reader, kvfv: [], name: nil, actor: "t").token
        let router = SpeedflowHTTP.healthAndMetricsRouter(
            prometheus: nil, access: AccessControl(mode: .required, credentials: try CredentialStore(path: path)))
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { r in #expect(r.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: Self.auth(reader)) { r in #expect(r.status == .ok) }
        }
    }

    @Test("--cors-origin: a configured origin's preflight is answered and its token-bearing writes pass, with CORS headers; others get none")
    func cors() async throws {
        let path = temporaryDirectory().path + "/credentials.json"
        let camera = try CredentialAdmin.create(at: path, role: .camera, kvfv: ["CORS1"], name: nil, actor: "t").token
        let stats = IngestStats(nowMs: 0)
        let node = HTTPNode(
            role: "ingest", intake: Intake(sink: RecordingSink(), stats: stats, policy: ValidationPolicy(), cameras: nil),
            queries: nil, stats: stats, status: NodeStatus())
        let access = AccessControl(mode: .required, credentials: try CredentialStore(path: path), allowedOrigins: ["https://ops.example.org"])
        let router = SpeedflowHTTP.router(node: node, configuration: ServerConfiguration(), prometheus: nil, access: access)
        try await Application(router: router).test(.router) { client in
            let preflight: HTTPFields = [.origin: "https://ops.example.org", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "authorization, content-type"]
            try await client.execute(uri: "/events", method: .options, headers: preflight) { r in
                #expect(r.status == .noContent)
                #expect(r.headers[.accessControlAllowOrigin] == "https://ops.example.org")
                #expect(r.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
                #expect(r.headers[.accessControlAllowCredentials] == nil)
            }
            let body = ByteBuffer(string: Self.event("CORS1", Self.now - 1000, 80, id: "cors"))
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(camera, [.origin: "https://ops.example.org", .contentType: "application/json"]), body: body
            ) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.accessControlAllowOrigin] == "https://ops.example.org")
            }
            try await client.execute(uri: "/events", method: .post, headers: [.origin: "https://ops.example.org", .contentType: "application/json"], body: body) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.accessControlAllowOrigin] == "https://ops.example.org", "the page can read why")
            }
            try await client.execute(uri: "/events", method: .options, headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST"]) { r in
                #expect(r.headers[.accessControlAllowOrigin] == nil)
            }
            try await client.execute(
                uri: "/events", method: .post, headers: Self.auth(camera, [.origin: "https://evil.example", .contentType: "application/json"]), body: body
            ) { r in
                #expect(r.status == .forbidden && r.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }

    @Test("auth off: no credential needed anywhere (the loopback default)")
    func authOff() async throws {
        try await Self.withServer(mode: .off) { client, _ in
            try await client.execute(uri: "/kvfv", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/session", method: .get) { r in #expect(Self.object(r.body)["auth"] as? String == "off") }
        }
    }

    @Test("the default mode: off only on loopback addresses")
    func defaultMode() {
        #expect(AuthMode.defaultMode(host: "127.0.0.1") == .off)
        #expect(AuthMode.defaultMode(host: "localhost") == .off)
        #expect(AuthMode.defaultMode(host: "::1") == .off)
        #expect(AuthMode.defaultMode(host: "0.0.0.0") == .required)
        #expect(AuthMode.defaultMode(host: "10.0.0.5") == .required)
        #expect(AuthMode.defaultMode(host: "::") == .required)
    }
}
