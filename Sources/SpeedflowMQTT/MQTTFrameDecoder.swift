import NIOCore

/// Turns a connection's bytes into `MQTTPacket`s for a NIO pipeline (`ByteToMessageHandler(MQTTFrameDecoder(…))`).
///
/// A packet whose header declares more than `maxPacketSize` bytes fails at once (`packetTooLarge`), so no more
/// than one maximum-size packet is ever buffered; any error ends decoding (MQTT cannot skip a bad packet) and is
/// passed on through `errorCaught`.
public struct MQTTFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket

    public private(set) var decoder: MQTTDecoder

    public init(maxPacketSize: Int, version: MQTTVersion? = nil) {
        decoder = MQTTDecoder(maxPacketSize: maxPacketSize, version: version)
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        let result = try buffer.withUnsafeReadableBytes { bytes throws(MQTTError) in try decoder.decode(bytes) }
        guard let (packet, length) = result else { return nil }
        buffer.moveReaderIndex(forwardBy: length)
        return packet
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decode(buffer: &buffer)
    }
}

extension ByteBuffer {
    /// Appends `packet` as encoded for `version`.
    public mutating func writeMQTTPacket(_ packet: MQTTPacket, version: MQTTVersion) {
        writeBytes(packet.encode(version: version))
    }
}
