import Foundation
import Logging
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowServer
import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real HTTP server in this process — engine, log, SQLite, the router behind the connection guard — run by a
/// `ServiceGroup` with the drain service, as `speedflow serve` runs it, so tests can shut it down gracefully.
struct LiveServer: Sendable {
    let engine: Engine
    let feeds: LiveFeeds
    let port: Int
    let group: ServiceGroup
    let connectionGuard: ConnectionGuard

    var url: String { "http://127.0.0.1:\(port)" }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Runs `body` against a started server, then shuts it down gracefully (and waits for that).
    static func with(
        feeds configuration: LiveFeeds.Configuration = .init(), idleTimeoutMs: Int64 = 60_000, access: AccessControl = .off,
        clock: @escaping @Sendable () -> Int64 = { LiveServer.now() },
        _ body: @Sendable (LiveServer) async throws -> Void
    ) async throws {
        let dir = temporaryDirectory("speedflow-stream")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path),
            configuration: EngineConfiguration(), clock: clock)
        engine.start()
        defer { engine.shutdown() }
        var logger = Logger(label: "stream-test")
        logger.logLevel = .warning
        let drain = DrainGate()
        let feeds = LiveFeeds(configuration: configuration, drain: drain, logger: logger, clock: clock)
        let connectionGuard = ConnectionGuard(
            limits: ConnectionGuard.fitting(ConnectionLimits(), logger: logger), logger: logger)
        let bound = Mutex<Int?>(nil)
        let app = SpeedflowHTTP.application(
            node: .serve(engine), configuration: ServerConfiguration(port: 0, idleTimeoutMs: idleTimeoutMs), prometheus: nil,
            logger: logger, access: access, drain: drain, connectionGuard: connectionGuard, live: feeds,
            onServerRunning: { port in bound.withLock { $0 = port } })
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app), .init(service: DrainService(gate: drain, grace: .milliseconds(200)))],
                logger: logger))
        try await withRunningGroup(group, until: "the server listens", ready: { bound.withLock { $0 } != nil }) {
            try await body(LiveServer(
                engine: engine, feeds: feeds, port: bound.withLock { $0 }!, group: group, connectionGuard: connectionGuard))
        }
    }

    static func event(_ camera: String, _ ms: Int64, _ speed: Double, id: String) -> String {
        "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed),\"event_id\":\"\(id)\"}"
    }

    /// `POST /events` with `body` (one object, an array or NDJSON lines); returns the HTTP status.
    @discardableResult
    func post(_ body: String) async -> Int? {
        let port = port
        return await HTTPHardeningTests.blocking { () -> Int? in
            guard let s = RawSocket(port: port) else { return nil }
            let bytes = Array(body.utf8)
            let head = "POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n\r\n"
            guard s.send(Array(head.utf8) + bytes) else { return nil }
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                s.poll(seconds: 0.05)
                if let status = RawSocket.completeAnswer(s.received) { return status }
                if s.closedByServer { return nil }
            }
            return nil
        }
    }

    /// Starts `curl -N` on `path` of this server.
    func curl(_ path: String, includeHead: Bool = false, headers: [String] = []) async throws -> CurlStream {
        let url = url + path
        return try await offCooperativePool { try CurlStream(url, headers: headers, includeHead: includeHead) }
    }
}


