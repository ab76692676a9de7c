import Foundation
import Logging
import ServiceLifecycle
import SpeedflowEngine
import SpeedflowLog
import SpeedflowMQTT
import SpeedflowModel
import SpeedflowServer
import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

/// The free-space guard on the MQTT path: a PUBLISH refused for lack of space is never acknowledged.
@Suite("MQTT under the free-space guard")
struct MQTTFreeSpaceTests {
    @Test("below --min-free-space a QoS 1 PUBLISH gets no PUBACK: DISCONNECT 0x97 (quota exceeded), nothing stored")
    func refusedPublishIsNotAcknowledged() async throws {
        let dir = temporaryDirectory("speedflow-mqtt-space")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var configuration = EngineConfiguration()
        // More free space than any disk has: always below the threshold.
        configuration.freeSpace = FreeSpaceGuard.Configuration(path: dir.path, threshold: .init(bytes: 1 << 60, percent: 0))
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path), configuration: configuration)
        engine.start()
        defer { engine.shutdown() }
        #expect(engine.freeSpace?.isRefusing == true)
        var logger = Logger(label: "mqtt-space-test")
        logger.logLevel = .warning
        let bound = Mutex<Int?>(nil)
        let listener = MQTTListener(
            configuration: MQTTConfiguration(port: 0), intake: engine.intake, server: ServerConfiguration(port: 0), access: .off, tls: nil,
            logger: logger, drainTimeout: .seconds(5), onListening: { port in bound.withLock { $0 = port } })
        let group = ServiceGroup(configuration: .init(services: [.init(service: listener)], logger: logger))
        try await withRunningGroup(group, until: "the MQTT listener listens", ready: { bound.withLock { $0 } != nil }) {
            let port = bound.withLock { $0 }!
            try await offCooperativePool {
                let client = MQTTListenerTests.Client(port: port, version: .v5)!
                #expect(client.connect("space")?.reasonCode == 0)
                client.send(MQTTListenerTests.publish("KVS1", 1, qos: .atLeastOnce, id: 7))
                guard case .disconnect(let d)? = client.next() else {
                    Issue.record("no DISCONNECT (a PUBACK would acknowledge what was not stored)")
                    return
                }
                #expect(d.reasonCode == 0x97)
                #expect(client.socket.waitForClose(limit: 5))
            }
        }
        #expect(engine.stats.snapshot(nowMs: Int64(Date().timeIntervalSince1970 * 1000)).accepted == 0)
        #expect(engine.log.endOffset.value == 0, "nothing was written to the log")
    }
}
