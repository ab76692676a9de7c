import Foundation
import SpeedflowTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A program other than Speedflow running beside a test (a broker, a client), its output in a file, stopped by its
/// pid: gracefully (SIGTERM, then waiting for the exit) or with `kill -9`.
final class BackgroundProcess {
    let executable: String
    let arguments: [String]
    let logFile: URL
    private(set) var process: Process?

    init(_ executable: String, _ arguments: [String], logFile: URL) {
        self.executable = executable
        self.arguments = arguments
        self.logFile = logFile
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
    }

    var pid: Int32? { process?.processIdentifier }

    /// Running, by its pid (Foundation's `isRunning` can lag behind a reaped child).
    var isRunning: Bool {
        guard let process else { return false }
        return process.isRunning && Glibc.kill(process.processIdentifier, 0) == 0
    }

    /// Started through Debian's Python, which clears the signal mask and then `exec`s the program (same pid): a
    /// child inherits the mask of the test's thread that spawned it, where SIGTERM may be blocked, and a program that
    /// only takes signals while waiting with its original mask (mosquitto's `epoll_wait`) would never see SIGTERM.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
            executable,
        ] + arguments
        let log = try FileHandle(forWritingTo: logFile)
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// SIGTERM and wait for the exit (up to `timeout`; then SIGKILL): the graceful path.
    func stop(timeout: Duration = .seconds(30)) async {
        guard let process, isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGTERM)
        if !(await waitForExit(timeout: timeout)) {
            let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
            print("\(executable) did not exit within \(timeout) of SIGTERM; killed. \(status.split(separator: "\n").filter { $0.hasPrefix("Sig") || $0.hasPrefix("State") })")
            kill9()
        }
    }

    /// `kill -9`, and wait until it is gone.
    func kill9() {
        guard let process, isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(30)
        while isRunning && ContinuousClock.now < deadline { usleep(10_000) }
    }

    /// Whether it exited within `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// The exit status once it has exited (nil while running or when unknown).
    var exitStatus: Int32? {
        guard let process, !process.isRunning else { return nil }
        return process.terminationStatus
    }

    func log(_ bytes: Int = 1 << 20) -> String {
        guard let data = try? Data(contentsOf: logFile) else { return "" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }
}
