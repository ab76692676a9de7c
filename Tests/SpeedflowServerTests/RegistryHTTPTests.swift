import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowServer
import SpeedflowStore
import SpeedflowTestSupport
import Testing

/// The camera registry over HTTP, in-process through the real router with auth required: reads for readers,
/// writes for admins only, strict validation with reasons, CSV and GeoJSON answers, and `/kvfv` rows carrying
/// each camera's entry.
@Suite("HTTP: camera registry")
struct RegistryHTTPTests {
    struct Fixture: Sendable {
        let engine: Engine
        let registry: CameraRegistry
        let admin: String, reader: String, camera: String
        let adminId: String
    }

    static func withServer(_ body: @Sendable (any TestClientProtocol, Fixture) async throws -> Void) async throws {
        let dir = temporaryDirectory("speedflow-registry-http")
        defer { try? FileManager.default.removeItem(at: dir) }
        let credentials = dir.appendingPathComponent("credentials.json").path
        let (adminRecord, admin) = try CredentialAdmin.create(at: credentials, role: .admin, kvfv: [], name: nil, actor: "test")
        let reader = try CredentialAdmin.create(at: credentials, role: .reader, kvfv: [], name: nil, actor: "test").token
        let camera = try CredentialAdmin.create(at: credentials, role: .camera, kvfv: ["REG*"], name: nil, actor: "test").token
        let registry = try CameraRegistry(path: dir.appendingPathComponent("cameras.json").path)
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path), configuration: EngineConfiguration())
        engine.start()
        let router = SpeedflowHTTP.router(
            node: .serve(engine, registry: registry), configuration: ServerConfiguration(), prometheus: nil,
            access: AccessControl(mode: .required, credentials: try CredentialStore(path: credentials)))
        try await Application(router: router).test(.router) { client in
            try await body(client, Fixture(engine: engine, registry: registry, admin: admin, reader: reader, camera: camera, adminId: adminRecord.id))
        }
        engine.shutdown()
    }

    static func headers(_ token: String?, _ more: HTTPFields = [:]) -> HTTPFields {
        var h = more
        if let token { h[.authorization] = "Bearer \(token)" }
        h[.contentType] = h[.contentType] ?? "application/json"
        return h
    }

    struct Answer {
        var status: HTTPResponse.Status
        var json: [String: Any]
        var text: String
        var contentType: String?
    }

    static func call(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, token: String?, body: String? = nil, headers more: HTTPFields = [:]
    ) async throws -> Answer {
        try await client.execute(uri: uri, method: method, headers: headers(token, more), body: body.map { ByteBuffer(string: $0) }) { r in
            Answer(status: r.status, json: HTTPContractTests.object(r.body), text: String(buffer: r.body), contentType: r.headers[.contentType])
        }
    }

    static let entry = """
        {"name":"A-107 km 42, \\"north\\"","road":"A-107","direction":"N","km":42.3,"latitude":55.75,"longitude":37.62,
         "speed_limits":[{"kmh":90,"from":null},{"kmh":70,"from":"2025-06-01T00:00:00Z"}],"lanes":3,"time_zone":"Europe/Moscow",
         "expected_daily_volume":24000}
        """

    @Test("PUT as admin stores and answers the entry; GET and GET /registry read it; DELETE removes it; the audit log has both")
    func crud() async throws {
        try await Self.withServer { client, f in
            var a = try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: Self.entry)
            #expect(a.status == .ok, "\(a.text)")
            #expect(a.json["kvfv_id"] as? String == "REG1" && a.json["speed_limit"] as? Int == 70 && a.json["lanes"] as? Int == 3)
            #expect(a.json["name"] as? String == "A-107 km 42, \"north\"")
            let limits = a.json["speed_limits"] as? [[String: Any]]
            #expect(limits?.count == 2 && limits?.first?["from"] is NSNull && limits?.last?["from"] as? String == "2025-06-01T00:00:00Z")
            #expect(f.registry.info("REG1")?.limit(atMs: 0) == 90)
            // Readers read it.
            a = try await Self.call(client, .get, "/kvfv/REG1/registry", token: f.reader)
            #expect(a.status == .ok && a.json["road"] as? String == "A-107" && a.json["expected_daily_volume"] as? Int == 24000)
            a = try await Self.call(client, .get, "/registry", token: f.reader)
            #expect(a.status == .ok && a.contentType == "application/json")
            #expect((a.json["cameras"] as? [[String: Any]])?.map { $0["kvfv_id"] as? String } == ["REG1"])
            // A PUT replaces the whole entry: what is left out is cleared; a kvfv_id equal to the path's is fine.
            a = try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: "{\"kvfv_id\":\"REG1\",\"lanes\":2}")
            #expect(a.status == .ok && a.json["name"] is NSNull && a.json["speed_limits"] as? [Any] != nil && a.json["speed_limit"] is NSNull)
            #expect(f.registry.info("REG1") == CameraInfo(kvfvId: "REG1", lanes: 2))
            a = try await Self.call(client, .delete, "/kvfv/REG1/registry", token: f.admin)
            #expect(a.status == .noContent)
            a = try await Self.call(client, .delete, "/kvfv/REG1/registry", token: f.admin)
            #expect(a.status == .notFound && a.json["reason"] as? String == "not_registered")
            a = try await Self.call(client, .get, "/kvfv/REG1/registry", token: f.reader)
            #expect(a.status == .notFound && a.json["reason"] as? String == "not_registered")
            let audit = try AuditLog.entries(forCredentials: f.registry.path).filter { ($0["action"] ?? "").hasPrefix("registry") }
            #expect(audit.map { $0["action"] } == ["registry_put", "registry_put", "registry_remove"])
            #expect(audit.allSatisfy { $0["actor"] == "credential:\(f.adminId)" && $0["kvfv"] == "REG1" })
        }
    }

    @Test("writes are admin-only: 401 without a token, 403 for a reader or a camera, nothing stored")
    func adminOnly() async throws {
        try await Self.withServer { client, f in
            for (token, status) in [(nil, HTTPResponse.Status.unauthorized), (f.reader, .forbidden), (f.camera, .forbidden)] {
                var a = try await Self.call(client, .put, "/kvfv/REG1/registry", token: token, body: Self.entry)
                #expect(a.status == status, "\(a.text)")
                a = try await Self.call(client, .delete, "/kvfv/REG1/registry", token: token)
                #expect(a.status == status, "\(a.text)")
            }
            #expect(f.registry.all().isEmpty)
            // A camera credential does not read the registry either; no token is 401.
            #expect(try await Self.call(client, .get, "/registry", token: f.camera).status == .forbidden)
            #expect(try await Self.call(client, .get, "/registry", token: nil).status == .unauthorized)
            #expect(try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: Self.entry).status == .ok)
            // Another site's page cannot make an admin's browser write.
            let a = try await Self.call(
                client, .put, "/kvfv/REG1/registry", token: f.admin, body: "{}", headers: [.origin: "https://evil.example"])
            #expect(a.status == .forbidden && a.json["reason"] as? String == "cross_site_request")
            #expect(f.registry.info("REG1")?.lanes == 3)
        }
    }

    @Test("bad input is 400 with a reason; nothing stored")
    func badInput() async throws {
        try await Self.withServer { client, f in
            let cases: [(String, String, String)] = [
                ("/kvfv/REG1/registry", "{\"kvfv_id\":\"REG2\"}", "kvfv_id_mismatch"),
                ("/kvfv/REG1/registry", "{\"latitude\":91,\"longitude\":0}", "invalid_latitude"),
                ("/kvfv/REG1/registry", "{\"latitude\":0,\"longitude\":-181}", "invalid_longitude"),
                ("/kvfv/REG1/registry", "{\"latitude\":0}", "invalid_position"),
                ("/kvfv/REG1/registry", "{\"speed_limits\":[{\"kmh\":301}]}", "invalid_speed_limit"),
                ("/kvfv/REG1/registry", "{\"speed_limits\":[{\"kmh\":60.5}]}", "invalid_speed_limit"),
                ("/kvfv/REG1/registry", "{\"speed_limits\":[{\"kmh\":90,\"from\":\"2025-06-01T00:02:00Z\"}]}", "invalid_limit_period"),
                ("/kvfv/REG1/registry", "{\"speed_limits\":[{\"kmh\":90},{\"kmh\":80}]}", "invalid_limit_period"),
                ("/kvfv/REG1/registry", "{\"lanes\":0}", "invalid_lanes"),
                ("/kvfv/REG1/registry", "{\"time_zone\":\"Europe/Atlantis\"}", "unknown_time_zone"),
                ("/kvfv/REG1/registry", "{\"expected_daily_volume\":0}", "invalid_expected_volume"),
                ("/kvfv/REG1/registry", "{\"speed_limit\":90}", "invalid_field"),
                ("/kvfv/REG1/registry", "{\"colour\":\"red\"}", "invalid_field"),
                ("/kvfv/REG1/registry", "{\"name\":\"\(String(repeating: "x", count: 201))\"}", "invalid_field"),
                ("/kvfv/REG1/registry", "{\"lanes\":\"3\"}", "invalid_field"),
                ("/kvfv/REG1/registry", "[]", "malformed_json"),
                ("/kvfv/REG1/registry", "{", "malformed_json"),
                ("/kvfv/a%20b/registry", "{}", "invalid_kvfv_id"),
            ]
            for (uri, body, reason) in cases {
                let a = try await Self.call(client, .put, uri, token: f.admin, body: body)
                #expect(a.status == .badRequest && a.json["reason"] as? String == reason, "\(body): \(a.text)")
                #expect((a.json["message"] as? String)?.isEmpty == false)
            }
            #expect(f.registry.all().isEmpty)
            let big = "{\"name\":\"" + String(repeating: "x", count: 70_000) + "\"}"
            let a = try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: big)
            #expect(a.status == .contentTooLarge && a.json["reason"] as? String == "body_too_large")
            #expect(try await Self.call(client, .get, "/registry?format=xml", token: f.reader).json["reason"] as? String == "invalid_format")
            #expect(try await Self.call(client, .get, "/kvfv/a%20b/registry", token: f.reader).json["reason"] as? String == "invalid_kvfv_id")
            #expect(try await Self.call(client, .patch, "/kvfv/REG1/registry", token: f.admin).status == .methodNotAllowed)
        }
    }

    @Test("GET /registry as CSV (format=csv or Accept: text/csv) and GeoJSON reads back as the same registry")
    func formats() async throws {
        try await Self.withServer { client, f in
            #expect(try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: Self.entry).status == .ok)
            #expect(try await Self.call(client, .put, "/kvfv/REG2/registry", token: f.admin, body: "{\"name\":\"line 1\\nline 2\"}").status == .ok)
            for (uri, accept, format) in [
                ("/registry?format=csv", nil, RegistryIO.Format.csv), ("/registry", "text/csv", .csv), ("/registry?format=geojson", nil, .geojson),
                ("/registry?format=json", nil, .json),
            ] {
                let a = try await Self.call(client, .get, uri, token: f.reader, headers: accept.map { [.accept: $0] } ?? [:])
                #expect(a.status == .ok && a.contentType == format.contentType, "\(uri)")
                #expect(try RegistryIO.import(Data(a.text.utf8), format: format) == f.registry.all(), "\(uri)")
            }
        }
    }

    @Test("GET /kvfv rows carry registry (or null); registered cameras without events are in /registry, not /kvfv")
    func cameraRows() async throws {
        try await Self.withServer { client, f in
            let t = HTTPContractTests.now - 60_000
            let events = ["REG1", "REG2"].map { "{\"kvfv_id\":\"\($0)\",\"timestamp\":\"\(Timestamp.format(t))\",\"vehicle_speed\":80}" }
            var a = try await Self.call(client, .post, "/events", token: f.camera, body: "[" + events.joined(separator: ",") + "]")
            #expect(a.status == .ok && a.json["accepted"] as? Int == 2, "\(a.text)")
            #expect(try await Self.call(client, .put, "/kvfv/REG1/registry", token: f.admin, body: Self.entry).status == .ok)
            #expect(try await Self.call(client, .put, "/kvfv/GHOST/registry", token: f.admin, body: "{\"name\":\"no events yet\"}").status == .ok)
            a = try await Self.call(client, .get, "/kvfv", token: f.reader)
            let rows = try #require(a.json["cameras"] as? [[String: Any]])
            #expect(rows.map { $0["kvfv_id"] as? String } == ["REG1", "REG2"])
            let registry = try #require(rows[0]["registry"] as? [String: Any])
            #expect(registry["name"] as? String == "A-107 km 42, \"north\"" && registry["speed_limit"] as? Int == 70 && registry["kvfv_id"] as? String == "REG1")
            #expect(rows[1]["registry"] is NSNull)
            a = try await Self.call(client, .get, "/registry", token: f.reader)
            #expect((a.json["cameras"] as? [[String: Any]])?.map { $0["kvfv_id"] as? String } == ["GHOST", "REG1"])
        }
    }

    @Test("a node without a registry answers not_served_here, and its /kvfv rows have registry null")
    func noRegistry() async throws {
        try await HTTPContractTests.withServer { client, _ in
            try await client.execute(uri: "/registry", method: .get) { r in
                #expect(r.status == .notFound && HTTPContractTests.object(r.body)["reason"] as? String == "not_served_here")
            }
            try await client.execute(uri: "/kvfv/A/registry", method: .put, body: ByteBuffer(string: "{}")) { r in
                #expect(r.status == .notFound && HTTPContractTests.object(r.body)["reason"] as? String == "not_served_here")
            }
            let event = HTTPContractTests.event("NOREG", HTTPContractTests.now - 60_000, 80, id: "a")
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: event)) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/kvfv", method: .get) { r in
                let rows = HTTPContractTests.object(r.body)["cameras"] as? [[String: Any]]
                #expect(rows?.count == 1 && rows?.first?["registry"] is NSNull)
            }
        }
    }
}
