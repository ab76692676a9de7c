import AsyncHTTPClient
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A real `speedflow serve` child process (binary from `SPEEDFLOW_BIN`) on a loopback port, with a data
/// directory that survives restarts, so tests can `kill -9` it and start it again on the same data.
///
/// Shared by the test targets that drive the real binary (IntegrationTests, PostgresSourceTests).
public final class SpeedflowProcess {
    public let binary: String
    public let directory: URL
    /// Chosen anew at every start: a port freed by `kill -9` may meanwhile be taken as the local port of some
    /// outgoing connection on this machine.
    public private(set) var port: Int
    public let extraArguments: [String]
    /// `serve`, or a scale-out role: `ingest`, `aggregate`, `api`.
    public let subcommand: String
    /// Keep `port` across restarts (a client outside the test, e.g. a broker's bridge, is configured with it).
    public let fixedPort: Bool
    public private(set) var process: Process?
    private var restarts = 0

    /// Started with `--tls-cert`: HTTPS, and healthy once its banner says so (the test's CA is not the client's).
    public var usesTLS: Bool { extraArguments.contains("--tls-cert") }
    public var url: String { "\(usesTLS ? "https" : "http")://127.0.0.1:\(port)" }
    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    public var logFile: URL { directory.appendingPathComponent("server.log") }

    public static var binaryPath: String? { ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] }

    /// `port`: a fixed HTTP port kept across restarts (choose it with `freePortOutsideEphemeralRange`); default: a
    /// new free port at every start.
    public init(subcommand: String = "serve", extraArguments: [String] = [], port: Int? = nil) throws {
        self.subcommand = subcommand
        self.fixedPort = port != nil
        guard let binary = Self.binaryPath else { throw ProcessError("SPEEDFLOW_BIN must point at the speedflow binary") }
        self.binary = binary
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("server.log").path, contents: nil)
        self.port = try port ?? Self.freeLoopbackPort()
        self.extraArguments = extraArguments
    }

    /// Starts the server and waits until `/health` answers (or the process dies, or 120 s pass).
    public func start() async throws {
        if process != nil && !fixedPort { port = try Self.freeLoopbackPort() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [subcommand, "--data-dir", dataDirectory.path, "--host", "127.0.0.1", "--port", "\(port)"] + extraArguments
        let log = try FileHandle(forWritingTo: logFile)
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw ProcessError("speedflow \(subcommand) exited (\(process.terminationStatus)):\n\(logTail())")
            }
            if usesTLS {
                // The banner is printed once the server listens; with mutual TLS /health needs a client certificate.
                if logTail(1 << 16).contains("listening on https://127.0.0.1:\(port)") { return }
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            if let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(2)) {
                // Always read the body: an unread body keeps the pooled connection busy.
                _ = try? await r.body.collect(upTo: 1 << 16)
                if r.status == .ok { return }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessError("speedflow \(subcommand) did not become healthy within 120 s:\n\(logTail())")
    }

    /// Runs `speedflow <arguments>` (the binary from `SPEEDFLOW_BIN`) to completion, e.g. `log check` or
    /// `source postgres install-trigger --apply`; returns its exit status and its stdout and stderr together.
    public static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let binary = binaryPath else { throw ProcessError("SPEEDFLOW_BIN must point at the speedflow binary") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// `speedflow token create --data-dir DIR ARGUMENTS…` (blocking: call off the cooperative pool): the token it
    /// printed, the one line of its output starting `sft_`.
    public static func createToken(dataDir: String, _ arguments: [String]) throws -> String {
        let r = try run(["token", "create", "--data-dir", dataDir] + arguments)
        guard r.status == 0, let line = r.output.split(separator: "\n").last(where: { $0.hasPrefix("sft_") }) else {
            throw ProcessError("token create \(arguments) failed (\(r.status)): \(r.output)")
        }
        return String(line)
    }

    /// `kill -9`: no shutdown hook, no flush, whatever was in flight is cut.
    public func kill9() {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        waitForExit(process)
    }

    /// Sends `signal` (e.g. SIGHUP) to the running server, by its pid.
    public func send(signal: Int32) {
        guard let process, process.isRunning else { return }
        Glibc.kill(process.processIdentifier, signal)
    }

    /// SIGTERM and wait: the graceful path.
    public func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        waitForExit(process)
    }

    /// Polls instead of `waitUntilExit()`, which never returns if another reaper in the test process (e.g. an
    /// exit-test monitor) collected the child first; a vanished pid counts as exited. Gives up after 60 s.
    private func waitForExit(_ process: Process) {
        let pid = process.processIdentifier
        for _ in 0..<6000 {
            if !process.isRunning || Glibc.kill(pid, 0) != 0 { return }
            usleep(10_000)
        }
    }

    /// Stops the process and deletes its directory (kept when SPEEDFLOW_TEST_KEEP is set, for post-mortems).
    public func remove() {
        stop()
        if ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_KEEP"] == nil {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    public func logTail(_ bytes: Int = 4000) -> String {
        guard let data = try? Data(contentsOf: logFile) else { return "" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }

    /// The start of a crash in the log (Swift's `Fatal error` line and the backtracer's report after it, up to
    /// `bytes`), or `nil`: a log's tail holds only the end of a long backtrace, not what crashed.
    public func crashReport(_ bytes: Int = 6000) -> String? {
        guard let data = try? Data(contentsOf: logFile) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let start = ["Fatal error", "Program crashed", "Crash at"].compactMap({ text.range(of: $0)?.lowerBound }).min() else { return nil }
        let lineStart = text[..<start].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        return String(text[lineStart...].prefix(bytes))
    }

    public struct ProcessError: Error, CustomStringConvertible {
        public var description: String
        public init(_ d: String) { description = d }
    }

    /// A loopback port below the kernel's ephemeral range (32768 and up by default) that is free now: one a test
    /// keeps across restarts of a server, which the local end of some outgoing connection can never take meanwhile
    /// (as it can a port `freeLoopbackPort` picked).
    public static func freePortOutsideEphemeralRange() throws -> Int {
        for _ in 0..<200 {
            let candidate = Int.random(in: 20_000..<32_000)
            if canBind(candidate) { return candidate }
        }
        throw ProcessError("no free port found in 20000..<32000")
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    public static func canBind(_ port: Int) -> Bool {
        withLoopbackSocket(port) { fd, address, length in bind(fd, address, length) == 0 }
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` now.
    public static func accepts(_ port: Int) -> Bool {
        withLoopbackSocket(port) { fd, address, length in connect(fd, address, length) == 0 }
    }

    /// A fresh TCP socket and the address 127.0.0.1:`port`, for one call; the socket is closed after.
    private static func withLoopbackSocket(
        _ port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Bool
    ) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Binds port 0 on 127.0.0.1 and returns the port the kernel picked.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw ProcessError("bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
