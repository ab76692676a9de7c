import NIOCore

/// A minimal JSON reader for the server's small answers (`{"accepted":…}`): decoding tens of
/// thousands of them a second with `JSONDecoder` would cost the load generator a noticeable share of a core.
enum MiniJSON: Sendable, Equatable {
    case object([String: MiniJSON])
    case array([MiniJSON])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    static func parse(_ buffer: ByteBuffer) -> MiniJSON? {
        parse(buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [])
    }

    static func parse(_ bytes: [UInt8]) -> MiniJSON? {
        var parser = Parser(bytes: bytes)
        guard let value = parser.value() else { return nil }
        parser.skipSpace()
        return parser.index == parser.bytes.count ? value : nil
    }

    subscript(key: String) -> MiniJSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var int: Int? {
        if case .number(let d) = self, let i = Int(exactly: d) { return i }
        return nil
    }

    var double: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var array: [MiniJSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0
        var depth = 0

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 32 || bytes[index] == 9 || bytes[index] == 10 || bytes[index] == 13 {
                index += 1
            }
        }

        mutating func value() -> MiniJSON? {
            skipSpace()
            guard index < bytes.count, depth < 64 else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                depth += 1
                defer { depth -= 1 }
                var object: [String: MiniJSON] = [:]
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
                while true {
                    skipSpace()
                    guard case .string(let key)? = stringValue() else { return nil }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                    index += 1
                    guard let v = value() else { return nil }
                    object[key] = v
                    skipSpace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
                    return nil
                }
            case UInt8(ascii: "["):
                index += 1
                depth += 1
                defer { depth -= 1 }
                var array: [MiniJSON] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
                while true {
                    guard let v = value() else { return nil }
                    array.append(v)
                    skipSpace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
                    return nil
                }
            case UInt8(ascii: "\""):
                return stringValue()
            case UInt8(ascii: "t"):
                return literal("true", .bool(true))
            case UInt8(ascii: "f"):
                return literal("false", .bool(false))
            case UInt8(ascii: "n"):
                return literal("null", .null)
            default:
                let start = index
                while index < bytes.count, let c = Optional(bytes[index]),
                      (c >= 48 && c <= 57) || c == 45 || c == 43 || c == 46 || c == 101 || c == 69 {
                    index += 1
                }
                guard index > start, let d = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else { return nil }
                return .number(d)
            }
        }

        mutating func literal(_ word: String, _ value: MiniJSON) -> MiniJSON? {
            let w = Array(word.utf8)
            guard index + w.count <= bytes.count, Array(bytes[index..<index + w.count]) == w else { return nil }
            index += w.count
            return value
        }

        mutating func stringValue() -> MiniJSON? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let c = bytes[index]
                index += 1
                if c == UInt8(ascii: "\"") { return .string(String(decoding: out, as: UTF8.self)) }
                if c == UInt8(ascii: "\\") {
                    guard index < bytes.count else { return nil }
                    let e = bytes[index]
                    index += 1
                    switch e {
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "r"): out.append(13)
                    case UInt8(ascii: "b"): out.append(8)
                    case UInt8(ascii: "f"): out.append(12)
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count,
                              let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
                        else { return nil }
                        index += 4
                        // Surrogates are not needed for the server's ASCII answers; keep a replacement.
                        out.append(contentsOf: String(Unicode.Scalar(code).map(Character.init) ?? "\u{FFFD}").utf8)
                    default: out.append(e)
                    }
                } else {
                    out.append(c)
                }
            }
            return nil
        }
    }
}
