import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SpeedflowServer
import SpeedflowTestSupport
import Testing

/// Slow, idle, excess and broken clients against a live in-process server (raw sockets, off the cooperative
/// pool): heads and bodies that trickle are closed, connections beyond the limit are answered 503 and counted,
/// the oversized-header reproduction of #10 leaves no socket behind, and a normal client is served throughout.
/// Assertions are about what happened, never about how long it took (limits are generous upper bounds).
@Suite("Connection guard: header and body deadlines, connection limit, no leaked sockets")
struct ConnectionGuardTests {
    static func withServer(
        _ limits: ConnectionLimits, idleTimeoutMs: Int64 = 60_000,
        _ body: @escaping @Sendable (_ port: Int, _ guard: ConnectionGuard) async throws -> Void
    ) async throws {
        let logger = Logger(label: "test")
        let connectionGuard = ConnectionGuard(limits: limits, logger: logger)
        let app = SpeedflowHTTP.application(
            node: HTTPHardeningTests.node(),
            configuration: ServerConfiguration(port: 0, idleTimeoutMs: idleTimeoutMs, connections: limits), prometheus: nil,
            logger: logger, connectionGuard: connectionGuard)
        try await app.test(.live) { client in
            // The test framework's own client holds one connection: wait for it, so counts below are exact.
            try await waitUntil("the test client connected", timeout: .seconds(10)) { connectionGuard.openConnections == 1 }
            try await body(try #require(client.port), connectionGuard)
        }
    }


    @Test("a head trickled a byte at a time is answered 408 request_timeout and closed")
    func headerTrickleClosed() async throws {
        try await Self.withServer(ConnectionLimits(headerTimeoutMs: 500)) { port, g in
            let (closed, text) = await HTTPHardeningTests.blocking { () -> (Bool, String) in
                guard let s = RawSocket(port: port) else { return (false, "no connection") }
                s.send("GET /health HTTP/1.1\r\n")
                let began = Date()
                // One byte of a header line every 100 ms, for at most 20 s (the idle timeout is 60 s).
                for byte in String(repeating: "X-Slow: trickle\r\n", count: 20).utf8 {
                    if s.poll(seconds: 0.1) || Date().timeIntervalSince(began) > 20 { break }
                    s.send([byte])
                }
                return (s.waitForClose(limit: 5), s.text)
            }
            #expect(closed, "the trickling connection was still open")
            #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
            #expect(text.contains("\"reason\":\"request_timeout\""), "\(text)")
            #expect(g.timedOutConnections == 1)
        }
    }

    @Test("an empty line between keep-alive requests does not start the head clock")
    func emptyLineIsNotARequest() async throws {
        try await Self.withServer(ConnectionLimits(headerTimeoutMs: 300)) { port, g in
            let statuses = await HTTPHardeningTests.blocking { () -> [Int?] in
                guard let s = RawSocket(port: port) else { return [nil] }
                let first = s.get("/health")
                s.send("\r\n")
                // Three header timeouts later the connection still serves (a timeout would have closed it).
                let closed = s.poll(seconds: 1)
                return [first, closed ? nil : s.get("/health")]
            }
            #expect(statuses == [200, 200])
            #expect(g.timedOutConnections == 0)
        }
    }

    @Test("a body trickled below the minimum rate is answered 408 and closed; one above it is served")
    func bodyTrickleClosed() async throws {
        let limits = ConnectionLimits(bodyGraceMs: 500, bodyMinBytesPerSecond: 200)
        try await Self.withServer(limits) { port, g in
            let (closed, text) = await HTTPHardeningTests.blocking { () -> (Bool, String) in
                guard let s = RawSocket(port: port) else { return (false, "no connection") }
                s.send("POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
                let began = Date()
                while !s.poll(seconds: 0.1) && Date().timeIntervalSince(began) < 20 { s.send(" ") }  // ~10 bytes/s
                return (s.waitForClose(limit: 5), s.text)
            }
            #expect(closed, "the trickling body's connection was still open")
            #expect(text.hasPrefix("HTTP/1.1 408") && text.contains("request_timeout"), "\(text)")
            #expect(g.timedOutConnections == 1)

            // ~2,000 bytes/s, ten times the minimum: served.
            let event = #"{"kvfv_id":"KV1","timestamp":"2026-01-01T00:00:00Z","vehicle_speed":80},"#
            let body = "[" + String(repeating: event, count: 40) + event.dropLast() + "]"
            let status = await HTTPHardeningTests.blocking { () -> String in
                guard let s = RawSocket(port: port) else { return "no connection" }
                s.send("POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
                let bytes = Array(body.utf8)
                for start in stride(from: 0, to: bytes.count, by: 100) {
                    s.send(Array(bytes[start..<min(bytes.count, start + 100)]))
                    s.poll(seconds: 0.05)
                }
                _ = s.waitFor("\r\n\r\n", limit: 10)
                return String(s.text.prefix(12))
            }
            // Answered by the handler (its validation decides the status), not cut by the guard.
            #expect(status.hasPrefix("HTTP/1.1 200") || status.hasPrefix("HTTP/1.1 400"), "\(status)")
            #expect(g.timedOutConnections == 1)
        }
    }

    @Test("beyond max connections a new one is answered 503 too_many_connections, closed and counted")
    func connectionLimit() async throws {
        // The test client holds one of the 5.
        try await Self.withServer(ConnectionLimits(maxConnections: 5)) { port, g in
            let served = await HTTPHardeningTests.blocking { () -> [RawSocket] in
                (0..<4).compactMap { _ in RawSocket(port: port) }
            }
            try #require(served.count == 4)
            let statuses = await HTTPHardeningTests.blocking { served.map { $0.get("/health") } }
            #expect(statuses == Array(repeating: 200, count: 4), "connections below the limit are served")

            let (closed, text) = await HTTPHardeningTests.blocking { () -> (Bool, String) in
                guard let s = RawSocket(port: port) else { return (false, "no connection") }
                return (s.waitForClose(limit: 10), s.text)
            }
            #expect(closed)
            #expect(text.hasPrefix("HTTP/1.1 503") && text.contains("\"reason\":\"too_many_connections\""), "\(text)")
            #expect(g.refusedConnections == 1)
            #expect(g.openConnections == 5)

            // One served connection goes: there is room again.
            _ = await HTTPHardeningTests.blocking { served[0].send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") }
            try await waitUntil("a closed connection leaves the count", timeout: .seconds(10)) { g.openConnections == 4 }
            #expect(heldServerSockets(port: port) == 4)
            let again = await HTTPHardeningTests.blocking { RawSocket(port: port)?.get("/health") }
            #expect(again == 200)
            #expect(g.refusedConnections == 1)
            _ = served
        }
    }

    @Test("#10's reproduction: a 300 KB header, then the client closes — the server holds no socket afterwards")
    func oversizedHeaderLeavesNoSocket() async throws {
        try await Self.withServer(ConnectionLimits()) { port, g in
            let answers = await HTTPHardeningTests.blocking { () -> [String] in
                (0..<20).map { _ in
                    guard let s = RawSocket(port: port) else { return "no connection" }
                    s.send("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + String(repeating: "a", count: 300_000) + "\r\n\r\n", timeout: 2)
                    // Until the answer's status line is in (a loaded machine may take more than a moment).
                    _ = s.waitFor("\r\n", limit: 10)
                    return String(s.text.prefix(12))
                }  // each socket is closed here, by the client
            }
            #expect(answers.allSatisfy { $0.hasPrefix("HTTP/1.1 400") }, "\(answers)")
            // Not the idle timeout (60 s): the server lingers at most 2 s once it has answered.
            try await waitUntil("the server closed every connection", timeout: .seconds(15)) {
                g.openConnections == 1 && heldServerSockets(port: port) == 1  // the test client's
            }
        }
    }

    @Test("2,000 idle and 200 trickling connections: the normal client is served, the trickling ones closed")
    func slowClients() async throws {
        try await Self.withServer(ConnectionLimits(headerTimeoutMs: 1000)) { port, g in
            let idle = await HTTPHardeningTests.blocking { (0..<2000).compactMap { _ in RawSocket(port: port) } }
            let trickling = await HTTPHardeningTests.blocking { () -> [RawSocket] in
                let sockets = (0..<200).compactMap { _ in RawSocket(port: port) }
                for s in sockets { s.send("GET /health HTTP/1.1\r\n") }
                return sockets
            }
            #expect(idle.count == 2000 && trickling.count == 200)
            let trickler = Task.detached {
                await HTTPHardeningTests.blocking { () -> Int in
                    // A header byte per connection every 200 ms until the server has closed them all (or 60 s).
                    let began = Date()
                    while Date().timeIntervalSince(began) < 60 {
                        var open = 0
                        for s in trickling where !s.poll(seconds: 0) {
                            s.send("x")
                            open += 1
                        }
                        if open == 0 { return 0 }
                        Thread.sleep(forTimeInterval: 0.2)
                    }
                    return trickling.filter { !$0.poll(seconds: 0) }.count
                }
            }
            let statuses = await HTTPHardeningTests.blocking { () -> [Int?] in
                guard let s = RawSocket(port: port) else { return [nil] }
                return (0..<100).map { _ in s.get("/health") }
            }
            #expect(statuses.allSatisfy { $0 == 200 }, "the normal client was not served: \(statuses)")
            let stillOpen = await trickler.value
            #expect(stillOpen == 0, "\(stillOpen) trickling connections were still open")
            #expect(trickling.allSatisfy { $0.text.hasPrefix("HTTP/1.1 408") })
            // The idle ones are within their idle timeout (60 s) and the limit: still served.
            #expect(g.openConnections >= 2000)
            #expect(g.refusedConnections == 0)
            let fresh = await HTTPHardeningTests.blocking { idle.first?.get("/health") }
            #expect(fresh == 200)
        }
    }
}
