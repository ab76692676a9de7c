/// Reads the data types of MQTT (§1.5) from a packet's bytes, never past them: every read checks what is left
/// and throws `malformedPacket` naming what was cut.
struct MQTTReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int
    /// Reads stop here (a packet's end, or a property block's end).
    private(set) var end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        offset = 0
        end = bytes.count
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset == end }

    private mutating func take(_ n: Int, _ what: String) throws(MQTTError) -> Int {
        guard n >= 0, n <= remaining else { throw .malformed("the packet ends inside \(what)") }
        let start = offset
        offset += n
        return start
    }

    mutating func byte(_ what: String) throws(MQTTError) -> UInt8 {
        bytes[try take(1, what)]
    }

    mutating func uint16(_ what: String) throws(MQTTError) -> UInt16 {
        let i = try take(2, what)
        return UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
    }

    mutating func uint32(_ what: String) throws(MQTTError) -> UInt32 {
        let i = try take(4, what)
        return UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
    }

    /// A Variable Byte Integer (§1.5.5): at most four bytes, in the fewest bytes that hold the value.
    mutating func varint(_ what: String) throws(MQTTError) -> Int {
        var value = 0
        var shift = 0
        for n in 0..<4 {
            let b = try byte(what)
            value |= Int(b & 0x7F) << shift
            if b & 0x80 == 0 {
                // A last byte of 0 after others is a longer encoding of a smaller number.
                if n > 0 && b == 0 { throw .malformed("\(what) is not in its shortest encoding") }
                return value
            }
            shift += 7
        }
        throw .malformed("\(what) is longer than four bytes")
    }

    mutating func bytes(_ n: Int, _ what: String) throws(MQTTError) -> [UInt8] {
        let i = try take(n, what)
        return Array(bytes[i..<(i + n)])
    }

    /// Binary Data: a two-byte length, then that many bytes.
    mutating func binary(_ what: String) throws(MQTTError) -> [UInt8] {
        let n = Int(try uint16("the length of \(what)"))
        return try bytes(n, what)
    }

    /// A UTF-8 Encoded String (§1.5.4): well-formed UTF-8 (no surrogates, no over-long forms) without U+0000.
    mutating func string(_ what: String) throws(MQTTError) -> String {
        let n = Int(try uint16("the length of \(what)"))
        let i = try take(n, what)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)])
        if slice.contains(0) { throw .malformed("\(what) contains U+0000") }
        guard let s = String(validating: slice, as: UTF8.self) else { throw .malformed("\(what) is not valid UTF-8") }
        return s
    }

    /// The rest of the current range.
    mutating func rest() -> [UInt8] {
        let r = Array(bytes[offset..<end])
        offset = end
        return r
    }

    /// Runs `body` with reads limited to the next `length` bytes, which it must consume exactly.
    mutating func within<T>(
        _ length: Int, _ what: String, _ body: (inout MQTTReader) throws(MQTTError) -> T
    ) throws(MQTTError) -> T {
        guard length <= remaining else { throw .malformed("\(what) (\(length) bytes) runs past the packet") }
        let outer = end
        end = offset + length
        let value = try body(&self)
        guard isAtEnd else { throw .malformed("\(what) has \(remaining) bytes left over") }
        end = outer
        return value
    }

    /// Fails unless every byte of the packet was read.
    func expectEnd(_ what: String) throws(MQTTError) {
        if !isAtEnd { throw .malformed("\(what) has \(remaining) unexpected bytes at its end") }
    }
}

/// Writes MQTT's data types. Inputs must be representable (strings and binary data ≤ 65,535 bytes, variable
/// integers < 2²⁸): packets the codec decoded always are.
struct MQTTWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func uint16(_ v: UInt16) {
        bytes.append(UInt8(v >> 8))
        bytes.append(UInt8(v & 0xFF))
    }

    mutating func uint32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(shift)) & 0xFF)) }
    }

    mutating func varint(_ value: Int) {
        precondition(value >= 0 && value <= MQTTFrame.maxRemainingLength, "MQTT variable byte integer out of range: \(value)")
        var v = value
        repeat {
            var b = UInt8(v & 0x7F)
            v >>= 7
            if v > 0 { b |= 0x80 }
            bytes.append(b)
        } while v > 0
    }

    mutating func binary(_ data: [UInt8]) {
        precondition(data.count <= 0xFFFF, "MQTT binary data longer than 65,535 bytes")
        uint16(UInt16(data.count))
        bytes.append(contentsOf: data)
    }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= 0xFFFF, "MQTT string longer than 65,535 bytes")
        uint16(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    static func varintSize(_ value: Int) -> Int {
        value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
    }
}
