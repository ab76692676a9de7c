#if Kafka
import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// MQTT into the scale-out chain: `ingest --mqtt-port` (PUBACK once Kafka's delivery reports are in) → the mock
/// Kafka cluster → an aggregator → ClickHouse → an API node, with `mosquitto_pub` as the camera.
@Suite(
    "MQTT into the scale-out ingest role",
    .enabled(
        if: SpeedflowProcess.binaryPath != nil && FileManager.default.isExecutableFile(atPath: MQTTIngestTests.mosquittoPub)
            && ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"] != nil),
    .serialized)
struct MQTTScaleOutTests {
    @Test("ingest --mqtt-port: mosquitto_pub -q 1 batches are acknowledged after Kafka has them; a payload naming another camera is rejected topic_mismatch; the API answers every window exactly")
    func ingestRole() async throws {
        let binary = try #require(SpeedflowProcess.binaryPath)
        let clickhouse = try #require(ProcessInfo.processInfo.environment["SPEEDFLOW_TEST_CLICKHOUSE"])
        let kafka = try KafkaMockProcess(binary: binary, brokers: 1, partitions: 2)
        defer { kafka.stop() }
        let database = "sfmqtt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let store = ["--store", "clickhouse", "--clickhouse-url", clickhouse, "--clickhouse-database", database]
        let brokers = ["--log", "kafka", "--brokers", kafka.bootstrap]
        let aggregator = try SpeedflowProcess(
            subcommand: "aggregate", extraArguments: brokers + store + ["--group", "g-\(database)", "--flush-interval", "200ms"])
        let ingest = try SpeedflowProcess(subcommand: "ingest", extraArguments: brokers + ["--mqtt-port", "0"])
        let api = try SpeedflowProcess(subcommand: "api", extraArguments: store)
        defer { for p in [aggregator, ingest, api] { p.remove() } }
        try await aggregator.start()
        try await ingest.start()
        try await api.start()
        let port = try await MQTTIngestTests.mqttPort(ingest)

        let base = MQTTIngestTests.base()
        let batches = (0..<4).map { MQTTIngestTests.events("MK1", count: 250, first: $0 * 250, base: base) }
        let file = ingest.directory.appendingPathComponent("batch.ndjson")
        for (i, batch) in batches.enumerated() {
            var lines = batch.map { $0.json + "\n" }.joined()
            // One event per batch names another camera: rejected with a reason, the rest taken.
            lines += MQTTIngestTests.Event(camera: "MK2", ms: base, speed: 50, id: "MK2-\(i)").json + "\n"
            try Data(lines.utf8).write(to: file)
            let r = try await MQTTIngestTests.publish(
                port: port, ["-V", i % 2 == 0 ? "mqttv311" : "mqttv5", "-q", "1", "-t", "speedflow/v1/events/MK1", "-f", file.path])
            #expect(r.status == 0, "\(r.output)")
        }
        // Every PUBACK came after Kafka's delivery reports: the ingest node has counted each batch as accepted.
        let stats = MQTTIngestTests.json(try await MQTTIngestTests.get(ingest.url + "/stats").body)
        #expect(stats["accepted_total"] as? Int == 1000, "\(stats)")
        #expect((stats["rejected_by_reason"] as? [String: Any])?["topic_mismatch"] as? Int == 4, "\(stats)")

        let truth = batches.flatMap { $0 }
        try await waitUntil("the aggregator has stored all 1,000 events", timeout: .seconds(90)) {
            let uri = "\(api.url)/kvfv/MK1/avg-speed?from=\(Timestamp.format(base))&to=\(Timestamp.format(base + 900_000))&interval=5m"
            let body = MQTTIngestTests.json((try? await MQTTIngestTests.get(uri).body) ?? "")
            return (body["windows"] as? [[String: Any]])?.compactMap { $0["count"] as? Int }.reduce(0, +) == truth.count
        }
        try await MQTTIngestTests.expectWindows(api.url, camera: "MK1", from: base, truth: truth)
        try await MQTTIngestTests.expectWindows(api.url, camera: "MK2", from: base, truth: [])
    }
}
#endif
