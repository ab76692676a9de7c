import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowEngine
import SpeedflowModel
import SpeedflowServer
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a browser and a hostile client see beyond the contract: security headers on every answer, and idle
/// connections closed.
@Suite("HTTP hardening: security headers, idle connections closed")
struct HTTPHardeningTests {
    static func node() -> HTTPNode {
        let stats = IngestStats(nowMs: 0)
        return HTTPNode(
            role: "ingest", intake: Intake(sink: RecordingSink(), stats: stats, policy: ValidationPolicy(), cameras: nil),
            queries: nil, stats: stats, status: NodeStatus())
    }

    @Test("every answer — dashboard, JSON, errors — carries nosniff, no framing, no referrer and the CSP")
    func securityHeaders() async throws {
        let router = SpeedflowHTTP.router(node: Self.node(), configuration: ServerConfiguration(), prometheus: nil)
        try await Application(router: router).test(.router) { client in
            for (uri, method, status) in [
                ("/", HTTPRequest.Method.get, HTTPResponse.Status.ok), ("/health", .get, .ok), ("/no-such-route", .get, .notFound),
                ("/kvfv", .get, .notFound), ("/events", .post, .badRequest),
            ] {
                try await client.execute(uri: uri, method: method, body: method == .post ? ByteBuffer(string: "{") : nil) { r in
                    #expect(r.status == status, "\(uri)")
                    #expect(r.headers[.xContentTypeOptions] == "nosniff", "\(uri)")
                    #expect(r.headers[.init("X-Frame-Options")!] == "DENY", "\(uri)")
                    #expect(r.headers[.init("Referrer-Policy")!] == "no-referrer", "\(uri)")
                    let csp = r.headers[.contentSecurityPolicy] ?? ""
                    #expect(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "\(uri): \(csp)")
                }
            }
        }
    }

    /// Runs blocking socket calls on a thread of their own: on the two cooperative threads of this machine they
    /// would starve the in-process server's handlers (and every other test's).
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in Thread.detachNewThread { c.resume(returning: body()) } }
    }

    /// Reads from a fresh TCP connection to `port` until the server closes it (or `limit` passes); returns
    /// how long that took, or `nil` if it stayed open.
    static func secondsUntilClosed(port: Int, send text: String = "", limit: Double) -> Double? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        if !text.isEmpty { _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
        var timeout = timeval(tv_sec: Int(limit), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let began = Date()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date().timeIntervalSince(began) < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return Date().timeIntervalSince(began) }  // closed by the server
            if n < 0 { return nil }  // timed out: still open
        }
        return nil
    }

    @Test("a connection that sends nothing, or nothing after its answer, is closed after the idle timeout")
    func idleConnectionsClosed() async throws {
        let app = SpeedflowHTTP.application(
            node: Self.node(), configuration: ServerConfiguration(port: 0, idleTimeoutMs: 500), prometheus: nil,
            logger: .init(label: "test"))
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let silent = await Self.blocking { Self.secondsUntilClosed(port: port, limit: 15) }
            #expect(silent != nil, "a silent connection was still open after 15 s")
            // Closed for being idle, not at once for some other reason.
            #expect((silent ?? 0) >= 0.3, "closed after \(silent ?? 0) s, before the idle timeout")
            let afterAnswer = await Self.blocking {
                Self.secondsUntilClosed(port: port, send: "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n", limit: 15)
            }
            #expect(afterAnswer != nil, "a keep-alive connection with nothing more to say was still open after 15 s")
        }
    }
}
