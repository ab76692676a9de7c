import NIOCore
import SpeedflowMQTT
import Testing

/// Byte vectors written out by hand from the MQTT 3.1.1 (OASIS 2014) and MQTT 5.0 (OASIS 2019) specifications:
/// each valid one decodes to the packet named and encodes back to the same bytes; each invalid one fails with the
/// error code the specification calls for.
@Suite("MQTT codec: hand-checked byte vectors, strict decoding, round trips")
struct MQTTCodecTests {
    /// Hex bytes (`"10 0F"`) and quoted ASCII (`'MQTT'`), space separated.
    static func b(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for token in text.split(separator: " ") {
            if token.hasPrefix("'") && token.hasSuffix("'") && token.count >= 2 {
                out += Array(token.dropFirst().dropLast().utf8)
            } else {
                out.append(UInt8(token, radix: 16)!)
            }
        }
        return out
    }

    static func decode(_ bytes: [UInt8], version: MQTTVersion? = nil, max: Int = 1 << 20) throws -> MQTTPacket? {
        var decoder = MQTTDecoder(maxPacketSize: max, version: version)
        let result = try bytes.withUnsafeBytes { raw in try decoder.decode(raw) }
        guard let (packet, length) = result else { return nil }
        #expect(length == bytes.count, "the vector holds exactly one packet")
        return packet
    }

    static func error(_ bytes: [UInt8], version: MQTTVersion? = nil, max: Int = 1 << 20) -> MQTTError? {
        do {
            _ = try decode(bytes, version: version, max: max)
            return nil
        } catch {
            return error as? MQTTError
        }
    }

    /// Decodes `bytes` to `expected`, encodes it back to `bytes`, and finds nothing in any shorter prefix.
    static func check(_ bytes: [UInt8], _ expected: MQTTPacket, version: MQTTVersion?, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let packet = try decode(bytes, version: version)
        #expect(packet == expected, sourceLocation: sourceLocation)
        let encodeVersion: MQTTVersion = if case .connect(let c) = expected { c.version } else { version! }
        #expect(expected.encode(version: encodeVersion) == bytes, sourceLocation: sourceLocation)
        for n in 0..<bytes.count {
            #expect(try decode(Array(bytes.prefix(n)), version: version) == nil, "prefix of \(n) bytes", sourceLocation: sourceLocation)
        }
    }

    // MARK: Fixed header

    @Test("remaining length: the specification's table (1–4 bytes), shortest form only, at most four bytes")
    func remainingLength() throws {
        let table: [(Int, String)] = [
            (0, "00"), (127, "7F"), (128, "80 01"), (16_383, "FF 7F"), (16_384, "80 80 01"), (2_097_151, "FF FF 7F"),
            (2_097_152, "80 80 80 01"), (268_435_455, "FF FF FF 7F"),
        ]
        for (value, hex) in table {
            let bytes = [0x30] + Self.b(hex)
            let header = try bytes.withUnsafeBytes { raw in try MQTTFrame.header(raw, maxPacketSize: .max) }
            #expect(header?.remainingLength == value && header?.headerLength == bytes.count, "\(hex)")
        }
        // Non-minimal: 0 in two bytes, 127 in two, 128 in three.
        for hex in ["80 00", "FF 00", "80 81 00"] {
            #expect(Self.error([0x30] + Self.b(hex))?.code == .malformedPacket, "\(hex)")
        }
        #expect(Self.error(Self.b("30 FF FF FF FF 01"))?.code == .malformedPacket)
        // Incomplete headers ask for more.
        #expect(try Self.decode(Self.b("30")) == nil)
        #expect(try Self.decode(Self.b("30 FF FF FF")) == nil)
    }

    @Test("a packet larger than the maximum fails from its header alone, before its body arrives")
    func tooLarge() throws {
        #expect(Self.error(Self.b("30 FF FF FF 7F"), version: .v5, max: 1024)?.code == .packetTooLarge)
        // The limit counts the whole packet: 2 header bytes + 9 = 11.
        let publish = Self.b("32 09 00 03 'a/b' 00 0A 'hi'")
        #expect(Self.error(publish, version: .v3_1_1, max: 10)?.code == .packetTooLarge)
        #expect(try Self.decode(publish, version: .v3_1_1, max: 11) != nil)
        #expect(MQTTError(.packetTooLarge, "").reasonCode == 0x95)
    }

    @Test("reserved packet type 0, and 15 in 3.1.1, are malformed; fixed-header flags must be as specified")
    func packetTypesAndFlags() {
        #expect(Self.error(Self.b("00 00"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("F0 00"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("C1 00"), version: .v3_1_1)?.code == .malformedPacket)  // PINGREQ with a flag
        #expect(Self.error(Self.b("80 08 00 01 00 03 'a/b' 01"), version: .v3_1_1)?.code == .malformedPacket)  // SUBSCRIBE needs 0010
        #expect(Self.error(Self.b("60 02 00 01"), version: .v3_1_1)?.code == .malformedPacket)  // PUBREL needs 0010
        #expect(Self.error(Self.b("11 00"))?.code == .malformedPacket)  // CONNECT with a flag
    }

    @Test("before CONNECT a server's decoder knows no version: any other packet is a protocol error")
    func connectFirst() {
        #expect(Self.error(Self.b("C0 00"))?.code == .protocolError)
        #expect(Self.error(Self.b("30 07 00 03 'a/b' 'hi'"))?.code == .protocolError)
    }

    // MARK: CONNECT

    @Test("CONNECT 3.1.1: client id, clean session, keep alive")
    func connect311() throws {
        try Self.check(
            Self.b("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 'abc'"),
            .connect(.init(version: .v3_1_1, clientId: "abc", cleanStart: true, keepAliveSeconds: 60)), version: nil)
    }

    @Test("CONNECT 3.1.1 with a will (QoS 1, retained), user name and password: flags 0xEE")
    func connect311Full() throws {
        let will = MQTTPacket.Connect.Will(qos: .atLeastOnce, retain: true, topic: "a/b", payload: Array("hi".utf8))
        try Self.check(
            Self.b("10 1C 00 04 'MQTT' 04 EE 00 0A 00 01 'c' 00 03 'a/b' 00 02 'hi' 00 01 'u' 00 01 'p'"),
            .connect(.init(version: .v3_1_1, clientId: "c", cleanStart: true, keepAliveSeconds: 10, will: will, username: "u", password: Array("p".utf8))),
            version: nil)
    }

    @Test("CONNECT 5: properties (session expiry interval 10, the specification's example), user name and password")
    func connect5() throws {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 10
        try Self.check(
            Self.b("10 1B 00 04 'MQTT' 05 C2 00 0A 05 11 00 00 00 0A 00 02 'id' 00 01 'u' 00 02 'pw'"),
            .connect(.init(version: .v5, clientId: "id", cleanStart: true, keepAliveSeconds: 10, properties: properties, username: "u", password: Array("pw".utf8))),
            version: nil)
    }

    @Test("CONNECT 5 with will properties (will delay 5) and a password without a user name (allowed in 5 only)")
    func connect5Will() throws {
        var willProperties = MQTTProperties()
        willProperties.willDelayInterval = 5
        let will = MQTTPacket.Connect.Will(qos: .atMostOnce, retain: false, topic: "w", payload: [], properties: willProperties)
        try Self.check(
            Self.b("10 1C 00 04 'MQTT' 05 44 00 00 00 00 01 'c' 05 18 00 00 00 05 00 01 'w' 00 00 00 01 'p'"),
            .connect(.init(version: .v5, clientId: "c", cleanStart: false, keepAliveSeconds: 0, will: will, password: Array("p".utf8))),
            version: nil)
        // The same flags in 3.1.1: a password without a user name is malformed.
        #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 04 42 00 00 00 01 'c' 00 01 'p'"))?.code == .malformedPacket)
    }

    @Test("CONNECT flags: reserved bit, will QoS 3, will QoS or retain without a will are malformed")
    func connectFlags() {
        for flags in ["03", "1E", "0A", "22"] {
            #expect(Self.error(Self.b("10 0C 00 04 'MQTT' 04 \(flags) 00 3C 00 00"))?.code == .malformedPacket, "flags \(flags)")
        }
    }

    @Test("CONNECT protocol: level 3 (MQIsdp) and 6 are unsupported versions (CONNACK 0x01/0x84); a wrong name is malformed")
    func connectProtocol() {
        let v31 = Self.error(Self.b("10 0E 00 06 'MQIsdp' 03 02 00 3C 00 00"))
        #expect(v31?.code == .unsupportedProtocolVersion && v31?.reasonCode == 0x84)
        #expect(Self.error(Self.b("10 0C 00 04 'MQTT' 06 02 00 3C 00 00"))?.code == .unsupportedProtocolVersion)
        #expect(Self.error(Self.b("10 0C 00 04 'MQTX' 04 02 00 3C 00 00"))?.code == .malformedPacket)
    }

    @Test("CONNECT: a byte after the last field, a cut field, a string with U+0000 or invalid UTF-8 are malformed")
    func connectStrictness() {
        #expect(Self.error(Self.b("10 10 00 04 'MQTT' 04 02 00 3C 00 03 'abc' 00"))?.code == .malformedPacket)
        #expect(Self.error(Self.b("10 0E 00 04 'MQTT' 04 02 00 3C 00 03 'ab'"))?.code == .malformedPacket)
        #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 61 00 62"))?.code == .malformedPacket)
        // Over-long encoding of '/', a UTF-16 surrogate, a lone continuation byte.
        for bad in ["C0 AF 61", "ED A0 80", "80 61 62"] {
            #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 \(bad)"))?.code == .malformedPacket, "\(bad)")
        }
        // Valid multi-byte UTF-8 (Cyrillic client id).
        let id = "КВ"
        let utf8 = Array(id.utf8)
        #expect(try! Self.decode([0x10, UInt8(12 + utf8.count)] + Self.b("00 04 'MQTT' 04 02 00 3C 00") + [UInt8(utf8.count)] + utf8)
            == .connect(.init(version: .v3_1_1, clientId: id, cleanStart: true, keepAliveSeconds: 60)))
    }

    @Test("MQTT 5 properties: duplicate, not allowed in the packet, unknown identifier, zero receive maximum, flag not 0/1")
    func properties() {
        // Session expiry interval twice.
        #expect(Self.error(Self.b("10 17 00 04 'MQTT' 05 02 00 0A 0A 11 00 00 00 0A 11 00 00 00 0B 00 00"))?.code == .protocolError)
        // Topic alias (a PUBLISH property) in CONNECT.
        #expect(Self.error(Self.b("10 10 00 04 'MQTT' 05 02 00 0A 03 23 00 01 00 00"))?.code == .protocolError)
        // Unknown identifier 0x7F.
        #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 05 02 00 0A 02 7F 00 00 00"))?.code == .malformedPacket)
        // Receive maximum 0; request problem information 2.
        #expect(Self.error(Self.b("10 10 00 04 'MQTT' 05 02 00 0A 03 21 00 00 00 00"))?.code == .protocolError)
        #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 05 02 00 0A 02 17 02 00 00"))?.code == .protocolError)
        // A property length running past the packet.
        #expect(Self.error(Self.b("10 0F 00 04 'MQTT' 05 02 00 0A 09 17 01 00 00"))?.code == .malformedPacket)
        // User properties may repeat, and keep their order.
        var p = MQTTProperties()
        p.userProperties = [.init("a", "1"), .init("a", "2")]
        let bytes = Self.b("10 1B 00 04 'MQTT' 05 02 00 0A 0E 26 00 01 'a' 00 01 '1' 26 00 01 'a' 00 01 '2' 00 00")
        #expect(try! Self.decode(bytes) == .connect(.init(version: .v5, clientId: "", cleanStart: true, keepAliveSeconds: 10, properties: p)))
    }

    // MARK: CONNACK

    @Test("CONNACK: 3.1.1 return codes 0–5; 5 reason codes with properties; session present only when accepted")
    func connack() throws {
        try Self.check(Self.b("20 02 00 00"), .connack(.init(sessionPresent: false, reasonCode: 0)), version: .v3_1_1)
        try Self.check(Self.b("20 02 01 00"), .connack(.init(sessionPresent: true, reasonCode: 0)), version: .v3_1_1)
        try Self.check(Self.b("20 02 00 04"), .connack(.init(sessionPresent: false, reasonCode: 4)), version: .v3_1_1)
        #expect(Self.error(Self.b("20 02 00 06"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("20 02 01 05"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("20 02 02 00"), version: .v3_1_1)?.code == .malformedPacket)
        var p = MQTTProperties()
        p.receiveMaximum = 16
        p.maximumQoS = 1
        try Self.check(Self.b("20 08 00 00 05 21 00 10 24 01"), .connack(.init(sessionPresent: false, reasonCode: 0, properties: p)), version: .v5)
        try Self.check(Self.b("20 03 00 86 00"), .connack(.init(sessionPresent: false, reasonCode: 0x86)), version: .v5)
        // 0x01 is a 3.1.1 return code, not a 5 reason code; 5 needs the property length.
        #expect(Self.error(Self.b("20 03 00 01 00"), version: .v5)?.code == .protocolError)
        #expect(Self.error(Self.b("20 02 00 00"), version: .v5)?.code == .malformedPacket)
    }

    // MARK: PUBLISH

    @Test("PUBLISH: QoS 0 and 1 in 3.1.1, DUP and RETAIN, payload is the rest")
    func publish311() throws {
        try Self.check(
            Self.b("30 07 00 03 'a/b' 'hi'"), .publish(.init(qos: .atMostOnce, topic: "a/b", packetId: nil, payload: Array("hi".utf8))),
            version: .v3_1_1)
        try Self.check(
            Self.b("32 09 00 03 'a/b' 00 0A 'hi'"), .publish(.init(qos: .atLeastOnce, topic: "a/b", packetId: 10, payload: Array("hi".utf8))),
            version: .v3_1_1)
        try Self.check(
            Self.b("3B 07 00 03 'a/b' 12 34"), .publish(.init(dup: true, qos: .atLeastOnce, retain: true, topic: "a/b", packetId: 0x1234, payload: [])),
            version: .v3_1_1)
        // QoS 2 decodes (the server decides what to do with it).
        try Self.check(
            Self.b("34 07 00 03 'a/b' 00 01"), .publish(.init(qos: .exactlyOnce, topic: "a/b", packetId: 1, payload: [])), version: .v3_1_1)
    }

    @Test("PUBLISH 5: content type application/gzip; topic alias with an empty topic")
    func publish5() throws {
        var p = MQTTProperties()
        p.contentType = "application/gzip"
        try Self.check(
            Self.b("32 1D 00 03 'a/b' 00 0A 13 03 00 10 'application/gzip' 1F 8B"),
            .publish(.init(qos: .atLeastOnce, topic: "a/b", packetId: 10, properties: p, payload: [0x1F, 0x8B])), version: .v5)
        var alias = MQTTProperties()
        alias.topicAlias = 3
        try Self.check(Self.b("30 06 00 00 03 23 00 03"), .publish(.init(qos: .atMostOnce, topic: "", packetId: nil, properties: alias, payload: [])), version: .v5)
    }

    @Test("PUBLISH errors: QoS 3, DUP on QoS 0, packet id 0, wildcards, empty topic without alias, session expiry property")
    func publishErrors() {
        #expect(Self.error(Self.b("36 07 00 03 'a/b' 00 0A"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("38 05 00 03 'a/b'"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("32 07 00 03 'a/b' 00 00"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("30 05 00 03 'a/+'"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("30 05 00 03 'a/#'"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("30 02 00 00"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("30 03 00 00 00"), version: .v5)?.code == .protocolError)
        #expect(Self.error(Self.b("30 0B 00 03 'a/b' 05 11 00 00 00 01"), version: .v5)?.code == .protocolError)
        // The packet id cut short.
        #expect(Self.error(Self.b("32 06 00 03 'a/b' 00"), version: .v3_1_1)?.code == .malformedPacket)
    }

    // MARK: Acknowledgements

    @Test("PUBACK: 3.1.1 exactly two bytes; 5 with and without reason code and properties")
    func puback() throws {
        try Self.check(Self.b("40 02 00 0A"), .puback(.init(packetId: 10)), version: .v3_1_1)
        #expect(Self.error(Self.b("40 03 00 0A 00"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("40 02 00 00"), version: .v3_1_1)?.code == .protocolError)
        try Self.check(Self.b("40 02 00 0A"), .puback(.init(packetId: 10)), version: .v5)
        try Self.check(Self.b("40 03 00 0A 10"), .puback(.init(packetId: 10, reasonCode: 0x10)), version: .v5)
        var p = MQTTProperties()
        p.reasonString = ""
        try Self.check(Self.b("40 07 00 0A 99 03 1F 00 00"), .puback(.init(packetId: 10, reasonCode: 0x99, properties: p)), version: .v5)
        // The long forms of success decode to the same packet.
        #expect(try Self.decode(Self.b("40 03 00 0A 00"), version: .v5) == .puback(.init(packetId: 10)))
        #expect(try Self.decode(Self.b("40 04 00 0A 00 00"), version: .v5) == .puback(.init(packetId: 10)))
        // 0x92 belongs to PUBREL/PUBCOMP, not PUBACK.
        #expect(Self.error(Self.b("40 03 00 0A 92"), version: .v5)?.code == .protocolError)
        try Self.check(Self.b("62 03 00 0A 92"), .pubrel(.init(packetId: 10, reasonCode: 0x92)), version: .v5)
        try Self.check(Self.b("50 02 00 0B"), .pubrec(.init(packetId: 11)), version: .v3_1_1)
        try Self.check(Self.b("70 02 00 0C"), .pubcomp(.init(packetId: 12)), version: .v3_1_1)
    }

    // MARK: SUBSCRIBE / UNSUBSCRIBE

    @Test("SUBSCRIBE and SUBACK (3.1.1 and 5): filters, options, return codes")
    func subscribe() throws {
        try Self.check(
            Self.b("82 08 00 01 00 03 'a/b' 01"), .subscribe(.init(packetId: 1, subscriptions: [.init(filter: "a/b", qos: .atLeastOnce)])),
            version: .v3_1_1)
        try Self.check(
            Self.b("82 0E 00 02 00 03 'a/+' 00 00 03 'c/#' 02"),
            .subscribe(.init(packetId: 2, subscriptions: [.init(filter: "a/+", qos: .atMostOnce), .init(filter: "c/#", qos: .exactlyOnce)])),
            version: .v3_1_1)
        var p = MQTTProperties()
        p.subscriptionIdentifiers = [200]
        try Self.check(
            Self.b("82 0C 00 01 03 0B C8 01 00 03 'a/b' 2D"),
            .subscribe(.init(packetId: 1, properties: p, subscriptions: [
                .init(filter: "a/b", qos: .atLeastOnce, noLocal: true, retainAsPublished: true, retainHandling: 2),
            ])), version: .v5)
        try Self.check(Self.b("90 03 00 01 01"), .suback(.init(packetId: 1, reasonCodes: [1])), version: .v3_1_1)
        try Self.check(Self.b("90 05 00 01 00 00 87"), .suback(.init(packetId: 1, reasonCodes: [0, 0x87])), version: .v5)
        #expect(Self.error(Self.b("90 03 00 01 87"), version: .v3_1_1)?.code == .protocolError)
    }

    @Test("SUBSCRIBE errors: no filter, reserved option bits, QoS 3, retain handling 3, bad wildcards, two subscription ids")
    func subscribeErrors() {
        #expect(Self.error(Self.b("82 02 00 01"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("82 08 00 01 00 03 'a/b' 04"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("82 08 00 01 00 03 'a/b' 03"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("82 09 00 01 00 00 03 'a/b' 30"), version: .v5)?.code == .protocolError)
        #expect(Self.error(Self.b("82 09 00 01 00 00 03 'a/b' 40"), version: .v5)?.code == .malformedPacket)
        for filter in ["a/#/b", "a+", "#a", ""] {
            let f = Array(filter.utf8)
            #expect(
                Self.error([0x82, UInt8(5 + f.count), 0, 1, 0, UInt8(f.count)] + f + [0], version: .v3_1_1)?.code == .malformedPacket, "\(filter)")
        }
        #expect(Self.error(Self.b("82 0B 00 01 04 0B 01 0B 02 00 01 'a' 00"), version: .v5)?.code == .protocolError)
        // Subscription identifier 0.
        #expect(Self.error(Self.b("82 09 00 01 02 0B 00 00 01 'a' 00"), version: .v5)?.code == .protocolError)
    }

    @Test("UNSUBSCRIBE and UNSUBACK (3.1.1: packet id only; 5: properties and reason codes)")
    func unsubscribe() throws {
        try Self.check(Self.b("A2 07 00 02 00 03 'a/b'"), .unsubscribe(.init(packetId: 2, filters: ["a/b"])), version: .v3_1_1)
        try Self.check(Self.b("A2 08 00 02 00 00 03 'a/b'"), .unsubscribe(.init(packetId: 2, filters: ["a/b"])), version: .v5)
        try Self.check(Self.b("B0 02 00 02"), .unsuback(.init(packetId: 2, reasonCodes: [])), version: .v3_1_1)
        try Self.check(Self.b("B0 04 00 02 00 11"), .unsuback(.init(packetId: 2, reasonCodes: [0x11])), version: .v5)
        #expect(Self.error(Self.b("A2 02 00 02"), version: .v3_1_1)?.code == .protocolError)
        #expect(Self.error(Self.b("B0 03 00 02 00"), version: .v3_1_1)?.code == .malformedPacket)
    }

    // MARK: PING, DISCONNECT, AUTH

    @Test("PINGREQ, PINGRESP, DISCONNECT: empty in 3.1.1; DISCONNECT 5 with a reason code; AUTH only in 5")
    func pingDisconnect() throws {
        try Self.check(Self.b("C0 00"), .pingreq, version: .v3_1_1)
        try Self.check(Self.b("D0 00"), .pingresp, version: .v5)
        try Self.check(Self.b("E0 00"), .disconnect(.init()), version: .v3_1_1)
        try Self.check(Self.b("E0 00"), .disconnect(.init()), version: .v5)
        try Self.check(Self.b("E0 01 04"), .disconnect(.init(reasonCode: 0x04)), version: .v5)
        var p = MQTTProperties()
        p.sessionExpiryInterval = 0
        try Self.check(Self.b("E0 07 00 05 11 00 00 00 00"), .disconnect(.init(reasonCode: 0, properties: p)), version: .v5)
        #expect(Self.error(Self.b("C0 01 00"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("E0 01 00"), version: .v3_1_1)?.code == .malformedPacket)
        #expect(Self.error(Self.b("E0 01 05"), version: .v5)?.code == .protocolError)
        try Self.check(Self.b("F0 01 18"), .auth(.init(reasonCode: 0x18)), version: .v5)
    }

    // MARK: Topics

    @Test("topic filters match names as §4.7 says, '$' names only by explicit filters")
    func topics() {
        let cases: [(String, String, Bool)] = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true), ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
            ("sport/#", "sport", true), ("#", "a/b/c", true), ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false), ("sport/+", "sport", false), ("sport/+", "sport/", true),
            ("+/+", "/finance", true), ("/+", "/finance", true), ("+", "/finance", false), ("#", "$SYS/x", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false), ("$SYS/#", "$SYS/x", true), ("a/b", "a/b", true), ("a/b", "a/c", false),
        ]
        for (filter, name, expected) in cases {
            #expect(MQTTTopic.isValidFilter(filter) && MQTTTopic.isValidName(name))
            #expect(MQTTTopic.matches(filter: filter, name: name) == expected, "\(filter) ~ \(name)")
        }
    }

    // MARK: Streams

    @Test("a stream of packets decodes one at a time through the NIO frame decoder; an error stops it")
    func stream() throws {
        var buffer = ByteBuffer(bytes: Self.b("10 0F 00 04 'MQTT' 04 02 00 3C 00 03 'abc'") + Self.b("C0 00") + Self.b("32 09 00 03 'a/b' 00 0A"))
        var decoder = MQTTFrameDecoder(maxPacketSize: 1024)
        #expect(try decoder.decode(buffer: &buffer)?.type == .connect)
        #expect(decoder.decoder.version == .v3_1_1)
        #expect(try decoder.decode(buffer: &buffer) == .pingreq)
        #expect(try decoder.decode(buffer: &buffer) == nil)  // the PUBLISH is two bytes short
        buffer.writeBytes(Array("hi".utf8))
        #expect(try decoder.decode(buffer: &buffer)?.type == .publish)
        #expect(buffer.readableBytes == 0)
    }
}
