import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Eclipse Paho C (Debian `libpaho-mqtt-dev`, the synchronous MQTTClient API) with a persistent session — file
/// persistence, clean session 0 — publishing single events at QoS 1 (`Fixtures/paho-publisher.c`, compiled here).
/// Speedflow is killed with `kill -9` three times mid-stream and started again on the same port; the client only
/// reconnects and leaves resending what was in flight to Paho. Every event must be there, each once.
@Suite(
    "MQTT: a Paho C client with a persistent session across kill -9",
    .enabled(if: SpeedflowProcess.binaryPath != nil && FileManager.default.fileExists(atPath: "/usr/include/MQTTClient.h")),
    .serialized)
struct MQTTPahoTests {
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/paho-publisher.c")

    /// Compiles the fixture into `directory`: the path of the executable.
    static func compile(into directory: URL) async throws -> String {
        let binary = directory.appendingPathComponent("paho-publisher").path
        let r = try await MQTTIngestTests.run("/usr/bin/cc", ["-O1", "-o", binary, source.path, "-lpaho-mqtt3c"])
        #expect(r.status == 0, "cc: \(r.output)")
        return binary
    }

    @Test("Paho C, file persistence, clean session 0, QoS 1, 10 in flight: kill -9 of Speedflow three times mid-stream; Paho resends its in-flight messages on reconnect (CONNACK session present 0 after each restart) and every window is exact")
    func persistentSessionAcrossKills() async throws {
        let mqttPort = try SpeedflowProcess.freePortOutsideEphemeralRange()
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "\(mqttPort)"])
        defer { server.remove() }
        try await server.start()
        let dir = server.directory
        let publisher = try await Self.compile(into: dir)
        let persistence = dir.appendingPathComponent("paho-persistence")
        try FileManager.default.createDirectory(at: persistence, withIntermediateDirectories: true)

        let camera = "PAHO1"
        let base = MQTTIngestTests.base()
        let events = MQTTIngestTests.events(camera, count: 3000, first: 0, base: base)
        let file = dir.appendingPathComponent("events.ndjson")
        try Data(events.map { $0.json + "\n" }.joined().utf8).write(to: file)

        let client = BackgroundProcess(
            publisher,
            ["tcp://127.0.0.1:\(mqttPort)", "paho-camera-\(camera)", persistence.path, "speedflow/v1/events/\(camera)", file.path, "10", "400"],
            logFile: dir.appendingPathComponent("paho.log"))
        defer { client.kill9() }
        try client.start()
        func taken() -> Int {
            client.log(4096).split(separator: "\n").last(where: { $0.hasPrefix("taken ") }).flatMap { Int($0.dropFirst(6)) } ?? 0
        }
        // Killed while the client is mid-stream (it has handed Paho this many events): in flight then are up to 10.
        for threshold in [500, 1200, 2000] {
            try await waitUntil("the client took \(threshold) events", timeout: .seconds(300)) { taken() >= threshold || !client.isRunning }
            #expect(client.isRunning, "the client ended before the kill at \(threshold): \(client.log(2000))")
            server.kill9()
            // The client tries to reconnect in vain meanwhile; Speedflow comes back on the same MQTT port.
            try await server.start()
            try await waitUntil("the MQTT listener back on \(mqttPort)", timeout: .seconds(30)) { SpeedflowProcess.accepts(mqttPort) }
        }
        let exited = await client.waitForExit(timeout: .seconds(300))
        #expect(exited && client.exitStatus == 0, "paho-publisher: \(client.log(4000))")
        let output = client.log()
        #expect(output.contains("done taken=\(events.count) "), "\(output.suffix(2000))")
        let connects = output.split(separator: "\n").filter { $0.hasPrefix("connected session_present=") }
        // The first connection and one after each kill at least (the client may need more attempts than one).
        #expect(connects.count >= 4, "\(connects)")
        // Speedflow's sessions live in memory: after a restart, session present 0 — and Paho resends anyway.
        #expect(connects.dropFirst().contains { $0.hasSuffix("=0") }, "\(connects)")
        try await MQTTIngestTests.expectWindows(server.url, camera: camera, from: base, truth: events)
        let stats = MQTTIngestTests.json(try await MQTTIngestTests.get(server.url + "/stats").body)
        print("Paho persistent session test: \(connects.count) connections (\(connects.joined(separator: ", "))), stats \(stats)")
    }
}
