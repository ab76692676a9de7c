import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowTestSupport
import Testing

@testable import SpeedflowLoadgen

#if canImport(Glibc)
import Glibc
#endif

/// Numbering fleets against the real `speedflow serve`: passes lost for good, outage backlogs hours late, counter
/// restarts, status reports and passes still on the cameras at the end; `--verify` checks every gap, every backlog
/// and every window's `late_count`, `revised_at`, `complete` and `missing`, and must fail when the server holds
/// what the fleet did not send.
@Suite("Loadgen with sequence numbers against a real server", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil))
struct LoadgenSequenceTests {
    static func configuration(url: String, mode: LoadgenConfiguration.Mode, seed: UInt64) -> LoadgenConfiguration {
        var c = LoadgenConfiguration()
        c.url = url
        c.cameras = 20
        c.concurrency = 5
        c.mode = mode
        c.batchSize = 40
        c.rate = mode == .single ? 1200 : 5000
        c.duration = .seconds(3)
        c.outageShare = 0.5
        c.outageDuration = .seconds(1)
        c.backlogAge = .seconds(2 * 86_400)
        c.backlogEvents = 120
        c.lossShare = 0.03
        c.statusInterval = .milliseconds(400)
        c.counterRestartShare = 0.3
        c.pendingShare = 0.5
        c.duplicateShare = 0.05
        c.lostAckShare = 0.05
        c.timeoutShare = 0.02
        c.invalidShare = 0.03
        c.inBatchDuplicateShare = 0.3
        c.freshnessInterval = nil
        c.verify = true
        c.seed = seed
        return c
    }

    static func expectExact(_ report: LoadReport, _ server: SpeedflowProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        #expect(report.anomalies.validRejected == 0 && report.anomalies.invalidAccepted == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.anomalies.countMismatches == 0 && report.anomalies.badAnswers == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.unacknowledged == 0, "\(details)", sourceLocation: sourceLocation)
        let v = try #require(report.verification, sourceLocation: sourceLocation)
        #expect(v.passed, "\(details)", sourceLocation: sourceLocation)
        #expect(v.eventsFound == report.eventsAcknowledged, "\(details)", sourceLocation: sourceLocation)
        // The scenario exercised what it claims to: losses became gaps, reports and pending passes backlogs,
        // outage history late events, and windows the server must call incomplete.
        #expect(report.lostForGood > 0 && v.gapsExpected > 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.statusReports > 0 && report.pendingPasses > 0 && v.backlogsExpected > 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.counterRestarts > 0, "\(details)", sourceLocation: sourceLocation)
        #expect(v.lateEvents > 0 && v.incompleteWindows > 0 && v.missingExpected > 0, "\(details)", sourceLocation: sourceLocation)
        // Most cameras number passes in a 3 s run; under load a worker may not reach a camera before the run ends,
        // and such a camera (nothing recorded) is verified as one without seq — exactly, like the others.
        #expect(v.sequencedCameras > report.cameras / 2 && v.sequencedCameras <= report.cameras, "\(details)", sourceLocation: sourceLocation)
        #expect(report.invalidGenerated["invalid_seq", default: 0] > 0, "\(details)", sourceLocation: sourceLocation)
    }

    @Test("A numbering fleet with losses, restarts, backlogs and reports is verified exactly",
          arguments: [LoadgenConfiguration.Mode.single, .batch])
    func sequencedFleetIsExact(mode: LoadgenConfiguration.Mode) async throws {
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()
        let report = try await Loadgen.run(configuration: Self.configuration(url: server.url, mode: mode, seed: 12))
        try Self.expectExact(report, server)
    }

    /// A report and an event the fleet never sent: verification must fail and name the backlog and the gaps.
    @Test("Verification fails on a report or a numbered event the fleet did not send")
    func verifierCatchesForeignReportsAndEvents() async throws {
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()
        var configuration = Self.configuration(url: server.url, mode: .batch, seed: 13)
        configuration.cameras = 4
        configuration.cameraPrefix = "TM"
        configuration.counterRestartShare = 0
        let url = server.url
        let report = try await Loadgen.run(configuration: configuration, beforeVerify: {
            let now = Date().timeIntervalSince1970
            func iso(_ t: TimeInterval) -> String {
                let f = ISO8601DateFormatter()
                return f.string(from: Date(timeIntervalSince1970: t))
            }
            // TM00001 "reports" numbers it never recorded.
            var status = HTTPClientRequest(url: "\(url)/kvfv/TM00001/status")
            status.method = .POST
            status.body = .bytes(ByteBuffer(string: #"{"seq":1099511627999,"timestamp":"\#(iso(now - 1))"}"#))
            let r1 = try await HTTPClient.shared.execute(status, timeout: .seconds(10))
            _ = try await r1.body.collect(upTo: 1 << 16)
            #expect(r1.status == .ok)
            // TM00002 gets a numbered pass the camera never sent (number 3: far below its random start).
            var event = HTTPClientRequest(url: "\(url)/events")
            event.method = .POST
            event.headers.add(name: "Content-Type", value: "application/json")
            event.body = .bytes(ByteBuffer(string: #"{"kvfv_id":"TM00002","timestamp":"\#(iso(now - 60))","vehicle_speed":77,"seq":3}"#))
            let r2 = try await HTTPClient.shared.execute(event, timeout: .seconds(10))
            let body = try await r2.body.collect(upTo: 1 << 16)
            #expect(String(buffer: body).contains(#""accepted":1"#))
        })
        let v = try #require(report.verification)
        #expect(!v.passed && !report.passed, "\(report.text())")
        let text = v.firstMismatches.joined(separator: "\n")
        #expect(text.contains("TM00001 backlog: reported_seq"), "\(text)")
        #expect(text.contains("TM00002 gaps: received"), "\(text)")
        // The extra pass is counted in its window too.
        #expect(v.eventsFound == report.eventsAcknowledged + 1, "\(report.text())")
    }

    /// `kill -9` of the server while the fleet sends: cameras resend until acknowledged by the restarted server
    /// (same data directory and port), and every gap, backlog, late count and window is still exact.
    @Test("kill -9 mid-stream: after restart and resends, verification is still exact")
    func exactAcrossKill9() async throws {
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()
        var configuration = Self.configuration(url: server.url, mode: .batch, seed: 14)
        configuration.duration = .seconds(5)
        configuration.drainTimeout = .seconds(60)
        let url = server.url
        let run = Task { try await Loadgen.run(configuration: configuration) }
        try await Task.sleep(for: .milliseconds(1800))
        server.kill9()
        try await Task.sleep(for: .milliseconds(300))
        // The same port, so the fleet's links find it again (SpeedflowProcess.start would pick a new one).
        let restarted = Process()
        restarted.executableURL = URL(fileURLWithPath: server.binary)
        restarted.arguments = ["serve", "--data-dir", server.dataDirectory.path, "--host", "127.0.0.1", "--port", "\(server.port)"]
        let log = try FileHandle(forWritingTo: server.logFile)
        log.seekToEndOfFile()
        restarted.standardOutput = log
        restarted.standardError = log
        try restarted.run()
        defer {
            if restarted.isRunning {
                Glibc.kill(restarted.processIdentifier, SIGTERM)
                for _ in 0..<3000 where Glibc.kill(restarted.processIdentifier, 0) == 0 && restarted.isRunning { usleep(10_000) }
            }
        }
        var healthy = false
        for _ in 0..<600 where !healthy && restarted.isRunning {
            if let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(2)) {
                _ = try? await r.body.collect(upTo: 1 << 16)
                healthy = r.status == .ok
            }
            if !healthy { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(healthy, "\(server.logTail())")
        let report = try await run.value
        #expect(report.retries > 0, "the kill was felt: \(report.text())")
        try Self.expectExact(report, server)
    }
}
