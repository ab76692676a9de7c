/// The fixed header of a packet (§2.1): the first byte, and the remaining length as a variable byte integer.
public enum MQTTFrame {
    /// The largest remaining length a four-byte variable integer holds (256 MiB − 1).
    public static let maxRemainingLength = 268_435_455

    public struct Header: Sendable, Hashable {
        /// Packet type (upper four bits) and flags (lower four).
        public var first: UInt8
        /// Bytes of the fixed header: 2…5.
        public var headerLength: Int
        public var remainingLength: Int
        public var packetLength: Int { headerLength + remainingLength }
    }

    /// The header at the start of `bytes`, or `nil` while it is incomplete. Throws as soon as the header shows
    /// the packet is malformed or larger than `maxPacketSize` (the whole packet, header included), so a receiver
    /// never buffers more than `maxPacketSize` bytes for one packet.
    public static func header(_ bytes: UnsafeRawBufferPointer, maxPacketSize: Int) throws(MQTTError) -> Header? {
        guard let first = bytes.first else { return nil }
        var value = 0
        var shift = 0
        for n in 0..<4 {
            guard 1 + n < bytes.count else { return nil }
            let b = bytes[1 + n]
            value |= Int(b & 0x7F) << shift
            if b & 0x80 == 0 {
                if n > 0 && b == 0 { throw .malformed("the remaining length is not in its shortest encoding") }
                let header = Header(first: first, headerLength: 2 + n, remainingLength: value)
                if header.packetLength > maxPacketSize {
                    throw MQTTError(.packetTooLarge, "a packet of \(header.packetLength) bytes exceeds the maximum of \(maxPacketSize)")
                }
                return header
            }
            shift += 7
        }
        throw .malformed("the remaining length is longer than four bytes")
    }
}

/// Decodes a byte stream into packets, one at a time; strict (see `MQTTPacket.decode`).
///
/// On a server the protocol version is unknown until CONNECT: `version` is `nil` until a CONNECT is decoded, and
/// any other packet before it is a protocol error. A client sets `version` to the one it connected with.
public struct MQTTDecoder: Sendable {
    /// The largest packet accepted, header included; larger ones fail with `packetTooLarge` from their header.
    public var maxPacketSize: Int
    public var version: MQTTVersion?

    public init(maxPacketSize: Int = MQTTFrame.maxRemainingLength + 5, version: MQTTVersion? = nil) {
        self.maxPacketSize = maxPacketSize
        self.version = version
    }

    /// The first packet in `bytes` and how many bytes it took, or `nil` if `bytes` holds no complete packet yet.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer) throws(MQTTError) -> (packet: MQTTPacket, length: Int)? {
        guard let header = try MQTTFrame.header(bytes, maxPacketSize: maxPacketSize) else { return nil }
        guard bytes.count >= header.packetLength else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: bytes[header.headerLength..<header.packetLength])
        let packet = try MQTTPacket.decode(first: header.first, body: body, version: version)
        if case .connect(let c) = packet, version == nil { version = c.version }
        return (packet, header.packetLength)
    }
}

extension MQTTPacket {
    /// Decodes one packet from its first byte and the bytes after the fixed header (exactly the remaining
    /// length). `version` may be `nil` only for CONNECT, which says its own.
    ///
    /// Checked beyond the grammar: the fixed-header flags of each type, reserved bits, non-zero packet ids,
    /// UTF-8 strings, topic names and filters, the reason codes each packet may carry, properties (see
    /// `MQTTProperties`), that lists are not empty, and that nothing follows the last field.
    public static func decode(first: UInt8, body: UnsafeRawBufferPointer, version: MQTTVersion?) throws(MQTTError) -> MQTTPacket {
        let flags = first & 0x0F
        guard let type = MQTTPacketType(rawValue: first >> 4) else {
            throw .malformed("packet type 0 is reserved")
        }
        var r = MQTTReader(body)
        if type == .connect {
            guard flags == 0 else { throw .malformed("CONNECT has fixed-header flags \(flags), which must be 0") }
            return .connect(try decodeConnect(&r))
        }
        guard let version else { throw .protocolError("the first packet must be CONNECT, not \(type)") }
        let v5 = version == .v5
        let expectedFlags: UInt8 = (type == .pubrel || type == .subscribe || type == .unsubscribe) ? 0b0010 : 0
        if type != .publish && flags != expectedFlags {
            throw .malformed("\(type) has fixed-header flags \(flags), which must be \(expectedFlags)")
        }
        switch type {
        case .connect:
            preconditionFailure("handled above")
        case .connack:
            let ackFlags = try r.byte("the CONNACK flags")
            guard ackFlags & 0xFE == 0 else { throw .malformed("CONNACK has reserved flag bits set (\(ackFlags))") }
            let code = try r.byte("the CONNACK reason code")
            let valid = v5 ? ReasonCodes.connack.contains(code) : code <= 5
            guard valid else { throw .protocolError("CONNACK reason code 0x\(hex(code)) is not one of \(version)") }
            if code != 0 && ackFlags & 1 != 0 { throw .protocolError("a refusing CONNACK (0x\(hex(code))) has session present set") }
            let properties = v5 ? try MQTTProperties.decode(&r, allowed: .connack) : MQTTProperties()
            try r.expectEnd("CONNACK")
            return .connack(ConnAck(sessionPresent: ackFlags & 1 == 1, reasonCode: code, properties: properties))
        case .publish:
            return .publish(try decodePublish(&r, flags: flags, version: version))
        case .puback, .pubrec, .pubrel, .pubcomp:
            let packetId = try nonZeroPacketId(&r, type)
            var code: UInt8 = 0
            var properties = MQTTProperties()
            if v5 {
                // 5: the reason code may be left out when 0 without properties, the properties when there are none.
                if !r.isAtEnd { code = try r.byte("the \(type) reason code") }
                if !r.isAtEnd { properties = try MQTTProperties.decode(&r, allowed: .ack("\(type)")) }
                let allowed = (type == .pubrel || type == .pubcomp) ? ReasonCodes.pubrel : ReasonCodes.puback
                guard allowed.contains(code) else { throw .protocolError("\(type) reason code 0x\(hex(code)) is not defined for it") }
            }
            try r.expectEnd("\(type)")
            let ack = Ack(packetId: packetId, reasonCode: code, properties: properties)
            switch type {
            case .puback: return .puback(ack)
            case .pubrec: return .pubrec(ack)
            case .pubrel: return .pubrel(ack)
            default: return .pubcomp(ack)
            }
        case .subscribe:
            let packetId = try nonZeroPacketId(&r, type)
            let properties = v5 ? try MQTTProperties.decode(&r, allowed: .subscribe) : MQTTProperties()
            var subscriptions: [Subscription] = []
            while !r.isAtEnd {
                let filter = try r.string("a topic filter")
                guard MQTTTopic.isValidFilter(filter) else { throw .malformed("'\(filter.prefix(100))' is not a valid topic filter") }
                let options = try r.byte("the subscription options")
                guard options & (v5 ? 0xC0 : 0xFC) == 0 else {
                    throw .malformed("subscription options 0x\(hex(options)) have reserved bits set")
                }
                guard let qos = MQTTQoS(rawValue: options & 0x03) else { throw .malformed("a subscription asks for QoS 3") }
                let retainHandling = (options >> 4) & 0x03
                guard retainHandling != 3 else { throw .protocolError("retain handling 3 is reserved") }
                subscriptions.append(
                    Subscription(filter: filter, qos: qos, noLocal: options & 0x04 != 0, retainAsPublished: options & 0x08 != 0, retainHandling: retainHandling))
            }
            guard !subscriptions.isEmpty else { throw .protocolError("SUBSCRIBE has no topic filter") }
            return .subscribe(Subscribe(packetId: packetId, properties: properties, subscriptions: subscriptions))
        case .suback, .unsuback:
            let packetId = try nonZeroPacketId(&r, type)
            let properties = v5 ? try MQTTProperties.decode(&r, allowed: .ack("\(type)")) : MQTTProperties()
            let codes = r.rest()
            if type == .suback {
                let allowed = v5 ? ReasonCodes.suback : [0x00, 0x01, 0x02, 0x80]
                guard !codes.isEmpty else { throw .protocolError("SUBACK has no return code") }
                if let bad = codes.first(where: { !allowed.contains($0) }) {
                    throw .protocolError("SUBACK return code 0x\(hex(bad)) is not defined")
                }
                return .suback(SubAck(packetId: packetId, properties: properties, reasonCodes: codes))
            }
            if v5 {
                guard !codes.isEmpty else { throw .protocolError("UNSUBACK has no reason code") }
                if let bad = codes.first(where: { !ReasonCodes.unsuback.contains($0) }) {
                    throw .protocolError("UNSUBACK reason code 0x\(hex(bad)) is not defined")
                }
            } else if !codes.isEmpty {
                throw .malformed("a 3.1.1 UNSUBACK has \(codes.count) bytes after its packet id")
            }
            return .unsuback(SubAck(packetId: packetId, properties: properties, reasonCodes: codes))
        case .unsubscribe:
            let packetId = try nonZeroPacketId(&r, type)
            let properties = v5 ? try MQTTProperties.decode(&r, allowed: .unsubscribe) : MQTTProperties()
            var filters: [String] = []
            while !r.isAtEnd {
                let filter = try r.string("a topic filter")
                guard MQTTTopic.isValidFilter(filter) else { throw .malformed("'\(filter.prefix(100))' is not a valid topic filter") }
                filters.append(filter)
            }
            guard !filters.isEmpty else { throw .protocolError("UNSUBSCRIBE has no topic filter") }
            return .unsubscribe(Unsubscribe(packetId: packetId, properties: properties, filters: filters))
        case .pingreq, .pingresp:
            try r.expectEnd("\(type)")
            return type == .pingreq ? .pingreq : .pingresp
        case .disconnect, .auth:
            guard v5 else {
                guard type == .disconnect else { throw .malformed("packet type 15 is reserved in MQTT 3.1.1") }
                try r.expectEnd("DISCONNECT")
                return .disconnect(Disconnect())
            }
            var code: UInt8 = 0
            var properties = MQTTProperties()
            if !r.isAtEnd { code = try r.byte("the \(type) reason code") }
            if !r.isAtEnd { properties = try MQTTProperties.decode(&r, allowed: type == .auth ? .auth : .disconnect) }
            try r.expectEnd("\(type)")
            let allowed = type == .auth ? ReasonCodes.auth : ReasonCodes.disconnect
            guard allowed.contains(code) else { throw .protocolError("\(type) reason code 0x\(hex(code)) is not defined for it") }
            let d = Disconnect(reasonCode: code, properties: properties)
            return type == .auth ? .auth(d) : .disconnect(d)
        }
    }

    static func decodeConnect(_ r: inout MQTTReader) throws(MQTTError) -> Connect {
        let name = try r.string("the protocol name")
        let level = try r.byte("the protocol level")
        // An unsupported level is answered with CONNACK (0x01 / 0x84), so it is told apart before the name.
        guard let version = MQTTVersion(rawValue: level) else {
            throw MQTTError(.unsupportedProtocolVersion, "protocol level \(level) ('\(name.prefix(20))') is not supported; 4 (3.1.1) and 5 are")
        }
        guard name == "MQTT" else { throw .malformed("protocol name '\(name.prefix(20))' is not MQTT") }
        let flags = try r.byte("the connect flags")
        guard flags & 0x01 == 0 else { throw .malformed("the reserved connect flag is set") }
        let cleanStart = flags & 0x02 != 0
        let willFlag = flags & 0x04 != 0
        let willQoSBits = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let hasPassword = flags & 0x40 != 0
        let hasUsername = flags & 0x80 != 0
        guard let willQoS = MQTTQoS(rawValue: willQoSBits) else { throw .malformed("the will QoS is 3") }
        if !willFlag && (willQoSBits != 0 || willRetain) { throw .malformed("will QoS or will retain set without a will") }
        if version == .v3_1_1 && hasPassword && !hasUsername { throw .malformed("a password without a user name (3.1.1)") }
        let keepAlive = try r.uint16("the keep alive")
        let properties = version == .v5 ? try MQTTProperties.decode(&r, allowed: .connect) : MQTTProperties()
        if properties.authenticationData != nil && properties.authenticationMethod == nil {
            throw .protocolError("authentication data without an authentication method")
        }
        let clientId = try r.string("the client identifier")
        var will: Connect.Will?
        if willFlag {
            let willProperties = version == .v5 ? try MQTTProperties.decode(&r, allowed: .will) : MQTTProperties()
            let topic = try r.string("the will topic")
            guard MQTTTopic.isValidName(topic) else { throw .malformed("the will topic is not a valid topic name") }
            let payload = try r.binary("the will payload")
            will = Connect.Will(qos: willQoS, retain: willRetain, topic: topic, payload: payload, properties: willProperties)
        }
        let username = hasUsername ? try r.string("the user name") : nil
        let password = hasPassword ? try r.binary("the password") : nil
        try r.expectEnd("CONNECT")
        return Connect(
            version: version, clientId: clientId, cleanStart: cleanStart, keepAliveSeconds: keepAlive, properties: properties,
            will: will, username: username, password: password)
    }

    static func decodePublish(_ r: inout MQTTReader, flags: UInt8, version: MQTTVersion) throws(MQTTError) -> Publish {
        let dup = flags & 0x08 != 0
        guard let qos = MQTTQoS(rawValue: (flags >> 1) & 0x03) else { throw .malformed("PUBLISH with QoS 3") }
        if qos == .atMostOnce && dup { throw .malformed("a QoS 0 PUBLISH has DUP set") }
        let topic = try r.string("the topic name")
        let packetId = qos == .atMostOnce ? nil : try nonZeroPacketId(&r, .publish)
        let properties = version == .v5 ? try MQTTProperties.decode(&r, allowed: .publish) : MQTTProperties()
        if topic.isEmpty {
            guard version == .v5, properties.topicAlias != nil else { throw .protocolError("PUBLISH with an empty topic name and no topic alias") }
        } else if !MQTTTopic.isValidName(topic) {
            throw .protocolError("'\(topic.prefix(100))' is not a valid topic name (no wildcards in PUBLISH)")
        }
        return Publish(
            dup: dup, qos: qos, retain: flags & 0x01 != 0, topic: topic, packetId: packetId, properties: properties, payload: r.rest())
    }

    static func nonZeroPacketId(_ r: inout MQTTReader, _ type: MQTTPacketType) throws(MQTTError) -> UInt16 {
        let id = try r.uint16("the packet identifier of \(type)")
        guard id != 0 else { throw .protocolError("\(type) has packet identifier 0") }
        return id
    }

    static func hex(_ b: UInt8) -> String { (b < 16 ? "0" : "") + String(b, radix: 16) }
}

/// The reason codes each MQTT 5 packet may carry (§2.4).
enum ReasonCodes {
    static let connack: Set<UInt8> = [
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C,
        0x9D, 0x9F,
    ]
    static let puback: Set<UInt8> = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
    static let pubrel: Set<UInt8> = [0x00, 0x92]
    static let suback: Set<UInt8> = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]
    static let unsuback: Set<UInt8> = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]
    static let disconnect: Set<UInt8> = [
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ]
    static let auth: Set<UInt8> = [0x00, 0x18, 0x19]
}
