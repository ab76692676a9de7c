/// Why bytes are not an acceptable MQTT packet: a stable `code` and a message for people.
///
/// Every error ends the connection: MQTT has no way to skip a bad packet. A server answers it with the v5 reason
/// code of `reasonCode` (DISCONNECT, or CONNACK while connecting) where the protocol version allows one.
public struct MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The bytes break the packet grammar (lengths, flags, reserved bits, UTF-8, trailing bytes).
        public static let malformedPacket = Code(raw: "malformed_packet")
        /// The packet parses but breaks a rule of the protocol (a property twice, a zero packet id, a reason code
        /// the packet may not carry).
        public static let protocolError = Code(raw: "protocol_error")
        /// The packet's declared size exceeds the receiver's maximum (detected from the fixed header, before the
        /// body is read).
        public static let packetTooLarge = Code(raw: "packet_too_large")
        /// CONNECT names a protocol level other than 4 (3.1.1) or 5: answered with CONNACK 0x01 / 0x84.
        public static let unsupportedProtocolVersion = Code(raw: "unsupported_protocol_version")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    static func malformed(_ message: String) -> MQTTError { MQTTError(.malformedPacket, message) }
    static func protocolError(_ message: String) -> MQTTError { MQTTError(.protocolError, message) }

    /// The MQTT 5 reason code for this error (0x81 malformed, 0x82 protocol error, 0x95 too large, 0x84
    /// unsupported protocol version).
    public var reasonCode: UInt8 {
        switch code {
        case .packetTooLarge: 0x95
        case .protocolError: 0x82
        case .unsupportedProtocolVersion: 0x84
        default: 0x81
        }
    }

    public var description: String { "\(code): \(message)" }
}
