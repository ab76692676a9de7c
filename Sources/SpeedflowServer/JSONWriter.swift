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

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

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

    mutating func number(_ v: Int64) { raw(String(v)) }
    mutating func number(_ v: Int) { raw(String(v)) }

    /// Shortest round-trip representation; non-finite values (never produced for data) become `null`.
    mutating func number(_ v: Double?) {
        guard let v, v.isFinite else { return raw("null") }
        raw(v.description)
    }

    mutating func number(_ v: Int?) {
        guard let v else { return raw("null") }
        raw(String(v))
    }

    mutating func number(_ v: Int64?) {
        guard let v else { return raw("null") }
        raw(String(v))
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
