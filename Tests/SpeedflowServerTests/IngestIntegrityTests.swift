import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowModel
@testable import SpeedflowServer
import SpeedflowEngine
import SpeedflowLog
import SpeedflowStore
import Testing

/// The HTTP side of issue 11: gzip members, encodings, 413 from the header, bounded answers, nesting, JSON
/// errors everywhere, time zones, tiny speeds.
@Suite("HTTP integrity")
struct IngestIntegrityTests {
    typealias H = HTTPContractTests

    static func gzip(_ text: String) -> ByteBuffer {
        ByteBuffer(bytes: Array(text.utf8).withUnsafeBytes { Gzip.compress($0) })
    }

    @Test("concatenated gzip members are all read; garbage, a cut trailer or a bad CRC is 400 invalid_gzip and stores nothing")
    func gzipMembers() async throws {
        try await H.withServer { client, fixture in
            let t = H.now - 60_000
            var a = Self.gzip(H.event("KVG", t, 80, id: "g1") + "\n")
            a.writeImmutableBuffer(Self.gzip(H.event("KVG", t, 81, id: "g2") + "\n"))
            let bad: [(String, ByteBuffer)] = {
                let one = Array(Self.gzip(H.event("KVG", t, 82, id: "g3")).readableBytesView)
                var crc = one
                crc[crc.count - 8] ^= 0xFF
                return [
                    ("trailing garbage", ByteBuffer(bytes: one + Array("garbage".utf8))),
                    ("cut trailer", ByteBuffer(bytes: Array(one.dropLast(4)))),
                    ("bad crc", ByteBuffer(bytes: crc)),
                    ("second member cut", ByteBuffer(bytes: one + Array(one.dropLast(2)))),
                ]
            }()
            for (name, body) in bad {
                try await client.execute(uri: "/events", method: .post, headers: [.contentEncoding: "gzip"], body: body) { r in
                    #expect(r.status == .badRequest, "\(name)")
                    #expect(H.object(r.body)["reason"] as? String == "invalid_gzip", "\(name)")
                }
            }
            #expect(fixture.engine.log.endOffset == .zero, "nothing of a refused body may reach the log")
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentEncoding: " GZIP ", .contentType: "application/x-ndjson"], body: a
            ) { r in
                #expect(r.status == .ok)
                #expect(H.object(r.body)["accepted"] as? Int == 2)
            }
        }
    }

    @Test("Content-Encoding other than exactly gzip or identity is 415 unsupported_encoding",
          arguments: ["x-gzip", "gzip, br", "br", "deflate", "gzip;q=1", "identity, gzip"])
    func encodings(coding: String) async throws {
        try await H.withServer { client, _ in
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentEncoding: coding],
                body: Self.gzip(H.event("KVE", H.now - 1000, 80, id: "x"))
            ) { r in
                #expect(r.status == .unsupportedMediaType, "\(coding)")
                #expect(H.object(r.body)["reason"] as? String == "unsupported_encoding", "\(coding)")
            }
        }
    }

    /// Sends raw HTTP/1.1 bytes over TCP and returns what arrives until the server closes or 2 s pass.
    static func rawExchange(port: Int, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        // Generous: the answer ends the wait (at its closing brace), the timeout only bounds a server that never answers.
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
            if String(decoding: received, as: UTF8.self).contains("}") { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    @Test("413 comes from Content-Length before the body is read (none is ever sent); a gzip bomb is 413 too")
    func tooLarge() async throws {
        try await H.withServer(maxBodyBytes: 4096, live: true) { client, fixture in
            let port = try #require(client.port)
            // Headers only: a server that waited for the 5,000 announced bytes would never answer.
            let answer = try await HTTPHardeningTests.blocking {
                Result { try Self.rawExchange(
                    port: port, "POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\nContent-Type: application/json\r\n\r\n") }
            }.get()
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
            #expect(answer.contains("\"reason\":\"body_too_large\""), "\(answer)")
            let bomb = Self.gzip("[" + String(repeating: "1,", count: 100_000) + "1]")
            #expect(bomb.readableBytes < 4096)
            try await client.execute(uri: "/events", method: .post, headers: [.contentEncoding: "gzip"], body: bomb) { r in
                #expect(r.status == .contentTooLarge)
                #expect(H.object(r.body)["reason"] as? String == "body_too_large")
            }
            #expect(fixture.engine.log.endOffset == .zero)
        }
    }

    @Test("the answer is bounded: 1,000 rejections in detail, all counted by reason, truncation flagged")
    func boundedAnswer() async throws {
        try await H.withServer(maxBodyBytes: 1 << 20) { client, _ in
            let t = H.now - 1000
            let body = "[" + H.event("KVA", t, 80, id: "a") + "," + Array(repeating: "1", count: 5_000).joined(separator: ",") + "]"
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .ok)
                let j = try H.json(r.body)
                #expect(j["accepted"] as? Int == 1)
                let rejected = try #require(j["rejected"] as? [[String: Any]])
                #expect(rejected.count == 1_000)
                #expect(rejected.first?["index"] as? Int == 1 && rejected.last?["index"] as? Int == 1_000)
                #expect(j["rejected_by_reason"] as? [String: Int] == ["not_an_object": 5_000])
                #expect(j["rejected_truncated"] as? Bool == true)
                #expect(r.body.readableBytes < 64 << 10)
            }
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: "[1,2]")) { r in
                let j = try H.json(r.body)
                #expect(j["rejected_truncated"] as? Bool == false)
                #expect(j["rejected_by_reason"] as? [String: Int] == ["not_an_object": 2])
            }
            try await client.execute(uri: "/stats", method: .get) { r in
                let byReason = try H.json(r.body)["rejected_by_reason"] as? [String: Int]
                #expect(byReason?["not_an_object"] == 5_002)
            }
        }
    }

    @Test("deep nesting in an unknown field: 400 nesting_too_deep (array), per line in NDJSON")
    func nesting() async throws {
        try await H.withServer { client, _ in
            let t = H.now - 1000
            let deep = #"{"kvfv_id":"KVN","timestamp":"\#(Timestamp.format(t))","vehicle_speed":80,"extra":\#(String(repeating: "[", count: 400))\#(String(repeating: "]", count: 400))}"#
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: "[" + deep + "]")) { r in
                #expect(r.status == .badRequest)
                #expect(H.object(r.body)["reason"] as? String == "nesting_too_deep")
            }
            let ndjson = H.event("KVN", t, 80, id: "n1") + "\n" + deep + "\n"
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentType: "application/x-ndjson"], body: ByteBuffer(string: ndjson)
            ) { r in
                let j = try H.json(r.body)
                #expect(j["accepted"] as? Int == 1)
                #expect((j["rejected"] as? [[String: Any]])?.first?["reason"] as? String == "nesting_too_deep")
            }
        }
    }

    @Test("every error is JSON with a reason: unknown route, wrong method, bad tz (NUL, paths), tiny speed")
    func errorsAreJSON() async throws {
        try await H.withServer { client, _ in
            try await client.execute(uri: "/no/such/route", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.headers[.contentType] == "application/json")
                #expect(H.object(r.body)["reason"] as? String == "not_found")
            }
            try await client.execute(uri: "/events", method: .get) { r in
                #expect(r.status.code >= 400)
                #expect(r.headers[.contentType] == "application/json")
                #expect(H.object(r.body)["reason"] is String)
            }
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: H.event("KVT", H.now - 1000, 80, id: "t"))) { _ in }
            for tz in ["Europe/Moscow%00../../etc", "../../etc/passwd", "Europe/Moscow%00", "%20UTC", "Europe//Moscow", "EST5EDT,M3.2.0"] {
                try await client.execute(
                    uri: "/kvfv/KVT/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&interval=24h&tz=\(tz)", method: .get
                ) { r in
                    #expect(r.status == .badRequest, "\(tz)")
                    #expect(H.object(r.body)["reason"] as? String == "invalid_tz", "\(tz)")
                }
            }
            for tz in ["Europe/Moscow", "UTC", "America/Argentina/Buenos_Aires"] {
                try await client.execute(
                    uri: "/kvfv/KVT/avg-speed?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&interval=24h&tz=\(tz)", method: .get
                ) { r in
                    #expect(r.status == .ok, "\(tz)")
                }
            }
            let tiny = #"{"kvfv_id":"DEN","timestamp":"\#(Timestamp.format(H.now - 1000))","vehicle_speed":1e-320,"event_id":"tiny"}"#
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: tiny)) { r in
                let j = try H.json(r.body)
                #expect(j["accepted"] as? Int == 0)
                #expect((j["rejected"] as? [[String: Any]])?.first?["reason"] as? String == "speed_out_of_range")
            }
        }
    }
}

/// An unexpected error inside a handler is a logged JSON 500, never an empty body.
@Suite("JSON errors")
struct JSONErrorTests {
    struct Unexpected: Error {}

    @Test("a handler's unexpected error is 500 internal_error with a JSON body; HTTPError keeps its status")
    func unexpected() async throws {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        router.get("/boom") { _, _ -> Response in throw Unexpected() }
        router.get("/teapot") { _, _ -> Response in throw HTTPError(.badRequest) }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { r in
                #expect(r.status == .internalServerError)
                #expect(r.headers[.contentType] == "application/json")
                #expect(HTTPContractTests.object(r.body)["reason"] as? String == "internal_error")
            }
            try await client.execute(uri: "/teapot", method: .get) { r in
                #expect(r.status == .badRequest)
                #expect(HTTPContractTests.object(r.body)["reason"] as? String == "bad_request")
            }
        }
    }
}

/// Graceful shutdown answers `503 shutting_down` instead of cutting connections (issue 11).
@Suite("Drain")
struct DrainTests {
    @Test("once the drain gate closes, every request is 503 shutting_down with Retry-After and Connection: close")
    func drain() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-drain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path),
            configuration: EngineConfiguration())
        engine.start()
        defer { engine.shutdown() }
        let gate = DrainGate()
        let router = SpeedflowHTTP.router(node: .serve(engine), configuration: ServerConfiguration(), prometheus: nil, drain: gate)
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .ok) }
            gate.close()
            let body = ByteBuffer(string: HTTPContractTests.event("KVD", HTTPContractTests.now - 1000, 80, id: "d"))
            try await client.execute(uri: "/events", method: .post, body: body) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] == "5")
                #expect(r.headers[.connection] == "close")
                #expect(HTTPContractTests.object(r.body)["reason"] as? String == "shutting_down")
            }
            try await client.execute(uri: "/health", method: .get) { r in #expect(r.status == .serviceUnavailable) }
        }
        #expect(engine.log.endOffset == .zero, "nothing of a drained request is stored")
    }
}
