import Foundation
import SpeedflowTestSupport
import Synchronization
import Testing

@testable import SpeedflowLoadgen

/// `loadgen --transport mqtt` against the real binary's MQTT listener (`serve --mqtt-port`): the fleet on bad links
/// (outages and backlogs, lost answers, abandoned publishes, resends, invalid events), PUBACK as the acknowledgement,
/// then every window verified exactly over HTTP.
@Suite("Loadgen over MQTT against a real server", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["SPEEDFLOW_BIN"] != nil))
struct LoadgenMQTTTests {
    static func configuration(server: SpeedflowProcess, mqttPort: Int, mode: LoadgenConfiguration.Mode) -> LoadgenConfiguration {
        var c = LoadgenConfiguration()
        c.url = server.url
        c.transport = .mqtt
        c.mqttURL = "mqtt://127.0.0.1:\(mqttPort)"
        c.cameras = 24
        c.concurrency = 6
        c.mode = mode
        c.batchSize = 50
        c.rate = mode == .single ? 1500 : 6000
        c.duration = .seconds(3)
        c.outageShare = 0.5
        c.outageDuration = .seconds(1)
        c.backlogAge = .seconds(3 * 86_400)
        c.backlogEvents = 150
        c.duplicateShare = 0.05
        c.lostAckShare = 0.05
        c.timeoutShare = 0.02
        c.invalidShare = 0.05
        c.inBatchDuplicateShare = 0.3
        c.freshnessInterval = .milliseconds(200)
        c.verify = true
        c.seed = 2027
        return c
    }

    static func expectClean(_ report: LoadReport, _ details: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(report.transport == .mqtt, sourceLocation: sourceLocation)
        #expect(report.anomalies.validRejected == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.anomalies.invalidAccepted == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.anomalies.reasonMismatches == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.anomalies.countMismatches == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.anomalies.badAnswers == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.unacknowledged == 0, "\(details)", sourceLocation: sourceLocation)
        #expect(report.verification?.passed == true, "\(details)", sourceLocation: sourceLocation)
        #expect(report.verification?.eventsFound == report.eventsAcknowledged, "\(details)", sourceLocation: sourceLocation)
    }

    @Test("A short fleet on bad links over MQTT (QoS 1, PUBACK after fsync) is stored exactly", arguments: [
        LoadgenConfiguration.Mode.single, .batch,
    ])
    func fleetOverMQTT(mode: LoadgenConfiguration.Mode) async throws {
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "0"])
        defer { server.remove() }
        try await server.start()
        let mqttPort = try await MQTTIngestTests.mqttPort(server)
        let report = try await Loadgen.run(configuration: Self.configuration(server: server, mqttPort: mqttPort, mode: mode))
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        Self.expectClean(report, details)
        // The scenario really exercised what it claims to: outages and backlogs, resends, every rejection reason
        // (reported on the rejections topic before the PUBACK), freshness from the PUBACK on.
        #expect(report.outages > 0 && report.backlogEvents > 0)
        #expect(report.duplicates > 0)
        #expect(report.lostAckResends > 0 || report.deliberateDuplicates > 0)
        #expect(report.forcedTimeouts > 0, "\(details)")
        #expect(Set(report.invalidGenerated.keys) == Set(EventFlaw.allCases.map(\.reason)), "\(details)")
        #expect(report.rejected > 0 && report.rejectedByReason.keys.allSatisfy { report.invalidGenerated[$0] != nil || $0 == "http_400" }, "\(details)")
        #expect(report.freshness.map { $0.delay.samples > 0 && $0.neverVisible == 0 } == true, "\(details)")
        // The events went over MQTT: the server counted at least one QoS 1 PUBLISH per acknowledged request.
        let metrics = try await MQTTIngestTests.get(server.url + "/metrics").body
        let publishes = metrics.split(separator: "\n").first { $0.hasPrefix("speedflow_mqtt_publish_total{qos=\"1\"} ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(publishes >= Double(report.requestsOK) && report.requestsOK > 0, "\(publishes) PUBLISHes for \(report.requestsOK) acknowledged requests")
    }

    @Test("kill -9 of the server three times during a loadgen --transport mqtt run: workers reconnect and resend what was not acknowledged; verified exact")
    func killsDuringMQTTRun() async throws {
        let mqttPort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        var freePort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        while freePort == mqttPort { freePort = try SpeedflowProcess.freePortOutsideEphemeralRange() }
        let httpPort = freePort
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "\(mqttPort)"], port: httpPort)
        defer { server.remove() }
        try await server.start()
        var c = Self.configuration(server: server, mqttPort: mqttPort, mode: .batch)
        c.duration = nil
        c.eventCount = 40_000
        c.rate = 4000
        c.freshnessInterval = nil
        c.drainTimeout = .seconds(120)
        let configuration = c
        let run = Task { try await Loadgen.run(configuration: configuration) }
        func accepted() async throws -> Int {
            MQTTIngestTests.json(try await MQTTIngestTests.get(server.url + "/stats").body)["accepted_total"] as? Int ?? -1
        }
        for _ in 0..<3 {
            let start = try await accepted()
            try await waitUntil("3,000 more events accepted over MQTT", timeout: .seconds(120)) { try await accepted() >= start + 3000 }
            server.kill9()
            try await server.start()
        }
        let report = try await run.value
        let details = "\(report.text())\n--- server log tail ---\n\(server.logTail())"
        Self.expectClean(report, details)
        // The kills were felt: publishes failed with the connection and were resent.
        #expect(report.httpErrors["connection", default: 0] > 0, "\(details)")
    }

    @Test("The CLI: speedflow loadgen --transport mqtt --mqtt-url … --verify exits 0")
    func commandLine() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "0"])
        defer { server.remove() }
        try await server.start()
        let mqttPort = try await MQTTIngestTests.mqttPort(server)
        let url = server.url
        let r = try await offCooperativePool {
            try SpeedflowProcess.run([
                "loadgen", "--url", url, "--transport", "mqtt", "--mqtt-url", "mqtt://127.0.0.1:\(mqttPort)", "--cameras", "8",
                "--concurrency", "4", "--mode", "batch", "--batch-size", "100", "--events", "4000", "--verify", "--quiet",
            ])
        }
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("batches of 100 over MQTT (QoS 1)"), "\(r.output)")
    }
}
