import SpeedflowModel

/// ClickHouse's `RowBinary` format: little-endian fixed-width numbers, LEB128-length-prefixed strings and arrays,
/// a leading null byte for `Nullable`. Exact for floats (no decimal round trip), and cheap to write and read.
/// Supported by ClickHouse 18.16 and every later version, for input and output.
struct RowBinaryWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func uint8(_ v: UInt8) { bytes.append(v) }

    mutating func uint16(_ v: UInt16) { fixed(v) }
    mutating func uint32(_ v: UInt32) { fixed(v) }
    mutating func uint64(_ v: UInt64) { fixed(v) }
    mutating func int32(_ v: Int32) { fixed(v) }
    mutating func int64(_ v: Int64) { fixed(v) }
    mutating func float64(_ v: Double) { fixed(v.bitPattern) }

    private mutating func fixed<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob(_ b: [UInt8]) {
        varint(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    mutating func uint64Array(_ a: [UInt64]) {
        varint(UInt64(a.count))
        for v in a { uint64(v) }
    }

    mutating func nullableString(_ s: String?) {
        if let s {
            uint8(0)
            string(s)
        } else {
            uint8(1)
        }
    }

    mutating func nullableInt32(_ v: Int32?) {
        if let v {
            uint8(0)
            int32(v)
        } else {
            uint8(1)
        }
    }

    /// `Date`: days since 1970-01-01.
    mutating func date(ms: Int64) {
        uint16(UInt16(clamping: ms.floorDiv(86_400_000)))
    }
}

struct RowBinaryReader {
    struct Truncated: Error, CustomStringConvertible {
        var description: String { "ClickHouse answer ended in the middle of a row" }
    }

    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { index >= bytes.count }

    private mutating func fixed<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let n = MemoryLayout<T>.size
        guard index + n <= bytes.count else { throw Truncated() }
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            bytes.withUnsafeBytes { src in
                dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[index..<index + n]))
            }
        }
        index += n
        return T(littleEndian: v)
    }

    mutating func uint8() throws -> UInt8 { try fixed(UInt8.self) }
    mutating func uint64() throws -> UInt64 { try fixed(UInt64.self) }
    mutating func int64() throws -> Int64 { try fixed(Int64.self) }
    mutating func float64() throws -> Double { Double(bitPattern: try fixed(UInt64.self)) }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.count else { throw Truncated() }
            let b = bytes[index]
            index += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw Truncated() }
        }
    }

    mutating func blob() throws -> ArraySlice<UInt8> {
        let n = Int(try varint())
        guard index + n <= bytes.count else { throw Truncated() }
        defer { index += n }
        return bytes[index..<index + n]
    }

    mutating func string() throws -> String { String(decoding: try blob(), as: UTF8.self) }

    mutating func uint64Array() throws -> [UInt64] {
        let n = Int(try varint())
        guard index + n * 8 <= bytes.count else { throw Truncated() }
        var out = [UInt64]()
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try uint64()) }
        return out
    }
}
