import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Synchronization
import Testing

/// A fleet that already runs a broker: a real mosquitto (Debian `mosquitto`) on its own loopback port, with
/// persistence, bridging `speedflow/v1/events/#` out at QoS 1 into Speedflow's MQTT listener as a client. Cameras
/// publish to the broker with `mosquitto_pub -q 1`; Speedflow is killed with `kill -9` and the broker restarted
/// mid-stream; in the end every window is exactly what the broker acknowledged.
@Suite(
    "MQTT: a mosquitto bridge into Speedflow",
    .enabled(if: SpeedflowProcess.binaryPath != nil && FileManager.default.isExecutableFile(atPath: "/usr/sbin/mosquitto")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/mosquitto_pub")),
    .serialized)
struct MQTTBridgeTests {
    static let mosquitto = "/usr/sbin/mosquitto"

    /// The broker's configuration: what the README's "Bridging from a broker" recommends, on test ports.
    static func configuration(brokerPort: Int, speedflowMQTTPort: Int, directory: URL) -> String {
        """
        # Written by MQTTBridgeTests: the README's production settings, on loopback test ports.
        user root
        per_listener_settings false
        listener \(brokerPort) 127.0.0.1
        allow_anonymous true
        log_dest file \(directory.appendingPathComponent("mosquitto.log").path)
        log_type error
        log_type warning
        log_type notice
        log_type information
        connection_messages true

        # Everything acknowledged to a camera is in the persistence file at the next save; a graceful stop saves too.
        persistence true
        persistence_location \(directory.path)/
        autosave_on_changes true
        autosave_interval 1
        # Never drop what waits for Speedflow while it is down (the defaults drop beyond 1,000 per client).
        max_queued_messages 0
        max_queued_bytes 0
        # persistent_client_expiration unset: the bridge's session and queue never expire.

        connection speedflow
        address 127.0.0.1:\(speedflowMQTTPort)
        bridge_protocol_version mqttv311
        try_private false
        notifications false
        cleansession false
        local_cleansession false
        remote_clientid mosquitto-bridge-test
        local_clientid mosquitto-bridge-test-local
        keepalive_interval 10
        restart_timeout 1 2
        start_type automatic
        topic speedflow/v1/events/# out 1
        """
    }

    @Test("mosquitto with persistence bridges QoS 1 into Speedflow: kill -9 of Speedflow three times and a graceful broker restart mid-stream (with messages queued in the broker), every window exactly what the broker acknowledged")
    func bridgeIsExact() async throws {
        let mqttPort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        let httpPort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "\(mqttPort)"], port: httpPort)
        defer { server.remove() }
        try await server.start()
        let dir = server.directory.appendingPathComponent("broker")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var freePort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        while freePort == mqttPort || freePort == httpPort { freePort = try SpeedflowProcess.freePortOutsideEphemeralRange() }
        let brokerPort = freePort
        let conf = dir.appendingPathComponent("mosquitto.conf")
        try Data(Self.configuration(brokerPort: brokerPort, speedflowMQTTPort: mqttPort, directory: dir).utf8).write(to: conf)
        let broker = BackgroundProcess(Self.mosquitto, ["-c", conf.path], logFile: dir.appendingPathComponent("stdout.log"))
        defer { broker.kill9() }
        try broker.start()
        try await waitUntil("mosquitto listening on \(brokerPort)", timeout: .seconds(30)) { SpeedflowProcess.accepts(brokerPort) }
        let brokerLog = dir.appendingPathComponent("mosquitto.log")
        func brokerText() -> String { (try? String(contentsOf: brokerLog, encoding: .utf8)) ?? "" }

        let camera = "BRG1"
        let base = MQTTIngestTests.base()
        let batches = (0..<48).map { MQTTIngestTests.events(camera, count: 50, first: $0 * 50, base: base) }
        for (i, batch) in batches.enumerated() {
            try Data(batch.map { $0.json + "\n" }.joined().utf8).write(to: dir.appendingPathComponent("b\(i).ndjson"))
        }
        /// Batches the broker acknowledged (mosquitto_pub -q 1 exited 0), and attempts that failed (retried).
        final class Acked: Sendable {
            let batches = Mutex<Set<Int>>([])
            let failures = Mutex(0)
        }
        let acked = Acked()
        func ackedCount() -> Int { acked.batches.withLock { $0.count } }
        let publishers = (0..<3).map { lane in
            Task {
                for i in stride(from: lane, to: batches.count, by: 3) {
                    var attempts = 0
                    while true {
                        attempts += 1
                        if let r = try? await MQTTIngestTests.run(
                            MQTTIngestTests.mosquittoPub,
                            ["-h", "127.0.0.1", "-p", "\(brokerPort)", "-q", "1", "-t", "speedflow/v1/events/\(camera)", "-f", dir.appendingPathComponent("b\(i).ndjson").path],
                            timeout: 10),
                            r.status == 0
                        {
                            break
                        }
                        acked.failures.withLock { $0 += 1 }
                        #expect(attempts < 600, "batch \(i) never acknowledged by the broker")
                        if attempts >= 600 { return }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                    acked.batches.withLock { _ = $0.insert(i) }
                    // A camera's pace: the stream lasts long enough for the restarts below to land mid-stream.
                    try? await Task.sleep(for: .milliseconds(60))
                }
            }
        }
        func stored() async throws -> Int {
            let uri = "\(server.url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(base))&to=\(Timestamp.format(base + 900_000))&interval=5m"
            let (status, body) = try await MQTTIngestTests.get(uri)
            if status == 404 { return 0 }
            let windows = MQTTIngestTests.json(body)["windows"] as? [[String: Any]] ?? []
            return windows.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
        }

        // 1. Speedflow is killed; the broker keeps acknowledging cameras and queues for the bridge meanwhile.
        try await waitUntil("the bridge connected and 6 batches stored", timeout: .seconds(120)) { try await stored() >= 300 }
        server.kill9()
        let atKill = ackedCount()
        try await waitUntil("4 more batches acknowledged by the broker while Speedflow is down", timeout: .seconds(120)) { ackedCount() >= atKill + 4 }
        try await server.start()

        // 2. Speedflow down again, messages queue in the broker; the broker is stopped gracefully (it saves its
        // persistence) and started again; Speedflow comes back while the broker is down.
        try await waitUntil("18 batches acknowledged", timeout: .seconds(300)) { ackedCount() >= 18 }
        server.kill9()
        let atSecondKill = ackedCount()
        try await waitUntil("4 more batches acknowledged while Speedflow is down", timeout: .seconds(120)) { ackedCount() >= atSecondKill + 4 }
        await broker.stop()
        #expect(broker.exitStatus == 0, "mosquitto: \(broker.log())")
        let heldByBroker = ackedCount() * 50
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("mosquitto.db").path), "no persistence file: \(brokerText().suffix(2000))")
        try await server.start()
        // The broker is down: what it acknowledged while Speedflow was down is only in its persistence file.
        let beforeBrokerRestart = try await stored()
        #expect(beforeBrokerRestart < heldByBroker, "the broker held nothing back: \(beforeBrokerRestart) of \(heldByBroker) already stored")
        try broker.start()
        try await waitUntil("mosquitto listening again", timeout: .seconds(30)) { SpeedflowProcess.accepts(brokerPort) }

        // 3. One more kill -9 of Speedflow mid-stream.
        try await waitUntil("34 batches acknowledged", timeout: .seconds(300)) { ackedCount() >= 34 }
        server.kill9()
        try await server.start()

        for publisher in publishers { await publisher.value }
        #expect(ackedCount() == batches.count)
        // Everything the broker acknowledged arrives (the bridge forwards asynchronously), then every window is exact.
        let truth = acked.batches.withLock { $0 }.sorted().flatMap { batches[$0] }
        do {
            try await waitUntil("every acknowledged event forwarded (\(truth.count))", timeout: .seconds(180)) { try await stored() >= truth.count }
        } catch {
            Issue.record("broker log:\n\(brokerText().suffix(4000))\nspeedflow log:\n\(server.logTail())")
            throw error
        }
        try await MQTTIngestTests.expectWindows(server.url, camera: camera, from: base, truth: truth)
        let stats = MQTTIngestTests.json(try await MQTTIngestTests.get(server.url + "/stats").body)
        #expect((stats["rejected_by_reason"] as? [String: Int] ?? [:]).isEmpty, "\(stats)")
        let bridgeConnects = brokerText().components(separatedBy: "Connecting bridge (step 1) speedflow").count - 1
        print("mosquitto bridge test: \(acked.failures.withLock { $0 }) failed publishes retried, \(bridgeConnects) bridge connection attempts logged, \(beforeBrokerRestart) of \(heldByBroker) events stored while the broker was down")
        await broker.stop()
    }
}
