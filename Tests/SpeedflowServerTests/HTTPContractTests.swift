import CompressNIO
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowServer
import SpeedflowStore
import Testing

/// The HTTP contract of DESIGN.md, driven in-process through the real router, engine, log and SQLite.
@Suite("HTTP contract")
struct HTTPContractTests {
    struct Fixture: Sendable {
        let engine: Engine
        let dir: URL
    }

    static func withServer(
        maxBodyBytes: Int = 1 << 20, start: Bool = true, live: Bool = false, configure: (inout EngineConfiguration) -> Void = { _ in },
        _ body: @Sendable (any TestClientProtocol, Fixture) async throws -> Void
    ) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-http-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var configuration = EngineConfiguration()
        configure(&configuration)
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path),
            configuration: configuration)
        if start { engine.start() }
        let router = SpeedflowHTTP.router(
            node: .serve(engine), configuration: ServerConfiguration(maxBodyBytes: maxBodyBytes), prometheus: nil)
        let app = Application(router: router)
        try await app.test(live ? .live : .router) { client in try await body(client, Fixture(engine: engine, dir: dir)) }
        if !start { engine.start() }
        engine.shutdown()
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    /// Non-throwing variant for use inside `#expect`.
    static func object(_ buffer: ByteBuffer) -> [String: Any] { (try? json(buffer)) ?? [:] }

    static func iso(_ ms: Int64) -> String { Timestamp.format(ms) }

    static func event(_ camera: String, _ ms: Int64, _ speed: Double, id: String?) -> String {
        var s = "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(iso(ms))\",\"vehicle_speed\":\(speed)"
        if let id { s += ",\"event_id\":\"\(id)\"" }
        return s + ",\"lane\":1,\"plate_number\":\"A123БВ68\"}"
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    @Test("single object, array and NDJSON bodies; per-element reasons by index; resends are duplicates")
    func ingestForms() async throws {
        try await Self.withServer { client, _ in
            let t = Self.now - 60_000
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: Self.event("KV1", t, 80, id: "a"))) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r.body)
                #expect(j["accepted"] as? Int == 1 && j["duplicates"] as? Int == 0)
            }
            let array = "[\(Self.event("KV1", t, 80, id: "a")), \(Self.event("KV1", t, 90, id: "b")), 7, "
                + "{\"kvfv_id\":\"KV1\",\"timestamp\":\"\(Self.iso(t))\",\"vehicle_speed\":301}, "
                + "{\"kvfv_id\":\"KV1\",\"timestamp\":\"\(Self.iso(Self.now + 3_600_000))\",\"vehicle_speed\":50}, "
                + "{\"kvfv_id\":\"KV1\",\"timestamp\":\"\(Self.iso(Self.now - 8 * 86_400_000))\",\"vehicle_speed\":50}, "
                + "{\"kvfv_id\":\"KV1\",\"timestamp\":\"yesterday\",\"vehicle_speed\":50}, "
                + "{\"timestamp\":\"\(Self.iso(t))\",\"vehicle_speed\":50}, "
                + "{\"kvfv_id\":\"KV1\",\"timestamp\":\"\(Self.iso(t))\",\"vehicle_speed\":\"fast\"}]"
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: array)) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r.body)
                #expect(j["accepted"] as? Int == 1)
                #expect(j["duplicates"] as? Int == 1)
                let rejected = try #require(j["rejected"] as? [[String: Any]])
                let pairs = rejected.map { "\($0["index"] as? Int ?? -1):\($0["reason"] as? String ?? "")" }
                #expect(pairs == [
                    "2:not_an_object", "3:speed_out_of_range", "4:in_future", "5:too_late", "6:invalid_timestamp",
                    "7:missing_field", "8:invalid_speed",
                ])
            }
            let ndjson = "\(Self.event("KV2", t, 70, id: "n1"))\n\n{oops\r\n\(Self.event("KV2", t, 72, id: "n2"))\n"
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentType: "application/x-ndjson"], body: ByteBuffer(string: ndjson)
            ) { r in
                let j = try Self.json(r.body)
                #expect(j["accepted"] as? Int == 2)
                let rejected = try #require(j["rejected"] as? [[String: Any]])
                #expect(rejected.count == 1 && rejected[0]["index"] as? Int == 1 && rejected[0]["reason"] as? String == "malformed_json")
            }
        }
    }

    @Test("gzip bodies are accepted; broken gzip is a 400 with a reason")
    func gzip() async throws {
        try await Self.withServer { client, _ in
            var plain = ByteBuffer(string: "[\(Self.event("KVZ", Self.now - 1000, 88, id: "z1"))]")
            let compressed = try plain.compress(with: .gzip())
            try await client.execute(uri: "/events", method: .post, headers: [.contentEncoding: "gzip"], body: compressed) { r in
                #expect(r.status == .ok)
                #expect(Self.object(r.body)["accepted"] as? Int == 1)
            }
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentEncoding: "gzip"], body: ByteBuffer(string: "not gzip")
            ) { r in
                #expect(r.status == .badRequest)
                #expect(Self.object(r.body)["reason"] as? String == "invalid_gzip")
            }
        }
    }

    @Test("unparseable bodies are 400, oversized ones 413, and nothing of them is stored")
    func badBodies() async throws {
        try await Self.withServer(maxBodyBytes: 4096) { client, fixture in
            for body in ["[{\"kvfv_id\": ", "", "hello", "42"] {
                try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .badRequest, "\(body)")
                    #expect(r.headers[.contentType] == "application/json")
                    let reason = try Self.json(r.body)["reason"] as? String
                    #expect(reason == "malformed_json" || reason == "empty_body")
                }
            }
            let big = "[" + Array(repeating: Self.event("KVB", Self.now - 1000, 50, id: nil), count: 100).joined(separator: ",") + "]"
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: big)) { r in
                #expect(r.status == .contentTooLarge)
                #expect(Self.object(r.body)["reason"] as? String == "body_too_large")
            }
            #expect(fixture.engine.log.endOffset == .zero, "nothing may reach the log")
        }
    }

    @Test("a full intake queue answers 503 with Retry-After and stores nothing of that request")
    func overload() async throws {
        try await Self.withServer(start: false, configure: { $0.maxPendingEvents = 3 }) { client, fixture in
            let t = Self.now - 1000
            let first = Task {
                try await client.execute(
                    uri: "/events", method: .post,
                    body: ByteBuffer(string: "[\(Self.event("KVO", t, 60, id: "1")),\(Self.event("KVO", t, 61, id: "2"))]")
                ) { r in r.status }
            }
            // The engine is not started, so the first request waits in the queue.
            let deadline = ContinuousClock.now + .seconds(10)
            while fixture.engine.queueDepth == 0 && ContinuousClock.now < deadline { await Task.yield() }
            #expect(fixture.engine.queueDepth == 2)
            try await client.execute(
                uri: "/events", method: .post,
                body: ByteBuffer(string: "[\(Self.event("KVO", t, 70, id: "3")),\(Self.event("KVO", t, 71, id: "4"))]")
            ) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] == "1")
                #expect(Self.object(r.body)["reason"] as? String == "overloaded")
            }
            fixture.engine.start()
            #expect(try await first.value == .ok)
            let window = Window(startMs: t.floorDiv(86_400_000) * 86_400_000, endMs: t.floorDiv(86_400_000) * 86_400_000 + 86_400_000)
            let states = try await fixture.engine.windowStates(kvfvId: "KVO", windows: [window])
            #expect(states?.first?.count == 2, "only the first request's events are stored")
        }
    }

    @Test("avg-speed lists every window, empty ones with count 0 and nulls; CSV has the same rows")
    func avgSpeed() async throws {
        try await Self.withServer { client, _ in
            let hour = (Self.now - 3 * 3_600_000).floorDiv(3_600_000) * 3_600_000
            let speeds = [50.5, 60.25, 70.0, 99.9]
            let body = "[" + speeds.enumerated().map { Self.event("KVQ", hour + 60_000 + Int64($0.offset) * 1000, $0.element, id: "q\($0.offset)") }
                .joined(separator: ",") + "]"
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: body)) { r in #expect(r.status == .ok) }
            let uri = "/kvfv/KVQ/avg-speed?from=\(Self.iso(hour))&to=\(Self.iso(hour + 3_600_000))&interval=5m"
            try await client.execute(uri: uri, method: .get) { r in
                #expect(r.status == .ok)
                let j = try Self.json(r.body)
                #expect(j["kvfv_id"] as? String == "KVQ" && j["interval"] as? String == "5m")
                let windows = try #require(j["windows"] as? [[String: Any]])
                #expect(windows.count == 12)
                #expect(windows[0]["start"] as? String == Self.iso(hour))
                #expect(windows[0]["end"] as? String == Self.iso(hour + 300_000))
                #expect(windows[0]["count"] as? Int == 4)
                let sum = speeds.reduce(0, +)
                #expect(abs((windows[0]["avg_speed"] as? Double ?? 0) - sum / 4) < 1e-12)
                let harmonic = 4 / speeds.reduce(0) { $0 + 1 / $1 }
                #expect(abs((windows[0]["harmonic_mean_speed"] as? Double ?? 0) - harmonic) < 1e-12)
                #expect(windows[0]["min_speed"] as? Double == 50.5 && windows[0]["max_speed"] as? Double == 99.9)
                #expect(windows[0]["p50_speed"] as? Int == 60 && windows[0]["p85_speed"] as? Int == 99)
                #expect(windows[1]["count"] as? Int == 0)
                #expect(windows[1]["avg_speed"] is NSNull && windows[1]["p85_speed"] is NSNull)
            }
            try await client.execute(uri: uri + "&format=csv", method: .get) { r in
                #expect(r.headers[.contentType]?.hasPrefix("text/csv") == true)
                let lines = String(buffer: r.body).split(separator: "\n")
                #expect(lines.count == 13)
                #expect(lines[0].hasPrefix("start,end,count,avg_speed"))
                #expect(lines[1].hasPrefix("\(Self.iso(hour)),\(Self.iso(hour + 300_000)),4,"))
                // Empty window: no statistics, no late events; no seq, so nothing about completeness; a flow of 0
                // vehicles/hour, no pace, no limit registered, no lane (the camera's totals).
                #expect(lines[2] == "\(Self.iso(hour + 300_000)),\(Self.iso(hour + 600_000)),0,,,,,,,,,0,,,,0.0,,,,,,,,,,,,")
            }
            try await client.execute(uri: uri, method: .get, headers: [.accept: "text/csv"]) { r in
                #expect(r.headers[.contentType]?.hasPrefix("text/csv") == true)
            }
        }
    }

    @Test("query errors carry reason codes")
    func queryErrors() async throws {
        try await Self.withServer { client, _ in
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: Self.event("KVE", Self.now - 1000, 50, id: "e"))) { _ in }
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("/kvfv/KVE/avg-speed?to=2025-01-02T00:00:00Z", .badRequest, "missing_parameter"),
                ("/kvfv/KVE/avg-speed?from=2025-01-01&to=2025-01-02T00:00:00Z", .badRequest, "invalid_timestamp"),
                ("/kvfv/KVE/avg-speed?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", .badRequest, "invalid_range"),
                ("/kvfv/KVE/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&interval=7m", .badRequest, "invalid_interval"),
                ("/kvfv/KVE/avg-speed?from=2025-01-01T00:00:00Z&to=2025-03-01T00:00:00Z&interval=5m", .badRequest, "too_many_windows"),
                ("/kvfv/KVE/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&interval=24h&tz=Mars/Base", .badRequest, "invalid_tz"),
                ("/kvfv/NOBODY/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z", .notFound, "unknown_kvfv"),
                ("/kvfv/bad%20id/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z", .badRequest, "invalid_kvfv_id"),
            ]
            for (uri, status, reason) in cases {
                try await client.execute(uri: uri, method: .get) { r in
                    #expect(r.status == status, "\(uri)")
                    #expect(Self.object(r.body)["reason"] as? String == reason, "\(uri)")
                }
            }
            // Exactly 10,000 windows is allowed.
            try await client.execute(uri: "/kvfv/KVE/avg-speed?from=2025-01-01T00:00:00Z&to=2025-02-04T17:20:00Z&interval=5m", method: .get) { r in
                #expect(r.status == .ok)
                #expect((Self.object(r.body)["windows"] as? [Any])?.count == 10_000)
            }
        }
    }

    @Test("24h windows with tz start at local midnight; 1d is an alias; offsets in from/to are honoured")
    func timeZones() async throws {
        try await Self.withServer { client, _ in
            let t = Self.now - 2 * 86_400_000
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: Self.event("KVT", t, 50, id: "t"))) { _ in }
            try await client.execute(
                uri: "/kvfv/KVT/avg-speed?from=2025-03-01T00:00:00%2B03:00&to=2025-03-03T00:00:00%2B03:00&interval=1d&tz=Europe/Moscow",
                method: .get
            ) { r in
                let j = try Self.json(r.body)
                #expect(j["interval"] as? String == "24h")
                let windows = try #require(j["windows"] as? [[String: Any]])
                #expect(windows.map { $0["start"] as? String ?? "" } == ["2025-02-28T21:00:00Z", "2025-03-01T21:00:00Z"])
            }
        }
    }

    @Test("camera list, stats, health, metrics and the OpenAPI document")
    func operations() async throws {
        try await Self.withServer { client, _ in
            let t = Self.now - 1000
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: "[\(Self.event("KVS", t, 50, id: "s")), 1]")) { _ in }
            try await client.execute(uri: "/kvfv", method: .get) { r in
                let cameras = try #require(try Self.json(r.body)["cameras"] as? [[String: Any]])
                #expect(cameras.count == 1)
                #expect(cameras[0]["kvfv_id"] as? String == "KVS")
                // "Today" is the server's current UTC day at query time.
                let today = t.floorDiv(86_400_000) == Self.now.floorDiv(86_400_000) ? 1 : 0
                #expect(cameras[0]["events_today"] as? Int == today)
                #expect(cameras[0]["events_last_hour"] as? Int == 1)
                #expect(cameras[0]["current_count"] as? Int == (t.floorDiv(300_000) == Self.now.floorDiv(300_000) ? 1 : 0))
                #expect(cameras[0]["health"] as? String == "live")
            }
            try await client.execute(uri: "/stats", method: .get) { r in
                let j = try Self.json(r.body)
                #expect(j["accepted_total"] as? Int == 1)
                #expect((j["rejected_by_reason"] as? [String: Int])?["not_an_object"] == 1)
            }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/openapi.yaml", method: .get) { r in
                #expect(r.status == .ok)
                let text = String(buffer: r.body)
                #expect(text.hasPrefix("openapi: 3"))
                #expect(text.contains("/kvfv/{id}/avg-speed:"))
            }
        }
    }
}
