import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway certificate authority and certificates made with Debian's `openssl` (as a child process), for tests
/// that talk TLS with real clients (`curl`, `openssl s_client`). Every file is `<name>.pem` / `<name>.key` in
/// `directory`; EC P-256 keys, so generating a set takes milliseconds.
public struct TestPKI: Sendable {
    public let directory: URL

    public init(directory: URL = temporaryDirectory("speedflow-pki")) {
        self.directory = directory
    }

    public func certificate(_ name: String) -> String { directory.appendingPathComponent("\(name).pem").path }
    public func key(_ name: String) -> String { directory.appendingPathComponent("\(name).key").path }

    /// A self-signed CA certificate `name`.
    public func makeCA(_ name: String, subject: String) throws {
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key(name), "-out", certificate(name), "-days", "30", "-subj", subject,
        ])
    }

    public enum Usage: String, Sendable {
        case server = "serverAuth"
        case client = "clientAuth"
    }

    /// A certificate `name` issued by CA `ca`. `subjectAltName` in openssl's syntax (`IP:127.0.0.1,DNS:localhost`,
    /// `URI:urn:speedflow:kvfv:KV00001`); `days` < 0 makes one that expired `-days` days ago.
    public func makeLeaf(
        _ name: String, ca: String, subject: String, subjectAltName: String?, usage: Usage, days: Int = 30
    ) throws {
        let csr = directory.appendingPathComponent("\(name).csr").path
        let ext = directory.appendingPathComponent("\(name).ext").path
        try Self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key(name), "-out", csr,
            "-subj", subject,
        ])
        var extensions = "basicConstraints=CA:FALSE\nextendedKeyUsage=\(usage.rawValue)\n"
        if let subjectAltName { extensions += "subjectAltName=\(subjectAltName)\n" }
        try extensions.write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl([
            "x509", "-req", "-in", csr, "-CA", certificate(ca), "-CAkey", key(ca),
            "-set_serial", "0x" + String(UInt64.random(in: 1...UInt64(Int64.max)), radix: 16),
            "-days", "\(days)", "-extfile", ext, "-out", certificate(name),
        ])
    }

    /// SHA-256 fingerprint (`AB:CD:…`) of the first PEM certificate in `pem` (text before it is skipped, so the
    /// output of `openssl s_client` works).
    public static func fingerprint(ofPEM pem: String) throws -> String {
        let r = try ChildProcess.run("/usr/bin/openssl", ["x509", "-noout", "-fingerprint", "-sha256"], input: Data(pem.utf8))
        guard r.status == 0, let line = r.stdout.split(separator: "\n").first, let eq = line.firstIndex(of: "=") else {
            throw ChildProcess.Failure("openssl x509 -fingerprint: \(r.stderr)")
        }
        return String(line[line.index(after: eq)...])
    }

    public func fingerprint(_ name: String) throws -> String {
        try Self.fingerprint(ofPEM: String(contentsOfFile: certificate(name), encoding: .utf8))
    }

    @discardableResult
    static func openssl(_ arguments: [String]) throws -> ChildProcess.Result {
        let r = try ChildProcess.run("/usr/bin/openssl", arguments)
        guard r.status == 0 else { throw ChildProcess.Failure("openssl \(arguments.joined(separator: " ")): \(r.stderr)") }
        return r
    }

    public func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Runs a program to completion with a deadline. Blocking: call it through `offCooperativePool`.
public enum ChildProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// Killed at the deadline.
        public var timedOut: Bool
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ d: String) { description = d }
    }

    /// `input` is written to the program's stdin (then closed; without it stdin is empty). After `timeout` the
    /// process is killed by its pid.
    public static func run(
        _ executable: String, _ arguments: [String], input: Data? = nil, timeout: Duration = .seconds(60)
    ) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Readers on their own threads, so a full pipe never blocks the child.
        let out = PipeReader(stdout.fileHandleForReading)
        let err = PipeReader(stderr.fileHandleForReading)
        if let input { try? stdin.fileHandleForWriting.write(contentsOf: input) }
        try? stdin.fileHandleForWriting.close()
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        // Polls instead of waitUntilExit(), which never returns if another reaper collected the child. A pid that
        // is gone may just have been reaped by Foundation's own monitor, which sets the status a moment later: give
        // it that moment before calling the status unknown.
        var goneSince: ContinuousClock.Instant?
        while process.isRunning {
            if Glibc.kill(process.processIdentifier, 0) != 0 {
                let since = goneSince ?? ContinuousClock.now
                goneSince = since
                if ContinuousClock.now - since > .seconds(5) { break }
            } else if ContinuousClock.now > deadline {
                timedOut = true
                Glibc.kill(process.processIdentifier, SIGKILL)
            }
            usleep(5_000)
        }
        return Result(
            status: process.isRunning ? -1 : process.terminationStatus, stdout: out.text(), stderr: err.text(),
            timedOut: timedOut)
    }

    final class PipeReader: @unchecked Sendable {
        // Safe: `data` is written by the reader thread only before `done` is signalled, and read only after.
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread.detachNewThread { [self] in
                data = handle.readDataToEndOfFile()
                done.signal()
            }
        }

        func text() -> String {
            done.wait()
            done.signal()
            return String(decoding: data, as: UTF8.self)
        }
    }
}

/// Runs blocking work (child processes, sockets) on a thread of its own: this machine has two cooperative threads,
/// and blocking them would starve every test's servers and tasks.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        Thread.detachNewThread { c.resume(with: Result { try body() }) }
    }
}
