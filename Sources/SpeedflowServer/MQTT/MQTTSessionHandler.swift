import Foundation
import Logging
import NIOCore
import SpeedflowAuth
import SpeedflowMQTT

/// Sent to every connection when the listener shuts down: finish what is in flight, then disconnect.
struct MQTTDrainEvent: Sendable {}
/// Sent to a connection whose client id connected again: it is closed (MQTT 5: DISCONNECT 0x8E).
struct MQTTTakenOverEvent: Sendable {}

/// One MQTT connection: CONNECT first (within `connectTimeoutMs`), then PUBLISH, SUBSCRIBE, PINGREQ, DISCONNECT.
///
/// Every PUBLISH is handed to `MQTTIngest` as soon as it arrives (several at once, up to `maxInflight` /
/// `maxInflightBytes`, beyond which the connection is not read), and answered in arrival order once processed:
/// first, if it had rejections and the client subscribed to the camera's rejections topic, the report there (QoS
/// 0), then PUBACK (QoS 1) or PUBREC (QoS 2). So an acknowledgement always means the events are durable, and a
/// client may count on acknowledgements coming in the order it published. A PUBLISH that could not be processed
/// (overload past the retry budget, shutdown, a log failure) is never acknowledged: the connection is closed
/// and the client resends it on its next connection.
///
/// Keep-alive: silence for 1.5 × the client's keep-alive ends the connection, except while the connection is not
/// read because its PUBLISHes are still being made durable (the silence is then the server's own).
///
/// Used only on the channel's event loop.
final class MQTTSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case connecting, connected, closing }

    private struct Pending {
        let seq: UInt64
        let packetId: UInt16?
        let qos: MQTTQoS
        let bytes: Int
        var outcome: MQTTIngest.Outcome?
    }

    private let shared: MQTTListener.Shared
    private let token: UInt64
    private var phase = Phase.connecting
    /// Whether the connection holds its client id's session (from an accepted CONNECT until it closes).
    private var holdsSession = false
    /// 3.1.1 until CONNECT says otherwise (answers to an unsupported CONNECT use the 3.1.1 form).
    private var version = MQTTVersion.v3_1_1
    private var clientId = ""
    private var principal: Principal?
    private var subscriptions: [String] = []
    /// How long the session outlives the connection (0: not at all).
    private var keepSessionSeconds: UInt32 = 0
    /// MQTT 5 "request problem information": reason strings on acknowledgements (default yes).
    private var problemInformation = true
    /// MQTT 5 client's maximum packet size: larger reports are not sent.
    private var maxOutgoing = Int.max
    private var pending = CircularBuffer<Pending>()
    private var nextSeq: UInt64 = 0
    private var inflightBytes = 0
    /// QoS 2 packet ids answered with PUBREC and not yet released.
    private var awaitingRelease = Set<UInt16>()
    /// A read the pipeline asked for while paused.
    private var readWanted = false
    private var draining = false
    private var keepAlive: TimeAmount?
    private var lastActivity = NIODeadline.now()
    private var timer: Scheduled<Void>?

    init(shared: MQTTListener.Shared, token: UInt64) {
        self.shared = shared
        self.token = token
    }

    private var configuration: MQTTConfiguration { shared.configuration }

    private var paused: Bool {
        draining || phase == .closing || pending.count >= configuration.maxInflight || inflightBytes >= configuration.maxInflightBytes
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(configuration.connectTimeoutMs)) { [self] in
            guard phase == .connecting else { return }
            shared.count(disconnect: "connect_timeout")
            close(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        end()
    }

    private func end() {
        timer?.cancel()
        timer = nil
        if holdsSession {
            holdsSession = false
            shared.sessions.disconnect(clientId: clientId, token: token, keepSeconds: keepSessionSeconds, nowMs: shared.nowMs())
        }
        phase = .closing
    }

    // MARK: Backpressure

    func read(context: ChannelHandlerContext) {
        if paused {
            readWanted = true
        } else {
            context.read()
        }
    }

    private func resumeIfPossible(_ context: ChannelHandlerContext) {
        if readWanted && !paused {
            readWanted = false
            context.read()
        }
    }

    // MARK: Packets

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = unwrapInboundIn(data)
        lastActivity = .now()
        guard phase != .closing else { return }
        if phase == .connecting {
            guard case .connect(let connect) = packet else {
                return protocolError(context, "the first packet must be CONNECT, not \(packet.type)")
            }
            return self.connect(connect, context)
        }
        switch packet {
        case .publish(let publish):
            self.publish(publish, context)
        case .pubrel(let ack):
            let known = awaitingRelease.remove(ack.packetId) != nil
            write(.pubcomp(.init(packetId: ack.packetId, reasonCode: known ? 0 : 0x92)), context, flush: true)
        case .subscribe(let subscribe):
            self.subscribe(subscribe, context)
        case .unsubscribe(let unsubscribe):
            var codes: [UInt8] = []
            for filter in unsubscribe.filters {
                let had = subscriptions.contains(filter)
                subscriptions.removeAll { $0 == filter }
                codes.append(had ? 0x00 : 0x11)
            }
            shared.sessions.update(clientId: clientId, token: token, subscriptions: subscriptions)
            write(.unsuback(.init(packetId: unsubscribe.packetId, reasonCodes: codes)), context, flush: true)
        case .pingreq:
            write(.pingresp, context, flush: true)
        case .disconnect(let d):
            if version == .v5, let interval = d.properties.sessionExpiryInterval {
                // 5 §3.14.2.2.2: a session that was to end with the connection cannot be prolonged at its end.
                if keepSessionSeconds == 0 && interval != 0 { return protocolError(context, "DISCONNECT sets a session expiry interval after CONNECT's 0") }
                keepSessionSeconds = min(interval, configuration.maxSessionExpirySeconds)
            }
            shared.count(disconnect: "client")
            close(context)
        case .puback, .pubrec, .pubcomp:
            break  // Speedflow sends nothing at QoS 1 or 2: nothing to settle
        case .connect:
            protocolError(context, "a second CONNECT")
        case .auth:
            protocolError(context, "AUTH without an authentication method")
        case .connack, .suback, .unsuback, .pingresp:
            protocolError(context, "\(packet.type) is sent by servers, not clients")
        }
    }

    private func connect(_ c: MQTTPacket.Connect, _ context: ChannelHandlerContext) {
        version = c.version
        timer?.cancel()
        timer = nil
        func refuse(_ v3: UInt8, _ v5: UInt8, _ result: String, _ why: String) {
            shared.count(connect: result)
            shared.logger.info(
                "MQTT connection refused",
                metadata: ["mqtt.peer": "\(peer(context))", "mqtt.client_id": "\(c.clientId.prefix(100))", "mqtt.refused": "\(why)"])
            phase = .closing
            var properties = MQTTProperties()
            if c.version == .v5 && c.properties.requestProblemInformation != 0 { properties.reasonString = why }
            writeThenClose(.connack(.init(sessionPresent: false, reasonCode: c.version == .v5 ? v5 : v3, properties: properties)), context)
        }
        if c.version == .v5 && c.properties.authenticationMethod != nil {
            return refuse(5, 0x8C, "bad_authentication_method", "enhanced authentication (AUTH) is not supported; send the token as the password")
        }
        if c.version == .v5 && c.will?.retain == true { return refuse(5, 0x9A, "refused", "retained messages are not supported") }
        if c.clientId.utf8.count > 256 { return refuse(2, 0x85, "refused", "client identifiers are at most 256 bytes") }
        var assigned: String?
        if c.clientId.isEmpty {
            // 3.1.1 §3.1.3-8: an empty id is only for a clean session.
            guard c.cleanStart || c.version == .v5 else { return refuse(2, 0x85, "refused", "an empty client identifier needs clean session 1") }
            assigned = "speedflow-\(token)"
        }
        switch shared.authenticate(c, address: context.remoteAddress?.ipAddress ?? "unknown", pipeline: context.pipeline.syncOperations) {
        case .refused(let v3, let v5, let result, let why):
            return refuse(v3, v5, result, why)
        case .accepted(let principal):
            self.principal = principal
        }
        clientId = assigned ?? c.clientId
        let asked = c.version == .v5 ? (c.properties.sessionExpiryInterval ?? 0) : (c.cleanStart ? 0 : .max)
        keepSessionSeconds = min(asked, configuration.maxSessionExpirySeconds)
        problemInformation = c.properties.requestProblemInformation != 0
        maxOutgoing = c.properties.maximumPacketSize.map { Int($0) } ?? .max
        let session = shared.sessions.connect(clientId: clientId, token: token, cleanStart: c.cleanStart, nowMs: shared.nowMs())
        subscriptions = session.subscriptions
        holdsSession = true
        session.takenOver?.pipeline.fireUserInboundEventTriggered(MQTTTakenOverEvent())
        var properties = MQTTProperties()
        if c.version == .v5 {
            properties.receiveMaximum = UInt16(clamping: configuration.maxInflight)
            properties.maximumPacketSize = UInt32(clamping: configuration.maxPacketBytes)
            properties.retainAvailable = 0
            properties.wildcardSubscriptionAvailable = 1
            properties.subscriptionIdentifiersAvailable = 0
            properties.sharedSubscriptionAvailable = 0
            properties.assignedClientIdentifier = assigned
            if asked > keepSessionSeconds { properties.sessionExpiryInterval = keepSessionSeconds }
        }
        phase = .connected
        shared.count(connect: "accepted")
        if c.keepAliveSeconds > 0 {
            keepAlive = .milliseconds(Int64(c.keepAliveSeconds) * 1500)
            scheduleKeepAlive(context)
        }
        write(.connack(.init(sessionPresent: session.present, reasonCode: 0, properties: properties)), context, flush: true)
    }

    private func publish(_ p: MQTTPacket.Publish, _ context: ChannelHandlerContext) {
        if version == .v5 {
            // Topic Alias Maximum and Retain Available were 0 in CONNACK.
            if p.properties.topicAlias != nil { return disconnect(context, 0x94, "topic aliases are not supported") }
            if p.retain { return disconnect(context, 0x9A, "retained messages are not supported") }
        }
        shared.count(publishQoS: p.qos)
        let seq = nextSeq
        nextSeq += 1
        if p.qos == .exactlyOnce, let id = p.packetId, awaitingRelease.contains(id) {
            // Sent again before our PUBREC arrived: processed already; answer again, in order.
            pending.append(Pending(seq: seq, packetId: id, qos: p.qos, bytes: 0, outcome: .acknowledge(reasonCode: 0, reasonString: nil, camera: nil, report: nil)))
            return flushCompleted(context)
        }
        pending.append(Pending(seq: seq, packetId: p.packetId, qos: p.qos, bytes: p.payload.count, outcome: nil))
        inflightBytes += p.payload.count
        let job = MQTTIngest.Job(topic: p.topic, packetId: p.packetId, payload: p.payload, contentType: p.properties.contentType, principal: principal)
        let ingest = shared.ingest
        context.eventLoop.makeFutureWithTask { await ingest.process(job) }.assumeIsolated().whenSuccess { [self] outcome in
            complete(seq, outcome, context)
        }
    }

    private func complete(_ seq: UInt64, _ outcome: MQTTIngest.Outcome, _ context: ChannelHandlerContext) {
        guard phase != .closing, let first = pending.first?.seq, seq >= first else { return }
        let index = pending.index(pending.startIndex, offsetBy: Int(seq - first))
        pending[index].outcome = outcome
        flushCompleted(context)
    }

    /// Answers the PUBLISHes processed so far, in arrival order, up to the first still in flight.
    private func flushCompleted(_ context: ChannelHandlerContext) {
        var wrote = false
        while let head = pending.first, let outcome = head.outcome {
            pending.removeFirst()
            inflightBytes -= head.bytes
            switch outcome {
            case .acknowledge(let code, let reasonString, let camera, let report):
                if let camera, let report {
                    let topic = MQTTTopics.rejections(camera)
                    if subscriptions.contains(where: { MQTTTopic.matches(filter: $0, name: topic) }) {
                        let packet = MQTTPacket.publish(.init(qos: .atMostOnce, topic: topic, packetId: nil, payload: report))
                        write(packet, context, flush: false)
                    }
                }
                guard let id = head.packetId, head.qos != .atMostOnce else { break }
                var properties = MQTTProperties()
                if problemInformation, let reasonString { properties.reasonString = String(reasonString.prefix(200)) }
                let ack = MQTTPacket.Ack(packetId: id, reasonCode: code, properties: properties)
                if head.qos == .exactlyOnce {
                    if code < 0x80 { awaitingRelease.insert(id) }
                    write(.pubrec(ack), context, flush: false)
                } else {
                    write(.puback(ack), context, flush: false)
                }
            case .disconnect(let code, let message):
                if wrote { context.flush() }
                return disconnect(context, code, message)
            }
            wrote = true
        }
        if wrote { context.flush() }
        if draining && pending.isEmpty { return disconnect(context, 0x8B, "the server is shutting down") }
        resumeIfPossible(context)
    }

    private func subscribe(_ s: MQTTPacket.Subscribe, _ context: ChannelHandlerContext) {
        if version == .v5 && !s.properties.subscriptionIdentifiers.isEmpty {
            return disconnect(context, 0xA1, "subscription identifiers are not supported")
        }
        var codes: [UInt8] = []
        for sub in s.subscriptions {
            if sub.filter.hasPrefix("$share/") {
                codes.append(version == .v5 ? 0x9E : 0x80)
            } else if MQTTTopics.grants(sub.filter) {
                // Reports are sent at QoS 0 whatever was asked.
                if !subscriptions.contains(sub.filter) { subscriptions.append(sub.filter) }
                codes.append(0x00)
            } else {
                codes.append(version == .v5 ? 0x87 : 0x80)
            }
        }
        shared.sessions.update(clientId: clientId, token: token, subscriptions: subscriptions)
        write(.suback(.init(packetId: s.packetId, reasonCodes: codes)), context, flush: true)
    }

    // MARK: Events and errors

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is MQTTDrainEvent:
            draining = true
            if phase == .connecting {
                close(context)
            } else if pending.isEmpty {
                disconnect(context, 0x8B, "the server is shutting down")
            }
        case is MQTTTakenOverEvent:
            shared.count(disconnect: "taken_over")
            disconnect(context, 0x8E, "another connection took over this client identifier's session")
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard phase != .closing else { return }
        guard let error = error as? MQTTError else {
            shared.logger.debug("MQTT connection error", metadata: ["mqtt.peer": "\(peer(context))", "error": "\(error)"])
            return close(context)
        }
        shared.count(disconnect: error.code.description)
        shared.logger.info(
            "MQTT connection closed: \(error.message)",
            metadata: ["mqtt.peer": "\(peer(context))", "mqtt.client_id": "\(clientId)", "mqtt.error": "\(error.code)"])
        if phase == .connecting {
            phase = .closing
            // 3.1.1 §3.1.2-2 / 5 §3.1.2.2: an unsupported protocol level is answered, in the 3.1.1 form (the
            // client's own form is unknown), before closing.
            if error.code == .unsupportedProtocolVersion { return writeThenClose(.connack(.init(sessionPresent: false, reasonCode: 0x01)), context) }
            return close(context)
        }
        disconnect(context, error.reasonCode, error.message)
    }

    private func protocolError(_ context: ChannelHandlerContext, _ message: String) {
        shared.count(disconnect: "protocol_error")
        shared.logger.info("MQTT connection closed: \(message)", metadata: ["mqtt.peer": "\(peer(context))", "mqtt.client_id": "\(clientId)"])
        if phase == .connecting {
            phase = .closing
            return close(context)
        }
        disconnect(context, 0x82, message)
    }

    // MARK: Keep-alive

    private func scheduleKeepAlive(_ context: ChannelHandlerContext) {
        guard let keepAlive else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastActivity + keepAlive) { [self] in
            guard phase == .connected else { return }
            let now = NIODeadline.now()
            // Not reading (PUBLISHes in flight): the client cannot be heard, so its silence does not count.
            if paused { lastActivity = now }
            if now - lastActivity >= keepAlive {
                shared.count(disconnect: "keep_alive_timeout")
                return disconnect(context, 0x8D, "nothing received for 1.5 times the keep alive")
            }
            scheduleKeepAlive(context)
        }
    }

    // MARK: Writing

    private func write(_ packet: MQTTPacket, _ context: ChannelHandlerContext, flush: Bool) {
        var bytes = packet.encode(version: version)
        if bytes.count > maxOutgoing {
            // 5 §3.1.2.11.4: never more than the client accepts. A report is left out; an acknowledgement loses
            // its reason string.
            switch packet {
            case .puback(var a), .pubrec(var a):
                a.properties = MQTTProperties()
                bytes = (packet.type == .puback ? MQTTPacket.puback(a) : .pubrec(a)).encode(version: version)
            default:
                return
            }
        }
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        if flush {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
    }

    /// MQTT 5: DISCONNECT with `code` (and `message` as its reason string), then close; 3.1.1: close.
    private func disconnect(_ context: ChannelHandlerContext, _ code: UInt8, _ message: String) {
        guard phase != .closing else { return }
        if code != 0x8B && code != 0x00 {
            shared.logger.debug("MQTT disconnect", metadata: ["mqtt.client_id": "\(clientId)", "mqtt.reason_code": "\(code)", "mqtt.reason": "\(message)"])
        }
        guard version == .v5, phase == .connected else {
            phase = .closing
            return close(context)
        }
        phase = .closing
        var properties = MQTTProperties()
        if problemInformation { properties.reasonString = String(message.prefix(200)) }
        writeThenClose(.disconnect(.init(reasonCode: code, properties: properties)), context)
    }

    private func writeThenClose(_ packet: MQTTPacket, _ context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(bytes: packet.encode(version: version))
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func close(_ context: ChannelHandlerContext) {
        phase = .closing
        context.close(promise: nil)
    }

    private func peer(_ context: ChannelHandlerContext) -> String {
        context.remoteAddress.map { "\($0)" } ?? "?"
    }
}
