import AsyncHTTPClient
import Foundation
import SpeedflowTestSupport
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
    @Test("a malformed --camera-tokens line is refused by its number, its token never echoed")
    func cameraTokensErrorKeepsTheSecret() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("camera-tokens-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let secret = "sft_0123456789abcdef_TOPSECRETTOPSECRET"
        try Data("KV1 sft_aaaaaaaaaaaaaaaa_ok\n\nKV2 \(secret) extra\n".utf8).write(to: file)
        let (status, output) = try SpeedflowProcess.run(["loadgen", "--camera-tokens", file.path, "--duration", "1s"])
        #expect(status != 0)
        #expect(output.contains("line 3") && output.contains("3 fields"), "\(output)")
        #expect(!output.contains("TOPSECRET") && !output.contains("sft_"), "\(output)")
    }

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
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()

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
        #expect(report.anomalies.reasonMismatches == 0, "\(details)")
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
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()

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

extension LoadgenTests {
    /// Authenticated load: per-camera write tokens (a camera credential each could hold; here one prefix
    /// credential's token for every camera) and a reader token for the freshness probe and `--verify`.
    @Test("With --auth required: camera tokens for writes, a reader token for queries; exact, nothing refused")
    func authenticatedFleet() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let camera = try SpeedflowProcess.createToken(dataDir: data, ["--role", "camera", "--kvfv", "LGA*"])
        let reader = try SpeedflowProcess.createToken(dataDir: data, ["--role", "reader"])
        try await server.start()

        var configuration = LoadgenConfiguration()
        configuration.url = server.url
        configuration.cameras = 12
        configuration.cameraPrefix = "LGA"
        configuration.concurrency = 4
        configuration.mode = .batch
        configuration.batchSize = 40
        configuration.rate = 3000
        configuration.duration = .seconds(2)
        configuration.outageShare = 0.3
        configuration.outageDuration = .seconds(1)
        configuration.freshnessInterval = .milliseconds(200)
        configuration.verify = true
        configuration.seed = 2026
        configuration.token = reader
        for i in 1...12 { configuration.cameraTokens["LGA" + String(format: "%05d", i)] = camera }
        let report = try await Loadgen.run(configuration: configuration)
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        #expect(report.anomalies.validRejected == 0 && report.anomalies.badAnswers == 0, "\(details)")
        #expect(report.unacknowledged == 0 && report.eventsAcknowledged > 0, "\(details)")
        #expect(try #require(report.verification).passed, "\(details)")
        #expect(report.freshness.map { $0.delay.samples > 0 && $0.queryErrors == 0 } == true, "\(details)")
    }
}
