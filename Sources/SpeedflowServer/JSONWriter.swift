import SpeedflowModel

/// Minimal JSON text builder for the hot responses (ingest ack, windows), where explicit `null`s and
/// full-precision doubles matter and `JSONEncoder`'s generic machinery costs more than the query itself.
/// Only for keys and values we produce; arbitrary strings go through `string(_:)`, which escapes.
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ s: String) {
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// A timestamp as a JSON string (`Timestamp.format`), written without making a string.
    mutating func timestamp(_ ms: Int64?) {
        guard let ms else { return raw("null") }
        bytes.append(34)
        Timestamp.append(ms, to: &bytes)
        bytes.append(34)
    }

    /// Decimal digits straight into the buffer (a query answer writes ~10 integers per window).
    mutating func decimal<I: FixedWidthInteger & SignedInteger>(_ v: I) {
        if v < 0 { bytes.append(45) }
        var magnitude = v.magnitude
        guard magnitude >= 10 else { return bytes.append(48 + UInt8(magnitude)) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var i = 20
            while magnitude > 0 {
                i -= 1
                digits[i] = 48 + UInt8(magnitude % 10)
                magnitude /= 10
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i...]))
        }
    }

    /// `{"reason":count,…}`, reasons in name order: the ingest answer's and `/stats`' `rejected_by_reason`.
    mutating func reasonCounts<N: BinaryInteger>(_ counts: [RejectionReason: N]) {
        raw("{")
        for (i, (reason, n)) in counts.sorted(by: { $0.key.rawValue < $1.key.rawValue }).enumerated() {
            if i > 0 { raw(",") }
            string(reason.rawValue)
            raw(":")
            raw(String(n))
        }
        raw("}")
    }

    mutating func number(_ v: Int64) { decimal(v) }
    mutating func number(_ v: Int) { decimal(v) }

    /// Shortest round-trip representation; non-finite values (never produced for data) become `null`.
    mutating func number(_ v: Double?) {
        guard let v, v.isFinite else { return raw("null") }
        raw(v.description)
    }

    mutating func number(_ v: Int?) {
        guard let v else { return raw("null") }
        decimal(v)
    }

    mutating func number(_ v: Int64?) {
        guard let v else { return raw("null") }
        decimal(v)
    }

    mutating func bool(_ v: Bool?) {
        guard let v else { return raw("null") }
        raw(v ? "true" : "false")
    }

    /// An array of strings, or `null`.
    mutating func strings(_ values: [String]?) {
        guard let values else { return raw("null") }
        raw("[")
        for (i, v) in values.enumerated() {
            if i > 0 { raw(",") }
            string(v)
        }
        raw("]")
    }

    mutating func string(_ s: String?) {
        guard let s else { return raw("null") }
        bytes.append(34)
        for c in s.utf8 {
            switch c {
            case 34: raw("\\\"")
            case 92: raw("\\\\")
            case 10: raw("\\n")
            case 13: raw("\\r")
            case 9: raw("\\t")
            case 0..<32:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                raw("\\u00")
                bytes.append(hex[Int(c >> 4)])
                bytes.append(hex[Int(c & 15)])
            default: bytes.append(c)
            }
        }
        bytes.append(34)
    }
}
