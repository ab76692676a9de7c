import Foundation
import SpeedflowTestSupport
import Testing

@testable import SpeedflowLoadgen

/// Issue #11's scenario for correctness (its speed is `bench/backfill.sh`'s): a fleet whose every camera goes
/// offline and flushes hours of backlog — late, resent, shuffled batches of 500 — into `serve --store clickhouse`,
/// then every 5-minute window of every camera checked exactly from a separate `speedflow api` node, which holds
/// nothing of its own: what it answers is what reached ClickHouse.
@Suite(
    "ClickHouse backfill: 100,000+ late, resent, shuffled events, every window exact from an api node", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil
        && ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"] != nil))
struct ClickHouseBackfillTests {
    @Test("every camera flushes a 10 h backlog; the api node's windows equal the oracle's")
    func backfillIsExactFromAPINode() async throws {
        let url = try #require(ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"])
        let database = "sfbackfill_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = ["--store", "clickhouse", "--clickhouse-url", url, "--clickhouse-database", database]
        let server = try SpeedflowProcess(extraArguments: store)
        defer { server.remove() }
        try await server.start()
        let api = try SpeedflowProcess(subcommand: "api", extraArguments: store)
        defer { api.remove() }
        try await api.start()

        var configuration = LoadgenConfiguration()
        configuration.url = server.url
        configuration.queryURL = api.url
        configuration.cameras = 40
        configuration.concurrency = 8
        configuration.mode = .batch
        configuration.batchSize = 500
        // Count-limited (backlogs count too), paced so every camera's outage (planned within the first 5 s) comes
        // before the limit: every camera goes offline once and comes back with 10 h of backlog, most events late.
        configuration.eventCount = 110_000
        configuration.duration = nil
        configuration.rate = 8000
        configuration.outageShare = 1
        configuration.outageDuration = .seconds(1)
        configuration.backlogAge = .seconds(10 * 3600)
        configuration.backlogEvents = 2000
        configuration.duplicateShare = 0.05
        configuration.lostAckShare = 0.01
        configuration.invalidShare = 0.01
        configuration.inBatchDuplicateShare = 0.05
        configuration.freshnessInterval = nil
        configuration.progress = false
        configuration.verify = true
        // The api node sees what the server's flushes have landed in ClickHouse: wait for the last one.
        configuration.verifyWait = .seconds(180)
        configuration.seed = 11

        let report = try await Loadgen.run(configuration: configuration)
        var details = "\(report.text())\n--- serve log tail ---\n\(server.logTail())\n--- api log tail ---\n\(api.logTail())"
        for (name, p) in [("serve", server), ("api", api)] {
            if let crash = p.crashReport() { details += "\n--- \(name) crashed ---\n\(crash)" }
        }
        #expect(report.unacknowledged == 0, "\(details)")
        #expect(report.anomalies.validRejected == 0 && report.anomalies.invalidAccepted == 0, "\(details)")
        #expect(report.anomalies.countMismatches == 0 && report.anomalies.badAnswers == 0, "\(details)")
        // The scenario is the one it claims: 100,000+ events, most of them flushed backlog, resends among them.
        #expect(report.eventsAcknowledged >= 100_000, "\(details)")
        #expect(report.backlogEvents >= 40 * 2000 / 2, "\(details)")
        #expect(report.duplicates > 0, "\(details)")
        let verification = try #require(report.verification, "\(details)")
        #expect(verification.passed, "\(details)")
        #expect(verification.eventsFound == report.eventsAcknowledged, "\(details)")
    }
}
