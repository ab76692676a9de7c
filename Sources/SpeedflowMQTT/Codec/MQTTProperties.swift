/// The properties of an MQTT 5 packet (§2.2.2), each typed; absent ones are `nil` / empty.
///
/// Decoding is strict: an unknown identifier is a malformed packet; a property the packet may not carry, one
/// given twice (only user properties, and subscription identifiers in PUBLISH, may repeat), or a value outside
/// its range (a flag other than 0/1, a receive maximum, maximum packet size, topic alias or subscription
/// identifier of 0) is a protocol error. Encoding writes them in identifier order, so `decode(encode(p)) == p`.
public struct MQTTProperties: Sendable, Hashable {
    public var payloadFormatIndicator: UInt8?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: [UInt8]?
    /// Several in a PUBLISH sent to a subscriber, at most one in SUBSCRIBE; each 1…268,435,455.
    public var subscriptionIdentifiers: [Int] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: [UInt8]?
    public var requestProblemInformation: UInt8?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: UInt8?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: UInt8?
    public var retainAvailable: UInt8?
    public var userProperties: [UserProperty] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: UInt8?
    public var subscriptionIdentifiersAvailable: UInt8?
    public var sharedSubscriptionAvailable: UInt8?

    public init() {}

    public struct UserProperty: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var isEmpty: Bool { self == MQTTProperties() }

    /// The property identifiers (§2.2.2.2).
    enum ID: UInt8, CaseIterable {
        case payloadFormatIndicator = 0x01, messageExpiryInterval = 0x02, contentType = 0x03, responseTopic = 0x08
        case correlationData = 0x09, subscriptionIdentifier = 0x0B, sessionExpiryInterval = 0x11
        case assignedClientIdentifier = 0x12, serverKeepAlive = 0x13, authenticationMethod = 0x15
        case authenticationData = 0x16, requestProblemInformation = 0x17, willDelayInterval = 0x18
        case requestResponseInformation = 0x19, responseInformation = 0x1A, serverReference = 0x1C
        case reasonString = 0x1F, receiveMaximum = 0x21, topicAliasMaximum = 0x22, topicAlias = 0x23
        case maximumQoS = 0x24, retainAvailable = 0x25, userProperty = 0x26, maximumPacketSize = 0x27
        case wildcardSubscriptionAvailable = 0x28, subscriptionIdentifiersAvailable = 0x29
        case sharedSubscriptionAvailable = 0x2A
    }

    /// Which properties a packet may carry (§3.x.2.3).
    struct Allowed: Sendable {
        let ids: Set<UInt8>
        let packet: String
        /// Whether the subscription identifier may repeat (PUBLISH only).
        var repeatedSubscriptionIdentifiers = false

        init(_ packet: String, _ ids: [ID], repeatedSubscriptionIdentifiers: Bool = false) {
            self.packet = packet
            self.ids = Set(ids.map(\.rawValue))
            self.repeatedSubscriptionIdentifiers = repeatedSubscriptionIdentifiers
        }

        static let connect = Allowed(
            "CONNECT",
            [.sessionExpiryInterval, .receiveMaximum, .maximumPacketSize, .topicAliasMaximum, .requestResponseInformation,
             .requestProblemInformation, .userProperty, .authenticationMethod, .authenticationData])
        static let will = Allowed(
            "the will", [.willDelayInterval, .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData, .userProperty])
        static let connack = Allowed(
            "CONNACK",
            [.sessionExpiryInterval, .receiveMaximum, .maximumQoS, .retainAvailable, .maximumPacketSize, .assignedClientIdentifier,
             .topicAliasMaximum, .reasonString, .userProperty, .wildcardSubscriptionAvailable, .subscriptionIdentifiersAvailable,
             .sharedSubscriptionAvailable, .serverKeepAlive, .responseInformation, .serverReference, .authenticationMethod,
             .authenticationData])
        static let publish = Allowed(
            "PUBLISH",
            [.payloadFormatIndicator, .messageExpiryInterval, .topicAlias, .responseTopic, .correlationData, .userProperty,
             .subscriptionIdentifier, .contentType], repeatedSubscriptionIdentifiers: true)
        static func ack(_ packet: String) -> Allowed { Allowed(packet, [.reasonString, .userProperty]) }
        static let subscribe = Allowed("SUBSCRIBE", [.subscriptionIdentifier, .userProperty])
        static let unsubscribe = Allowed("UNSUBSCRIBE", [.userProperty])
        static let disconnect = Allowed("DISCONNECT", [.sessionExpiryInterval, .reasonString, .userProperty, .serverReference])
        static let auth = Allowed("AUTH", [.authenticationMethod, .authenticationData, .reasonString, .userProperty])
    }

    /// Reads a property block: its length, then the properties, which must fill it exactly.
    static func decode(_ reader: inout MQTTReader, allowed: Allowed) throws(MQTTError) -> MQTTProperties {
        let length = try reader.varint("the property length of \(allowed.packet)")
        return try reader.within(length, "the properties of \(allowed.packet)") { (r: inout MQTTReader) throws(MQTTError) -> MQTTProperties in
            var p = MQTTProperties()
            var seen = Set<UInt8>()
            while !r.isAtEnd {
                // The identifier is a variable byte integer; every defined one fits in one byte.
                let raw = try r.varint("a property identifier")
                guard raw <= 0xFF, let id = ID(rawValue: UInt8(raw)) else {
                    throw .malformed("unknown property identifier 0x\(String(raw, radix: 16)) in \(allowed.packet)")
                }
                guard allowed.ids.contains(id.rawValue) else {
                    throw .protocolError("property \(id) (0x\(String(id.rawValue, radix: 16))) is not allowed in \(allowed.packet)")
                }
                let repeatable = id == .userProperty || (id == .subscriptionIdentifier && allowed.repeatedSubscriptionIdentifiers)
                guard seen.insert(id.rawValue).inserted || repeatable else {
                    throw .protocolError("property \(id) appears twice in \(allowed.packet)")
                }
                try p.read(id, from: &r)
            }
            return p
        }
    }

    private mutating func read(_ id: ID, from r: inout MQTTReader) throws(MQTTError) {
        let what = "property \(id)"
        func flag() throws(MQTTError) -> UInt8 {
            let b = try r.byte(what)
            guard b <= 1 else { throw .protocolError("\(what) must be 0 or 1, not \(b)") }
            return b
        }
        func nonZero16() throws(MQTTError) -> UInt16 {
            let v = try r.uint16(what)
            guard v != 0 else { throw .protocolError("\(what) must not be 0") }
            return v
        }
        switch id {
        case .payloadFormatIndicator: payloadFormatIndicator = try flag()
        case .messageExpiryInterval: messageExpiryInterval = try r.uint32(what)
        case .contentType: contentType = try r.string(what)
        case .responseTopic:
            let topic = try r.string(what)
            guard MQTTTopic.isValidName(topic) else { throw .protocolError("\(what) is not a valid topic name") }
            responseTopic = topic
        case .correlationData: correlationData = try r.binary(what)
        case .subscriptionIdentifier:
            let v = try r.varint(what)
            guard v != 0 else { throw .protocolError("\(what) must not be 0") }
            subscriptionIdentifiers.append(v)
        case .sessionExpiryInterval: sessionExpiryInterval = try r.uint32(what)
        case .assignedClientIdentifier: assignedClientIdentifier = try r.string(what)
        case .serverKeepAlive: serverKeepAlive = try r.uint16(what)
        case .authenticationMethod: authenticationMethod = try r.string(what)
        case .authenticationData: authenticationData = try r.binary(what)
        case .requestProblemInformation: requestProblemInformation = try flag()
        case .willDelayInterval: willDelayInterval = try r.uint32(what)
        case .requestResponseInformation: requestResponseInformation = try flag()
        case .responseInformation: responseInformation = try r.string(what)
        case .serverReference: serverReference = try r.string(what)
        case .reasonString: reasonString = try r.string(what)
        case .receiveMaximum: receiveMaximum = try nonZero16()
        case .topicAliasMaximum: topicAliasMaximum = try r.uint16(what)
        case .topicAlias: topicAlias = try nonZero16()
        case .maximumQoS: maximumQoS = try flag()
        case .retainAvailable: retainAvailable = try flag()
        case .userProperty:
            let name = try r.string("the name of a user property")
            userProperties.append(UserProperty(name, try r.string("the value of a user property")))
        case .maximumPacketSize:
            let v = try r.uint32(what)
            guard v != 0 else { throw .protocolError("\(what) must not be 0") }
            maximumPacketSize = v
        case .wildcardSubscriptionAvailable: wildcardSubscriptionAvailable = try flag()
        case .subscriptionIdentifiersAvailable: subscriptionIdentifiersAvailable = try flag()
        case .sharedSubscriptionAvailable: sharedSubscriptionAvailable = try flag()
        }
    }

    /// Writes the property length and the properties, in identifier order.
    func encode(into w: inout MQTTWriter) {
        var p = MQTTWriter()
        func id(_ i: ID) { p.byte(i.rawValue) }
        if let v = payloadFormatIndicator { id(.payloadFormatIndicator); p.byte(v) }
        if let v = messageExpiryInterval { id(.messageExpiryInterval); p.uint32(v) }
        if let v = contentType { id(.contentType); p.string(v) }
        if let v = responseTopic { id(.responseTopic); p.string(v) }
        if let v = correlationData { id(.correlationData); p.binary(v) }
        for v in subscriptionIdentifiers { id(.subscriptionIdentifier); p.varint(v) }
        if let v = sessionExpiryInterval { id(.sessionExpiryInterval); p.uint32(v) }
        if let v = assignedClientIdentifier { id(.assignedClientIdentifier); p.string(v) }
        if let v = serverKeepAlive { id(.serverKeepAlive); p.uint16(v) }
        if let v = authenticationMethod { id(.authenticationMethod); p.string(v) }
        if let v = authenticationData { id(.authenticationData); p.binary(v) }
        if let v = requestProblemInformation { id(.requestProblemInformation); p.byte(v) }
        if let v = willDelayInterval { id(.willDelayInterval); p.uint32(v) }
        if let v = requestResponseInformation { id(.requestResponseInformation); p.byte(v) }
        if let v = responseInformation { id(.responseInformation); p.string(v) }
        if let v = serverReference { id(.serverReference); p.string(v) }
        if let v = reasonString { id(.reasonString); p.string(v) }
        if let v = receiveMaximum { id(.receiveMaximum); p.uint16(v) }
        if let v = topicAliasMaximum { id(.topicAliasMaximum); p.uint16(v) }
        if let v = topicAlias { id(.topicAlias); p.uint16(v) }
        if let v = maximumQoS { id(.maximumQoS); p.byte(v) }
        if let v = retainAvailable { id(.retainAvailable); p.byte(v) }
        for u in userProperties { id(.userProperty); p.string(u.name); p.string(u.value) }
        if let v = maximumPacketSize { id(.maximumPacketSize); p.uint32(v) }
        if let v = wildcardSubscriptionAvailable { id(.wildcardSubscriptionAvailable); p.byte(v) }
        if let v = subscriptionIdentifiersAvailable { id(.subscriptionIdentifiersAvailable); p.byte(v) }
        if let v = sharedSubscriptionAvailable { id(.sharedSubscriptionAvailable); p.byte(v) }
        w.varint(p.bytes.count)
        w.append(p.bytes)
    }
}
