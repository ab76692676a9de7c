/// The protocol levels spoken: MQTT 3.1.1 (level 4) and MQTT 5 (level 5).
public enum MQTTVersion: UInt8, Sendable, Hashable, CustomStringConvertible {
    case v3_1_1 = 4
    case v5 = 5

    public var description: String { self == .v5 ? "5" : "3.1.1" }
}

/// Delivery guarantee of a PUBLISH.
public enum MQTTQoS: UInt8, Sendable, Hashable, Comparable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (a: MQTTQoS, b: MQTTQoS) -> Bool { a.rawValue < b.rawValue }
}

/// The control packet types (the fixed header's upper four bits).
public enum MQTTPacketType: UInt8, Sendable, Hashable, CustomStringConvertible {
    case connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe, unsuback
    case pingreq, pingresp, disconnect
    /// MQTT 5 only (type 15 is reserved in 3.1.1).
    case auth

    public var description: String {
        switch self {
        case .connect: "CONNECT"
        case .connack: "CONNACK"
        case .publish: "PUBLISH"
        case .puback: "PUBACK"
        case .pubrec: "PUBREC"
        case .pubrel: "PUBREL"
        case .pubcomp: "PUBCOMP"
        case .subscribe: "SUBSCRIBE"
        case .suback: "SUBACK"
        case .unsubscribe: "UNSUBSCRIBE"
        case .unsuback: "UNSUBACK"
        case .pingreq: "PINGREQ"
        case .pingresp: "PINGRESP"
        case .disconnect: "DISCONNECT"
        case .auth: "AUTH"
        }
    }
}

/// One MQTT control packet, as decoded (`MQTTDecoder`) or to be encoded (`MQTTPacket.encode(version:)`).
///
/// Fields that only MQTT 5 has (properties, reason codes of acknowledgements) are empty / 0 in packets of 3.1.1;
/// encoding for 3.1.1 leaves them out.
public enum MQTTPacket: Sendable, Hashable {
    case connect(Connect)
    case connack(ConnAck)
    case publish(Publish)
    /// PUBACK (QoS 1), and the QoS 2 handshake PUBREC, PUBREL, PUBCOMP: a packet id, a reason code, properties.
    case puback(Ack)
    case pubrec(Ack)
    case pubrel(Ack)
    case pubcomp(Ack)
    case subscribe(Subscribe)
    case suback(SubAck)
    case unsubscribe(Unsubscribe)
    case unsuback(SubAck)
    case pingreq
    case pingresp
    case disconnect(Disconnect)
    /// MQTT 5 enhanced authentication (decoded so it can be refused precisely; reason code and properties).
    case auth(Disconnect)

    public var type: MQTTPacketType {
        switch self {
        case .connect: .connect
        case .connack: .connack
        case .publish: .publish
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .subscribe: .subscribe
        case .suback: .suback
        case .unsubscribe: .unsubscribe
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        case .auth: .auth
        }
    }

    public struct Connect: Sendable, Hashable {
        public var version: MQTTVersion
        /// May be empty (the server then assigns one, or refuses: 3.1.1 needs `cleanStart`).
        public var clientId: String
        /// 3.1.1 "Clean Session", 5 "Clean Start".
        public var cleanStart: Bool
        /// Seconds; 0 = no keep-alive.
        public var keepAliveSeconds: UInt16
        public var properties: MQTTProperties
        public var will: Will?
        public var username: String?
        public var password: [UInt8]?

        public init(
            version: MQTTVersion, clientId: String, cleanStart: Bool = true, keepAliveSeconds: UInt16 = 60,
            properties: MQTTProperties = MQTTProperties(), will: Will? = nil, username: String? = nil, password: [UInt8]? = nil
        ) {
            self.version = version
            self.clientId = clientId
            self.cleanStart = cleanStart
            self.keepAliveSeconds = keepAliveSeconds
            self.properties = properties
            self.will = will
            self.username = username
            self.password = password
        }

        public struct Will: Sendable, Hashable {
            public var qos: MQTTQoS
            public var retain: Bool
            public var topic: String
            public var payload: [UInt8]
            /// MQTT 5 will properties.
            public var properties: MQTTProperties

            public init(qos: MQTTQoS, retain: Bool, topic: String, payload: [UInt8], properties: MQTTProperties = MQTTProperties()) {
                self.qos = qos
                self.retain = retain
                self.topic = topic
                self.payload = payload
                self.properties = properties
            }
        }
    }

    public struct ConnAck: Sendable, Hashable {
        public var sessionPresent: Bool
        /// 3.1.1: the return code (0 accepted … 5 not authorized); 5: the reason code.
        public var reasonCode: UInt8
        public var properties: MQTTProperties

        public init(sessionPresent: Bool, reasonCode: UInt8, properties: MQTTProperties = MQTTProperties()) {
            self.sessionPresent = sessionPresent
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }

    public struct Publish: Sendable, Hashable {
        public var dup: Bool
        public var qos: MQTTQoS
        public var retain: Bool
        /// Empty only in MQTT 5 with a topic alias.
        public var topic: String
        /// Present exactly when `qos` > 0 (never 0).
        public var packetId: UInt16?
        public var properties: MQTTProperties
        public var payload: [UInt8]

        public init(
            dup: Bool = false, qos: MQTTQoS, retain: Bool = false, topic: String, packetId: UInt16?,
            properties: MQTTProperties = MQTTProperties(), payload: [UInt8]
        ) {
            self.dup = dup
            self.qos = qos
            self.retain = retain
            self.topic = topic
            self.packetId = packetId
            self.properties = properties
            self.payload = payload
        }
    }

    public struct Ack: Sendable, Hashable {
        public var packetId: UInt16
        /// 5 only; 0 = success.
        public var reasonCode: UInt8
        public var properties: MQTTProperties

        public init(packetId: UInt16, reasonCode: UInt8 = 0, properties: MQTTProperties = MQTTProperties()) {
            self.packetId = packetId
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }

    public struct Subscription: Sendable, Hashable {
        public var filter: String
        /// The maximum QoS the client asks for.
        public var qos: MQTTQoS
        /// MQTT 5 subscription options (false / 0 in 3.1.1).
        public var noLocal: Bool
        public var retainAsPublished: Bool
        /// 0, 1 or 2.
        public var retainHandling: UInt8

        public init(filter: String, qos: MQTTQoS, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: UInt8 = 0) {
            self.filter = filter
            self.qos = qos
            self.noLocal = noLocal
            self.retainAsPublished = retainAsPublished
            self.retainHandling = retainHandling
        }
    }

    public struct Subscribe: Sendable, Hashable {
        public var packetId: UInt16
        public var properties: MQTTProperties
        /// At least one.
        public var subscriptions: [Subscription]

        public init(packetId: UInt16, properties: MQTTProperties = MQTTProperties(), subscriptions: [Subscription]) {
            self.packetId = packetId
            self.properties = properties
            self.subscriptions = subscriptions
        }
    }

    /// SUBACK (one code per filter: the granted QoS or a failure) and UNSUBACK (5: one reason code per filter;
    /// 3.1.1: none).
    public struct SubAck: Sendable, Hashable {
        public var packetId: UInt16
        public var properties: MQTTProperties
        public var reasonCodes: [UInt8]

        public init(packetId: UInt16, properties: MQTTProperties = MQTTProperties(), reasonCodes: [UInt8]) {
            self.packetId = packetId
            self.properties = properties
            self.reasonCodes = reasonCodes
        }
    }

    public struct Unsubscribe: Sendable, Hashable {
        public var packetId: UInt16
        public var properties: MQTTProperties
        /// At least one.
        public var filters: [String]

        public init(packetId: UInt16, properties: MQTTProperties = MQTTProperties(), filters: [String]) {
            self.packetId = packetId
            self.properties = properties
            self.filters = filters
        }
    }

    /// DISCONNECT (and AUTH, which has the same shape): a reason code (5 only) and properties.
    public struct Disconnect: Sendable, Hashable {
        public var reasonCode: UInt8
        public var properties: MQTTProperties

        public init(reasonCode: UInt8 = 0, properties: MQTTProperties = MQTTProperties()) {
            self.reasonCode = reasonCode
            self.properties = properties
        }
    }
}
