import Foundation
import NIOCore
import NIOPosix
import SpeedflowMQTT

/// Puts a worker's requests on the wire as MQTT 5 PUBLISHes at QoS 1 to `speedflow/v1/events/{kvfv_id}`, with the
/// project's own codec (`SpeedflowMQTT`) on SwiftNIO: the same bytes the HTTP transports would POST, and PUBACK as
/// the acknowledgement.
///
/// One connection per credential (MQTT authenticates a connection, not a message: with `--camera-tokens` a worker
/// opens one per camera it owns, otherwise one), clean start, subscribed to `speedflow/v1/rejections/+` so a
/// PUBLISH that had rejections is answered, before its PUBACK, with the report `POST /events` would give. One
/// PUBLISH in flight at a time, like a camera's uplink and like the raw HTTP transport. A timeout or a lost
/// connection fails the exchange and closes the connection; the worker then resends the same bytes, which go out
/// on a new connection (clean start, a new packet id: with clean start nothing of the old session is owed, and
/// Speedflow deduplicates by event identity, not by packet id).
///
/// Answers are mapped onto what the worker expects of HTTP: a PUBACK is `200` (with the report as the body if one
/// came, else `countsInferred`: a PUBACK without a report says only that no event was rejected); a report for a
/// payload refused as a whole (`{"reason":…}`, MQTT 5 PUBACK 0x99) is `400` with the report as the body.
final class MQTTEventTransport: EventTransport {
    private let host: String
    private let port: Int
    private let clientIdPrefix: String
    private let group: any EventLoopGroup
    /// Open connections by `Authorization` value ("" for none).
    private var channels: [String: any Channel] = [:]
    private var connectionsMade = 0
    private var lastPacketId: UInt16 = 0

    init(host: String, port: Int, clientIdPrefix: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.clientIdPrefix = clientIdPrefix
        self.group = group
    }

    /// Splits `mqtt://host:port` (no TLS: the load generator runs next to the server). Default port 1883.
    static func endpoint(of url: String) -> (host: String, port: Int)? {
        guard url.hasPrefix("mqtt://") else { return nil }
        let rest = url.dropFirst("mqtt://".count).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        if let colon = rest.lastIndex(of: ":") {
            guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
            return (String(rest[..<colon]).trimmingCharacters(in: ["[", "]"]), port)
        }
        return rest.isEmpty ? nil : (rest, 1883)
    }

    /// The largest packet read back (reports of 500-event batches are a few KiB; CONNACK, PUBACK are tiny).
    static let maxIncomingPacket = 1 << 20

    func post(body: ByteBuffer, contentType: String, authorization: String?, camera: String, timeout: Duration) async throws(TransportError) -> TransportResponse {
        let started = ContinuousClock.now
        let key = authorization ?? ""
        let channel: any Channel
        do {
            channel = try await connection(key, timeout: timeout)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(kind: .connection, detail: "connect to mqtt://\(host):\(port): \(error)")
        }
        lastPacketId = lastPacketId == .max ? 1 : lastPacketId + 1
        var properties = MQTTProperties()
        if contentType == "application/x-ndjson" { properties.contentType = contentType }
        let publish = MQTTPacket.publish(.init(
            qos: .atLeastOnce, topic: "speedflow/v1/events/" + camera, packetId: lastPacketId, properties: properties,
            payload: Array(buffer: body)))
        let reply: MQTTReply
        do {
            reply = try await exchange(channel, .publish(lastPacketId), publish, timeout: timeout - (ContinuousClock.now - started))
        } catch {
            channels[key] = nil
            channel.close(promise: nil)
            if ContinuousClock.now - started >= timeout { throw TransportError(kind: .timeout, detail: "no PUBACK within \(timeout)") }
            throw error
        }
        if let report = reply.report {
            let refusedWhole = MiniJSON.parse(report)?["reason"]?.string != nil
            return TransportResponse(status: refusedWhole ? 400 : 200, retryAfter: nil, body: ByteBuffer(bytes: report))
        }
        if reply.reasonCode >= 0x80 {
            // Refused without a report (e.g. 0x90, a topic Speedflow does not take): nothing was stored.
            return TransportResponse(
                status: 400, retryAfter: nil,
                body: ByteBuffer(string: #"{"reason":"mqtt_0x\#(String(reply.reasonCode, radix: 16))","message":"\#(reply.reasonString ?? "")"}"#))
        }
        return TransportResponse(status: 200, retryAfter: nil, body: ByteBuffer(), countsInferred: true)
    }

    /// The open connection for this credential, or a new one: CONNECT (MQTT 5, clean start, no keep-alive: the
    /// worker's own timeouts watch the link), CONNACK, SUBSCRIBE to every camera's rejections, SUBACK.
    private func connection(_ key: String, timeout: Duration) async throws -> any Channel {
        if let channel = channels[key], channel.isActive { return channel }
        channels[key] = nil
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(MQTTFrameDecoder(maxPacketSize: Self.maxIncomingPacket, version: .v5)))
                    try sync.addHandler(MQTTClientHandler())
                }
            }
            .connect(host: host, port: port).get()
        do {
            connectionsMade += 1
            var username: String?
            var password: [UInt8]?
            if key.hasPrefix("Bearer ") {
                // The token as the password, its id (the 16 hex digits after `sft_`) as the user name.
                let token = String(key.dropFirst("Bearer ".count))
                password = Array(token.utf8)
                let parts = token.split(separator: "_")
                username = parts.count >= 3 ? String(parts[1]) : ""
            }
            let connect = MQTTPacket.connect(.init(
                version: .v5, clientId: "\(clientIdPrefix)-\(connectionsMade)", cleanStart: true, keepAliveSeconds: 0,
                username: username, password: password))
            let connack = try await exchange(channel, .connect, connect, timeout: max(timeout, .seconds(5)))
            guard connack.reasonCode == 0 else {
                throw TransportError(kind: .connection, detail: "CONNACK refused: 0x\(String(connack.reasonCode, radix: 16)) \(connack.reasonString ?? "")")
            }
            let subscribe = MQTTPacket.subscribe(.init(
                packetId: 1, subscriptions: [.init(filter: "speedflow/v1/rejections/+", qos: .atMostOnce)]))
            let suback = try await exchange(channel, .subscribe(1), subscribe, timeout: max(timeout, .seconds(5)))
            guard suback.reasonCode < 0x80 else {
                throw TransportError(kind: .connection, detail: "SUBACK refused the rejections topic: 0x\(String(suback.reasonCode, radix: 16))")
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
        lastPacketId = 1
        channels[key] = channel
        return channel
    }

    /// Writes `packet` and waits for the answer `awaited` (closing the connection after `timeout`).
    private func exchange(_ channel: any Channel, _ awaited: MQTTExchange.Awaited, _ packet: MQTTPacket, timeout: Duration) async throws(TransportError) -> MQTTReply {
        let promise = channel.eventLoop.makePromise(of: MQTTReply.self)
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(max(timeout.nanoseconds, 1))) {
            promise.fail(TransportError(kind: .timeout, detail: "no answer within \(timeout)"))
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { promise.fail($0) }
        var bytes = channel.allocator.buffer(capacity: 0)
        bytes.writeMQTTPacket(packet, version: .v5)
        channel.writeAndFlush(MQTTExchange(awaited: awaited, bytes: bytes, promise: promise), promise: written)
        do {
            return try await promise.futureResult.get()
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(kind: .connection, detail: "\(error)")
        }
    }

    func shutdown() async {
        for (_, channel) in channels {
            // A clean end of the connection: DISCONNECT (normal), then close.
            var bytes = channel.allocator.buffer(capacity: 4)
            bytes.writeMQTTPacket(.disconnect(.init()), version: .v5)
            try? await channel.writeAndFlush(MQTTExchange(awaited: nil, bytes: bytes, promise: nil))
            try? await channel.close()
        }
        channels = [:]
    }
}

/// What the server answered to an awaited packet: its reason code (CONNACK, PUBACK, the first of SUBACK) and
/// reason string, and for a PUBACK the rejections report that came before it, if any.
struct MQTTReply: Sendable {
    var reasonCode: UInt8
    var reasonString: String?
    var report: [UInt8]?
}

/// A packet to write and the answer to wait for.
private struct MQTTExchange: Sendable {
    enum Awaited: Sendable, Equatable {
        case connect
        case subscribe(UInt16)
        case publish(UInt16)
    }

    /// nil: nothing comes back (DISCONNECT).
    var awaited: Awaited?
    var bytes: ByteBuffer
    var promise: EventLoopPromise<MQTTReply>?
}

/// One exchange at a time: writes the packet, completes the promise with the awaited answer. Reports on the
/// rejections topics are kept by packet id until that PUBLISH's PUBACK (Speedflow sends a report before the PUBACK
/// it belongs to, on the same connection). A DISCONNECT from the server or the end of the connection fails the
/// exchange in flight.
private final class MQTTClientHandler: ChannelDuplexHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundIn = MQTTExchange
    typealias OutboundOut = ByteBuffer

    private var awaited: MQTTExchange.Awaited?
    private var promise: EventLoopPromise<MQTTReply>?
    private var reports: [UInt16: [UInt8]] = [:]

    func write(context: ChannelHandlerContext, data: NIOAny, promise written: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        if let answer = exchange.promise {
            guard promise == nil else {
                answer.fail(TransportError(kind: .connection, detail: "an exchange is already in flight on this connection"))
                return
            }
            awaited = exchange.awaited
            promise = answer
        }
        context.write(wrapOutboundOut(exchange.bytes), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .connack(let c) where awaited == .connect:
            succeed(MQTTReply(reasonCode: c.reasonCode, reasonString: c.properties.reasonString))
        case .suback(let s) where awaited == .subscribe(s.packetId):
            succeed(MQTTReply(reasonCode: s.reasonCodes.first ?? 0x80))
        case .puback(let a):
            let report = reports.removeValue(forKey: a.packetId)
            if awaited == .publish(a.packetId) {
                succeed(MQTTReply(reasonCode: a.reasonCode, reasonString: a.properties.reasonString, report: report))
            }
        case .publish(let p) where p.topic.hasPrefix("speedflow/v1/rejections/"):
            if let id = MiniJSON.parse(p.payload)?["packet_id"]?.int, let packetId = UInt16(exactly: id) {
                reports[packetId] = p.payload
            }
        case .disconnect(let d):
            fail(TransportError(kind: .connection, detail: "DISCONNECT 0x\(String(d.reasonCode, radix: 16)) \(d.properties.reasonString ?? "")"))
            context.close(promise: nil)
        default:
            break
        }
    }

    private func succeed(_ reply: MQTTReply) {
        let p = promise
        promise = nil
        awaited = nil
        p?.succeed(reply)
    }

    private func fail(_ error: any Error) {
        let p = promise
        promise = nil
        awaited = nil
        p?.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(TransportError(kind: .connection, detail: "connection closed before the answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(TransportError(kind: .connection, detail: "\(error)"))
        context.close(promise: nil)
    }
}
