import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// systemd's side of `Type=notify` played by the test: a datagram socket of its own as `NOTIFY_SOCKET`, the real
/// binary started with it, and what systemd would see — `READY=1` only once the port answers, `WATCHDOG=1` every
/// half `WATCHDOG_USEC`, `STOPPING=1` on SIGTERM and then a clean exit.
@Suite("sd_notify with the real binary", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct SystemdNotifyTests {
    @Test("serve: READY=1 after the port answers, WATCHDOG=1 repeats, SIGTERM → STOPPING=1 and exit 0")
    func serveNotifies() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let socket = try NotifySocket(path: dir.appendingPathComponent("notify.sock").path)
        // 300 ms: a ping every 150 ms.
        let server = try Self.start(["serve", "--data-dir", dir.appendingPathComponent("data").path, "--host", "127.0.0.1", "--port", "0"],
            environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "300000"], log: dir.appendingPathComponent("server.log"))
        defer { Self.stop(server) }

        let ready = try #require(socket.receive(until: { $0.contains("READY=1") }, timeout: 120), "no READY=1 (log: \(Self.tail(dir)))")
        #expect(!ready.before.contains { $0.contains("STOPPING=1") })
        // The port named in READY's status answers at once: READY comes after the server listens.
        let port = try #require(Self.port(in: ready.message), "READY without a port: \(ready.message)")
        #expect(try Self.health(port: port) == 200)

        // The watchdog keeps being pinged while the server runs.
        let pings = socket.receiveAll(for: 1.5).filter { $0 == "WATCHDOG=1" }.count
        #expect(pings >= 4, "\(pings) WATCHDOG=1 in 1.5 s at WATCHDOG_USEC=300000")

        kill(server.processIdentifier, SIGTERM)
        let stopping = socket.receive(until: { $0.contains("STOPPING=1") }, timeout: 30)
        #expect(stopping != nil, "no STOPPING=1 after SIGTERM (log: \(Self.tail(dir)))")
        #expect(Self.waitForExit(server, timeout: 60), "still running 60 s after SIGTERM")
        #expect(server.terminationReason == .exit && server.terminationStatus == 0, "exit \(server.terminationStatus)")
    }

    @Test("An abstract NOTIFY_SOCKET (@name) gets READY=1 and STOPPING=1; no pings when WATCHDOG_PID names another process")
    func abstractSocketAndForeignWatchdog() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let socket = try NotifySocket(path: "@speedflow-test-\(UUID().uuidString)")
        let server = try Self.start(["serve", "--data-dir", dir.appendingPathComponent("data").path, "--host", "127.0.0.1", "--port", "0"],
            environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"],
            log: dir.appendingPathComponent("server.log"))
        defer { Self.stop(server) }

        let ready = try #require(socket.receive(until: { $0.contains("READY=1") }, timeout: 120), "no READY=1 (log: \(Self.tail(dir)))")
        #expect(try Self.health(port: try #require(Self.port(in: ready.message))) == 200)
        let later = socket.receiveAll(for: 1.0)
        #expect(!(ready.before + later).contains("WATCHDOG=1"), "the watchdog is another process's: \(ready.before + later)")

        kill(server.processIdentifier, SIGTERM)
        #expect(socket.receive(until: { $0.contains("STOPPING=1") }, timeout: 30) != nil)
        #expect(Self.waitForExit(server, timeout: 60) && server.terminationStatus == 0)
    }

    @Test("A restart that replays the log extends the start timeout (EXTEND_TIMEOUT_USEC) with its progress before READY=1")
    func replayExtendsTheStartTimeout() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        // Acknowledged events the store never got (no flush within the hour), then kill -9: the next start replays.
        let first = try Self.start(["serve", "--data-dir", data, "--host", "127.0.0.1", "--port", "0", "--flush-interval", "1h"],
            environment: [:], log: dir.appendingPathComponent("first.log"))
        defer { Self.stop(first) }
        var port: Int?
        for _ in 0..<6000 where port == nil {
            let banner = String(decoding: (try? Data(contentsOf: dir.appendingPathComponent("first.log"))) ?? Data(), as: UTF8.self)
            port = banner.range(of: "listening on http://127.0.0.1:").flatMap { Int(banner[$0.upperBound...].prefix { $0.isNumber }) }
            if port == nil { usleep(20_000) }
        }
        let now = Int64(Date().timeIntervalSince1970) * 1000
        let body = (0..<200).map { i in
            "{\"kvfv_id\":\"KVN\(i % 5)\",\"timestamp\":\"\(Timestamp.format(now - Int64(i) * 1000))\",\"vehicle_speed\":\(60 + i % 50),\"event_id\":\"n\(i)\"}"
        }.joined(separator: "\n")
        #expect(try Self.request(port: try #require(port), "POST", "/events", body: body, contentType: "application/x-ndjson") == 200)
        Self.stop(first)

        let socket = try NotifySocket(path: dir.appendingPathComponent("notify.sock").path)
        let server = try Self.start(["serve", "--data-dir", data, "--host", "127.0.0.1", "--port", "0"],
            environment: ["NOTIFY_SOCKET": socket.address], log: dir.appendingPathComponent("server.log"))
        defer { Self.stop(server) }
        let ready = try #require(socket.receive(until: { $0.contains("READY=1") }, timeout: 120), "no READY=1 (log: \(Self.tail(dir)))")
        let replay = ready.before.first { $0.contains("EXTEND_TIMEOUT_USEC=") }
        #expect(replay?.contains("STATUS=Replaying log") == true, "before READY: \(ready.before)")
        #expect(replay?.contains("200 events") == true, "\(replay ?? "none")")
        kill(server.processIdentifier, SIGTERM)
        #expect(Self.waitForExit(server, timeout: 60) && server.terminationStatus == 0)
    }

    @Test("ingest and aggregate (librdkafka's mock cluster): READY=1 once listening, WATCHDOG=1, STOPPING=1 and exit 0")
    func scaleOutRolesNotify() throws {
        let dir = try Self.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let mockLog = dir.appendingPathComponent("mock.log")
        let mock = try Self.start(["dev", "kafka-mock", "--brokers", "1"], environment: [:], log: mockLog)
        defer { Self.stop(mock) }
        var brokers: String?
        for _ in 0..<3000 where brokers == nil {
            let text = String(decoding: (try? Data(contentsOf: mockLog)) ?? Data(), as: UTF8.self)
            brokers = text.split(separator: "\n").first { $0.hasPrefix("bootstrap: ") }.map { String($0.dropFirst("bootstrap: ".count)) }
            if brokers == nil { usleep(20_000) }
        }
        let bootstrap = try #require(brokers, "no bootstrap line from the mock cluster")
        for role in ["ingest", "aggregate"] {
            let socket = try NotifySocket(path: dir.appendingPathComponent("\(role).sock").path)
            let log = dir.appendingPathComponent("server.log")
            let server = try Self.start(
                [role, "--log", "kafka", "--brokers", bootstrap, "--data-dir", dir.appendingPathComponent(role).path,
                 "--host", "127.0.0.1", "--port", "0"],
                environment: ["NOTIFY_SOCKET": socket.address, "WATCHDOG_USEC": "300000"], log: log)
            defer { Self.stop(server) }
            let ready = try #require(socket.receive(until: { $0.contains("READY=1") }, timeout: 120), "\(role): no READY=1 (log: \(Self.tail(dir)))")
            #expect(try Self.health(port: try #require(Self.port(in: ready.message))) == 200, "\(role)")
            #expect(socket.receiveAll(for: 1.0).contains("WATCHDOG=1"), "\(role)")
            kill(server.processIdentifier, SIGTERM)
            #expect(socket.receive(until: { $0.contains("STOPPING=1") }, timeout: 30) != nil, "\(role): no STOPPING=1")
            #expect(Self.waitForExit(server, timeout: 60) && server.terminationStatus == 0, "\(role): exit \(server.terminationStatus)")
        }
    }

    // MARK: - The process

    static func directory() throws -> URL {
        // Short: a socket path must fit sockaddr_un's 108 bytes.
        let dir = URL(fileURLWithPath: "/tmp/sf-notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func start(_ arguments: [String], environment: [String: String], log: URL) throws -> Process {
        guard let binary = SpeedflowProcess.binaryPath else { throw SpeedflowProcess.ProcessError("SPEEDFLOW_BIN is not set") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(process, timeout: 30)
    }

    /// Polls rather than `waitUntilExit()` (see `SpeedflowProcess.waitForExit`).
    static func waitForExit(_ process: Process, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !process.isRunning { return true }
            usleep(20_000)
        }
        return !process.isRunning
    }

    static func tail(_ dir: URL) -> String {
        let data = (try? Data(contentsOf: dir.appendingPathComponent("server.log"))) ?? Data()
        return String(decoding: data.suffix(3000), as: UTF8.self)
    }

    /// The port of `STATUS=Listening on port N`.
    static func port(in message: String) -> Int? {
        guard let range = message.range(of: "Listening on port ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0.isNumber })
    }

    /// `GET /health` over a fresh TCP connection: the status code.
    static func health(port: Int) throws -> Int {
        try request(port: port, "GET", "/health")
    }

    /// One HTTP/1.1 request over a fresh TCP connection: the status code.
    static func request(port: Int, _ method: String, _ path: String, body: String = "", contentType: String = "application/json") throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw SpeedflowProcess.ProcessError("connect to port \(port): errno \(errno)") }
        let payload = Array(body.utf8)
        let head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(payload.count)\r\n\r\n"
        let request = Array(head.utf8) + payload
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SpeedflowProcess.ProcessError("send to port \(port): errno \(errno)") }
            sent += n
        }
        var response = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &response, response.count, 0)
        let text = String(decoding: response.prefix(max(0, n)), as: UTF8.self)
        return Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1
    }
}

/// A unix datagram socket bound where `NOTIFY_SOCKET` will point: a path, or `@name` in the abstract namespace.
final class NotifySocket {
    /// As `NOTIFY_SOCKET` gives it.
    let address: String
    private let fd: Int32

    init(path: String) throws {
        address = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SpeedflowProcess.ProcessError("socket: errno \(errno)") }
        var name = Array(path.utf8)
        let abstract = path.hasPrefix("@")
        if abstract { name[0] = 0 }
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw SpeedflowProcess.ProcessError("bind \(path): errno \(errno)") }
    }

    deinit {
        close(fd)
        if !address.hasPrefix("@") { unlink(address) }
    }

    /// The next datagram within `timeout` seconds, or `nil`.
    func receive(timeout: Double) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n >= 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
    }

    /// Datagrams until one satisfies `condition` (within `timeout` seconds in all): it, and those before it.
    func receive(until condition: (String) -> Bool, timeout: Double) -> (message: String, before: [String])? {
        let deadline = Date().addingTimeInterval(timeout)
        var before: [String] = []
        while case let left = deadline.timeIntervalSinceNow, left > 0, let m = receive(timeout: left) {
            if condition(m) { return (m, before) }
            before.append(m)
        }
        return nil
    }

    /// Every datagram arriving within the next `seconds`.
    func receiveAll(for seconds: Double) -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        var all: [String] = []
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            if let m = receive(timeout: left) { all.append(m) }
        }
        return all
    }
}
