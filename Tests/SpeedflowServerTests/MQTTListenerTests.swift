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

/// The MQTT listener in process, over raw sockets: what a well-behaved client library would never send (bad
/// first packets, unsupported levels, oversized packets, silence) and timing the public clients cannot show
/// (pipelined PUBLISHes, acknowledgement order, QoS 2 resends, sessions, shutdown). Conformance with real client
/// libraries is `MQTTIngestTests` (IntegrationTests: mosquitto_pub, Paho).
@Suite("MQTT listener in process: protocol edges, ordering, sessions")
struct MQTTListenerTests {
    struct Server: Sendable {
        let engine: Engine
        let port: Int
        let listener: MQTTListener
        let group: ServiceGroup
    }

    static func with(
        _ configuration: MQTTConfiguration = MQTTConfiguration(port: 0), _ body: @Sendable (Server) async throws -> Void
    ) async throws {
        let dir = temporaryDirectory("speedflow-mqtt")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let engine = try Engine(
            log: try SegmentLog(directory: dir.appendingPathComponent("log")),
            store: try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path), configuration: EngineConfiguration())
        engine.start()
        defer { engine.shutdown() }
        var logger = Logger(label: "mqtt-test")
        logger.logLevel = .warning
        let bound = Mutex<Int?>(nil)
        let listener = MQTTListener(
            configuration: configuration, intake: engine.intake, server: ServerConfiguration(port: 0), access: .off, tls: nil, logger: logger,
            drainTimeout: .seconds(5), onListening: { port in bound.withLock { $0 = port } })
        let group = ServiceGroup(configuration: .init(services: [.init(service: listener)], logger: logger))
        try await withRunningGroup(group, until: "the MQTT listener listens", ready: { bound.withLock { $0 } != nil }) {
            try await body(Server(engine: engine, port: bound.withLock { $0 }!, listener: listener, group: group))
        }
    }

    /// A blocking MQTT client on a raw socket, speaking through the codec: use it off the cooperative pool.
    final class Client: @unchecked Sendable {
        // @unchecked: used by one thread at a time (each test body runs on a thread of its own).
        let socket: RawSocket
        var decoder: MQTTDecoder
        let version: MQTTVersion

        init?(port: Int, version: MQTTVersion) {
            guard let socket = RawSocket(port: port) else { return nil }
            self.socket = socket
            self.version = version
            decoder = MQTTDecoder(version: version)
        }

        @discardableResult
        func send(_ packet: MQTTPacket) -> Bool { socket.send(packet.encode(version: version)) }

        /// The next packet from the server, or `nil` when none comes within `limit` seconds (or it closed).
        func next(limit: Double = 10) -> MQTTPacket? {
            let deadline = Date().addingTimeInterval(limit)
            while true {
                if let (packet, length) = try! socket.received.withUnsafeBytes({ raw in try decoder.decode(raw) }) {
                    socket.received.removeFirst(length)
                    return packet
                }
                guard Date() < deadline, !socket.closedByServer else { return nil }
                socket.poll(seconds: 0.05)
            }
        }

        func connect(_ id: String, cleanStart: Bool = true, keepAlive: UInt16 = 60, properties: MQTTProperties = MQTTProperties()) -> MQTTPacket.ConnAck? {
            send(.connect(.init(version: version, clientId: id, cleanStart: cleanStart, keepAliveSeconds: keepAlive, properties: properties)))
            guard case .connack(let ack)? = next() else { return nil }
            return ack
        }
    }

    static func event(_ camera: String, _ n: Int) -> String {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(now - 60_000 - Int64(n)))\",\"vehicle_speed\":\(50 + n % 50),\"event_id\":\"\(camera)-\(n)\"}"
    }

    static func publish(_ camera: String, _ n: Int, qos: MQTTQoS, id: UInt16?, dup: Bool = false) -> MQTTPacket {
        .publish(.init(dup: dup, qos: qos, topic: "speedflow/v1/events/\(camera)", packetId: id, payload: Array(event(camera, n).utf8)))
    }

    @Test("an unsupported protocol level is answered CONNACK 0x01 and closed; a first packet other than CONNECT, or none within the connect timeout, is closed unanswered")
    func connectRules() async throws {
        try await Self.with(MQTTConfiguration(port: 0, connectTimeoutMs: 300)) { server in
            try await offCooperativePool {
                let old = RawSocket(port: server.port)!
                // MQTT 3.1 (MQIsdp, level 3).
                old.send([0x10, 0x0E, 0x00, 0x06] + Array("MQIsdp".utf8) + [0x03, 0x02, 0x00, 0x3C, 0x00, 0x00])
                #expect(old.waitForClose(limit: 5))
                #expect(old.received == [0x20, 0x02, 0x00, 0x01])
                let ping = RawSocket(port: server.port)!
                ping.send([0xC0, 0x00])
                #expect(ping.waitForClose(limit: 5) && ping.received.isEmpty)
                let silent = RawSocket(port: server.port)!
                let start = Date()
                #expect(silent.waitForClose(limit: 10) && silent.received.isEmpty)
                #expect(Date().timeIntervalSince(start) >= 0.25)
            }
        }
    }

    @Test("PUBLISHes sent back to back are acknowledged in their order, each once durable; QoS 2: PUBREC, a resend answered without counting again, PUBREL → PUBCOMP", arguments: [MQTTVersion.v3_1_1, .v5])
    func pipelined(version: MQTTVersion) async throws {
        try await Self.with { server in
            let camera = "PIPE\(version.rawValue)"
            try await offCooperativePool {
                let client = Client(port: server.port, version: version)!
                #expect(client.connect("pipe")?.reasonCode == 0)
                // 40 QoS 1 with ids 1…40, then 5 QoS 0, in one write.
                let packets = (1...40).map { Self.publish(camera, $0, qos: .atLeastOnce, id: UInt16($0)) } + (41...45).map { Self.publish(camera, $0, qos: .atMostOnce, id: nil) }
                #expect(client.socket.send(packets.flatMap { $0.encode(version: version) }))
                var acked: [UInt16] = []
                while acked.count < 40, case .puback(let a)? = client.next() { acked.append(a.packetId) }
                #expect(acked == Array(1...40))
                // QoS 2: the same packet id sent again (DUP) before PUBREL is answered again and not processed again.
                client.send(Self.publish(camera, 46, qos: .exactlyOnce, id: 7))
                #expect(client.next() == .pubrec(.init(packetId: 7)))
                client.send(Self.publish(camera, 47, qos: .exactlyOnce, id: 7, dup: true))
                #expect(client.next() == .pubrec(.init(packetId: 7)))
                client.send(.pubrel(.init(packetId: 7)))
                #expect(client.next() == .pubcomp(.init(packetId: 7)))
                // An unknown release: 5 says so (0x92), 3.1.1 completes it.
                client.send(.pubrel(.init(packetId: 8)))
                #expect(client.next() == .pubcomp(.init(packetId: 8, reasonCode: version == .v5 ? 0x92 : 0)))
                client.send(.disconnect(.init()))
                #expect(client.socket.waitForClose(limit: 5))
            }
            let stats = server.engine.stats.snapshot(nowMs: server.engine.now)
            #expect(stats.accepted == 46, "40 QoS 1 + 5 QoS 0 + the first QoS 2 (the resend with id 7 not processed)")
        }
    }

    @Test("MQTT 5: CONNACK says the limits; a packet over the maximum is refused from its header (DISCONNECT 0x95); keep-alive: PINGRESP, then 1.5 × silence ends it (0x8D)")
    func limitsAndKeepAlive() async throws {
        try await Self.with(MQTTConfiguration(port: 0, maxPacketBytes: 1024, maxInflight: 8)) { server in
            try await offCooperativePool {
                let client = Client(port: server.port, version: .v5)!
                var asked = MQTTProperties()
                asked.sessionExpiryInterval = 0xFFFF_FFFF
                let ack = client.connect("limits", keepAlive: 1, properties: asked)
                #expect(ack?.reasonCode == 0 && ack?.sessionPresent == false)
                #expect(ack?.properties.receiveMaximum == 8 && ack?.properties.maximumPacketSize == 1024)
                #expect(ack?.properties.retainAvailable == 0 && ack?.properties.sharedSubscriptionAvailable == 0)
                #expect(ack?.properties.sessionExpiryInterval == 86_400, "capped at a day")
                client.send(.pingreq)
                #expect(client.next() == .pingresp)
                // Silence: closed between 1.5 s and a few seconds later, with the reason.
                let start = Date()
                guard case .disconnect(let d)? = client.next(limit: 10) else { Issue.record("no DISCONNECT"); return }
                #expect(d.reasonCode == 0x8D && Date().timeIntervalSince(start) >= 1.4)

                let big = Client(port: server.port, version: .v5)!
                #expect(big.connect("big")?.reasonCode == 0)
                // Only the header of a 2,000-byte PUBLISH.
                big.socket.send([0x30, 0xD0, 0x0F])
                guard case .disconnect(let tooLarge)? = big.next() else { Issue.record("no DISCONNECT"); return }
                #expect(tooLarge.reasonCode == 0x95)
                #expect(big.socket.waitForClose(limit: 5))
            }
        }
    }

    @Test("sessions: clean start 0 resumes (session present, subscription kept); the same client id connecting again takes over (0x8E); shutdown disconnects with 0x8B")
    func sessions() async throws {
        try await Self.with { server in
            try await offCooperativePool {
                var keep = MQTTProperties()
                keep.sessionExpiryInterval = 600
                let first = Client(port: server.port, version: .v5)!
                #expect(first.connect("cam-1", cleanStart: false, properties: keep)?.sessionPresent == false)
                first.send(.subscribe(.init(packetId: 1, subscriptions: [.init(filter: "speedflow/v1/rejections/SESS", qos: .atLeastOnce), .init(filter: "other/topic", qos: .atMostOnce)])))
                #expect(first.next() == .suback(.init(packetId: 1, reasonCodes: [0x00, 0x87])))
                let second = Client(port: server.port, version: .v5)!
                #expect(second.connect("cam-1", cleanStart: false, properties: keep)?.sessionPresent == true)
                guard case .disconnect(let taken)? = first.next() else { Issue.record("no DISCONNECT"); return }
                #expect(taken.reasonCode == 0x8E)
                // The resumed subscription gets the report of a PUBLISH with a rejection.
                second.send(.publish(.init(qos: .atLeastOnce, topic: "speedflow/v1/events/SESS", packetId: 3, payload: Array(Self.event("OTHER", 1).utf8))))
                guard case .publish(let report)? = second.next() else { Issue.record("no report"); return }
                #expect(report.topic == "speedflow/v1/rejections/SESS" && report.qos == .atMostOnce)
                let json = try JSONSerialization.jsonObject(with: Data(report.payload)) as? [String: Any]
                #expect(json?["packet_id"] as? Int == 3 && (json?["rejected_by_reason"] as? [String: Int]) == ["topic_mismatch": 1])
                #expect(second.next() == .puback(.init(packetId: 3)))
                // A clean start forgets it.
                second.send(.disconnect(.init()))
                #expect(second.socket.waitForClose(limit: 5))
                let third = Client(port: server.port, version: .v5)!
                #expect(third.connect("cam-1", cleanStart: true)?.sessionPresent == false)
            }
            let open = try await offCooperativePool { () -> Client in
                let c = Client(port: server.port, version: .v5)!
                #expect(c.connect("stays")?.reasonCode == 0)
                return c
            }
            // Graceful shutdown: the connection is told why, then closed.
            async let told = offCooperativePool { open.next(limit: 20) }
            await server.group.triggerGracefulShutdown()
            guard case .disconnect(let d)? = try await told else { Issue.record("no DISCONNECT at shutdown"); return }
            #expect(d.reasonCode == 0x8B)
            #expect(try await offCooperativePool { open.socket.waitForClose(limit: 10) })
        }
    }
}
