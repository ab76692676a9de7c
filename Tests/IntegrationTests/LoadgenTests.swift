import AsyncHTTPClient
import Foundation
import Testing

@testable import SpeedflowLoadgen

#if canImport(Glibc)
import Glibc
#endif

/// Runs the real `speedflow serve` binary and a short fleet with outages, resends and invalid events,
/// then verifies every window exactly. `scripts/test` sets SPEEDFLOW_BIN to the debug build.
@Suite("Loadgen against a real server", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil))
struct LoadgenTests {
    @Test("A short fleet on bad links is stored exactly", arguments: [
        (LoadgenConfiguration.Mode.single, LoadgenConfiguration.BatchFormat.ndjson, LoadgenConfiguration.HTTPClientKind.raw),
        (.batch, .ndjson, .raw),
        (.batch, .array, .raw),
        (.single, .ndjson, .asyncHTTPClient),
        (.batch, .ndjson, .asyncHTTPClient),
    ])
    func fleetIsStoredExactly(
        mode: LoadgenConfiguration.Mode, format: LoadgenConfiguration.BatchFormat, client: LoadgenConfiguration.HTTPClientKind
    ) async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }

        var configuration = LoadgenConfiguration()
        configuration.url = server.url
        configuration.httpClient = client
        configuration.cameras = 24
        configuration.concurrency = 6
        configuration.mode = mode
        configuration.batchFormat = format
        configuration.batchSize = 50
        configuration.rate = mode == .single ? 1500 : 6000
        configuration.duration = .seconds(3)
        configuration.outageShare = 0.5
        configuration.outageDuration = .seconds(1)
        configuration.backlogAge = .seconds(3 * 86_400)
        configuration.backlogEvents = 150
        configuration.duplicateShare = 0.05
        configuration.lostAckShare = 0.05
        configuration.timeoutShare = 0.02
        configuration.invalidShare = 0.05
        configuration.inBatchDuplicateShare = 0.3
        configuration.freshnessInterval = .milliseconds(200)
        configuration.verify = true
        configuration.seed = 2025

        let report = try await Loadgen.run(configuration: configuration)
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        #expect(report.anomalies.validRejected == 0, "\(details)")
        #expect(report.anomalies.invalidAccepted == 0, "\(details)")
        #expect(report.anomalies.countMismatches == 0, "\(details)")
        #expect(report.anomalies.badAnswers == 0, "\(details)")
        #expect(report.unacknowledged == 0, "\(details)")
        let verification = try #require(report.verification)
        #expect(verification.passed, "\(details)")
        #expect(verification.eventsExpected == report.eventsAcknowledged)
        #expect(verification.eventsFound == report.eventsAcknowledged, "\(details)")
        // The scenario really exercised what it claims to.
        #expect(report.outages > 0 && report.backlogEvents > 0)
        #expect(report.duplicates > 0)
        #expect(report.lostAckResends > 0 || report.deliberateDuplicates > 0)
        #expect(Set(report.invalidGenerated.keys) == Set(EventFlaw.allCases.map(\.reason)), "\(details)")
        #expect(report.freshness.map { $0.delay.samples > 0 && $0.neverVisible == 0 } == true, "\(details)")
    }
}

extension LoadgenTests {
    /// The verifier must be able to fail: a second run on the same cameras finds the first run's events
    /// in its windows, which it did not send.
    @Test("Verification fails when the server holds events the fleet did not send")
    func verifierCatchesForeignEvents() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }

        var configuration = LoadgenConfiguration()
        configuration.url = server.url
        configuration.cameras = 5
        configuration.concurrency = 5
        configuration.duration = nil
        configuration.eventCount = 500
        configuration.outageShare = 0
        configuration.freshnessInterval = nil
        configuration.verify = true
        let first = try await Loadgen.run(configuration: configuration)
        #expect(first.verification?.passed == true, "\(first.text())")

        configuration.runTag = "second"
        let second = try await Loadgen.run(configuration: configuration)
        let verification = try #require(second.verification)
        #expect(!verification.passed)
        #expect(verification.mismatches > 0)
        #expect(verification.eventsFound > second.eventsAcknowledged)
        #expect(!second.passed)
    }
}

/// A `speedflow serve` child process on a free loopback port with a temporary data directory.
/// Used from one test task only (start, stop), so it need not be Sendable.
final class ServerProcess {
    let url: String
    let dataDirectory: URL
    let logFile: URL
    let process: Process

    private init(url: String, dataDirectory: URL, logFile: URL, process: Process) {
        self.url = url
        self.dataDirectory = dataDirectory
        self.logFile = logFile
        self.process = process
    }

    static func start() async throws -> ServerProcess {
        let binary = try #require(ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-loadgen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let dataDirectory = directory.appendingPathComponent("data")
        let logFile = directory.appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let port = try freeLoopbackPort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--data-dir", dataDirectory.path, "--host", "127.0.0.1", "--port", "\(port)"]
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let server = ServerProcess(url: "http://127.0.0.1:\(port)", dataDirectory: directory, logFile: logFile, process: process)
        do {
            try await server.waitUntilHealthy()
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    /// Polls `/health` (no blind sleeps); fails early if the process died.
    private func waitUntilHealthy() async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while clock.now < deadline {
            guard process.isRunning else {
                throw LoadgenError(.serverUnreachable, "speedflow serve exited (\(process.terminationStatus)):\n\(logTail())")
            }
            if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(2)),
               response.status == .ok {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LoadgenError(.serverUnreachable, "speedflow serve did not become healthy within 60 s:\n\(logTail())")
    }

    func logTail(_ bytes: Int = 4000) -> String {
        guard let data = try? Data(contentsOf: logFile) else { return "" }
        return String(decoding: data.suffix(bytes), as: UTF8.self)
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: dataDirectory)
    }

    /// Binds port 0 on 127.0.0.1 and returns the port the kernel picked.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoadgenError(.serverUnreachable, "socket() failed") }
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
        guard bound else { throw LoadgenError(.serverUnreachable, "bind() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
