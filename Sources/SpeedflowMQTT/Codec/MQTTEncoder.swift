extension MQTTPacket {
    /// The packet's bytes for a connection speaking `version` (a CONNECT uses its own). Fields MQTT 3.1.1 lacks
    /// (properties, reason codes of acknowledgements) are left out for 3.1.1. MQTT 5 acknowledgements use the
    /// short forms: no reason code when it is 0 without properties, no property length without properties.
    public func encode(version: MQTTVersion) -> [UInt8] {
        var body = MQTTWriter()
        var flags: UInt8 = 0
        let v5 = version == .v5
        switch self {
        case .connect(let c):
            return Self.encodeConnect(c)
        case .connack(let a):
            body.byte(a.sessionPresent ? 1 : 0)
            body.byte(a.reasonCode)
            if v5 { a.properties.encode(into: &body) }
        case .publish(let p):
            flags = (p.dup ? 0x08 : 0) | (p.qos.rawValue << 1) | (p.retain ? 0x01 : 0)
            body.string(p.topic)
            if p.qos != .atMostOnce { body.uint16(p.packetId ?? 0) }
            if v5 { p.properties.encode(into: &body) }
            body.append(p.payload)
        case .puback(let a), .pubrec(let a), .pubrel(let a), .pubcomp(let a):
            if case .pubrel = self { flags = 0b0010 }
            body.uint16(a.packetId)
            if v5 && (a.reasonCode != 0 || !a.properties.isEmpty) {
                body.byte(a.reasonCode)
                if !a.properties.isEmpty { a.properties.encode(into: &body) }
            }
        case .subscribe(let s):
            flags = 0b0010
            body.uint16(s.packetId)
            if v5 { s.properties.encode(into: &body) }
            for sub in s.subscriptions {
                body.string(sub.filter)
                var options = sub.qos.rawValue
                if v5 {
                    options |= (sub.noLocal ? 0x04 : 0) | (sub.retainAsPublished ? 0x08 : 0) | (sub.retainHandling & 0x03) << 4
                }
                body.byte(options)
            }
        case .suback(let a):
            body.uint16(a.packetId)
            if v5 { a.properties.encode(into: &body) }
            body.append(a.reasonCodes)
        case .unsuback(let a):
            body.uint16(a.packetId)
            if v5 {
                a.properties.encode(into: &body)
                body.append(a.reasonCodes)
            }
        case .unsubscribe(let u):
            flags = 0b0010
            body.uint16(u.packetId)
            if v5 { u.properties.encode(into: &body) }
            for f in u.filters { body.string(f) }
        case .pingreq, .pingresp:
            break
        case .disconnect(let d), .auth(let d):
            if v5 && (d.reasonCode != 0 || !d.properties.isEmpty) {
                body.byte(d.reasonCode)
                if !d.properties.isEmpty { d.properties.encode(into: &body) }
            }
        }
        return Self.frame(type.rawValue << 4 | flags, body.bytes)
    }

    static func encodeConnect(_ c: Connect) -> [UInt8] {
        var body = MQTTWriter()
        body.string("MQTT")
        body.byte(c.version.rawValue)
        var flags: UInt8 = c.cleanStart ? 0x02 : 0
        if let will = c.will { flags |= 0x04 | will.qos.rawValue << 3 | (will.retain ? 0x20 : 0) }
        if c.password != nil { flags |= 0x40 }
        if c.username != nil { flags |= 0x80 }
        body.byte(flags)
        body.uint16(c.keepAliveSeconds)
        if c.version == .v5 { c.properties.encode(into: &body) }
        body.string(c.clientId)
        if let will = c.will {
            if c.version == .v5 { will.properties.encode(into: &body) }
            body.string(will.topic)
            body.binary(will.payload)
        }
        if let username = c.username { body.string(username) }
        if let password = c.password { body.binary(password) }
        return frame(MQTTPacketType.connect.rawValue << 4, body.bytes)
    }

    static func frame(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
        var w = MQTTWriter()
        w.bytes.reserveCapacity(body.count + 5)
        w.byte(first)
        w.varint(body.count)
        w.append(body)
        return w.bytes
    }
}
