import Foundation

/// A hand-written, allocation-light scanner for the hot path of `EventBatch.decode`: batch elements that are JSON
/// objects of the six known fields, plus unknown fields of any shape within the nesting limit.
///
/// It answers only where it is sure to produce exactly what `JSONDecoder` + `RawEvent`'s lenient `Decodable`
/// would, including `extra` (unknown fields re-encoded as `JSONEncoder` with sorted keys writes them), in time
/// linear in the element and without recursion deeper than `EventBatch.maxElementDepth`. A few scalars whose
/// conversion it does not reproduce (numbers beyond Double, subnormals, integral numbers from 2^53 written with a
/// fraction or exponent, lone surrogates in known fields) are handed to `JSONDecoder` alone, one scalar at a time.
/// Anything else is *declined*: per element, the element's bytes are checked by `JSONSyntax` (strict, linear,
/// depth-bounded) and go to `JSONDecoder` in chunks, or for the whole body (`false`/`nil`), so the reference path
/// decides, including its errors. Only text that is not valid JSON is declined in practice: no valid element within
/// the nesting limit is handed whole to `JSONDecoder`. Valid elements that are not objects are answered here
/// (`not_an_object` needs no decoding), so a body of millions of `1`s never reaches `JSONDecoder`.
enum FastEventParser {
    typealias Element = Result<RawEvent, RejectionReason>

    // MARK: Bodies

    /// A JSON array body: every element goes to `sink`. `false`: gave up (the body is not strictly valid, or
    /// `JSONDecoder` refused a declined element); the caller resets the sink and takes the reference path, which
    /// then decides, including the error.
    static func decodeArray<Sink: ElementSink>(_ p: UnsafePointer<UInt8>, _ end: Int, into sink: inout Sink) -> Bool {
        var scratch: [UInt8] = []
        var i = skipSpace(p, 0, end)
        guard i < end, p[i] == .openBracket else { return false }
        i = skipSpace(p, i + 1, end)
        guard i < end else { return false }
        var index = 0
        var chunk = SpanChunk()
        if p[i] == .closeBracket {
            i += 1
        } else {
            while true {
                let start = i
                if let (raw, next) = parseObject(p, start, end, &scratch) {
                    sink.add(index, .success(raw))
                    i = next
                } else {
                    // Declined: find its end, check it strictly (linear, depth-bounded) before anything decodes it.
                    guard let next = skipValue(p, start, end),
                        JSONSyntax.check(p, start, next, maxDepth: EventBatch.maxElementDepth) == nil
                    else { return false }
                    if p[start] == .openBrace {
                        chunk.append(index, start..<next)
                        if chunk.isFull && !decodeChunk(p, &chunk, into: &sink) { return false }
                    } else {
                        sink.add(index, .success(nonObject))
                    }
                    i = next
                }
                index += 1
                i = skipSpace(p, i, end)
                guard i < end else { return false }
                if p[i] == .comma {
                    i = skipSpace(p, i + 1, end)
                    continue
                }
                guard p[i] == .closeBracket else { return false }
                i += 1
                break
            }
        }
        guard skipSpace(p, i, end) == end else { return false }
        return decodeChunk(p, &chunk, into: &sink)
    }

    /// What `JSONDecoder` + `RawEvent` make of any valid JSON value that is not an object.
    static let nonObject: RawEvent = {
        var raw = RawEvent()
        raw.isObject = false
        return raw
    }()

    /// Declined objects of an array body in one `JSONDecoder` pass (`[e1,e2,...]`, syntax-checked); `false` if it
    /// refused them.
    static func decodeChunk<Sink: ElementSink>(_ p: UnsafePointer<UInt8>, _ chunk: inout SpanChunk, into sink: inout Sink) -> Bool {
        guard !chunk.spans.isEmpty else { return true }
        defer { chunk.removeAll() }
        guard let decoded = try? JSONDecoder().decode([RawEvent].self, from: chunk.joined(p, separator: .comma, brackets: true)),
            decoded.count == chunk.spans.count
        else { return false }
        for (span, raw) in zip(chunk.spans, decoded) { sink.add(span.index, .success(raw)) }
        return true
    }

    /// A body that should be one JSON object. `nil`: declined (not one flat object of known fields, or unsure).
    static func decodeSingle(_ p: UnsafePointer<UInt8>, _ end: Int) -> RawEvent? {
        var scratch: [UInt8] = []
        let start = skipSpace(p, 0, end)
        guard let (raw, next) = parseObject(p, start, end, &scratch), skipSpace(p, next, end) == end else { return nil }
        return raw
    }

    /// NDJSON: one element per non-blank line, with `EventBatch.decodeLines` semantics (a line that is not
    /// exactly one valid JSON value is `malformed_json`, one nested too deep `nesting_too_deep`). Lines declined
    /// here go through `EventBatch.decodeLineChunk` in chunks.
    static func decodeLines<Sink: ElementSink>(
        _ p: UnsafePointer<UInt8>, _ end: Int, into sink: inout Sink
    ) -> EventBatch.LineStats {
        var scratch: [UInt8] = []
        var stats = EventBatch.LineStats()
        var chunk = SpanChunk()
        var lineStart = 0
        while lineStart < end {
            let lineEnd = lineEnd(p, lineStart, end)
            defer { lineStart = lineEnd + 1 }
            let first = skipSpace(p, lineStart, lineEnd)
            if first == lineEnd { continue }  // blank line: not an element
            let index = stats.lines
            stats.lines += 1
            if let (raw, next) = parseObject(p, first, lineEnd, &scratch), skipSpace(p, next, lineEnd) == lineEnd {
                sink.add(index, .success(raw))
            } else if p[first] != .openBrace, JSONSyntax.check(p, first, lineEnd, maxDepth: EventBatch.maxElementDepth) == nil {
                sink.add(index, .success(nonObject))
            } else {
                chunk.append(index, lineStart..<lineEnd)
                if chunk.isFull { EventBatch.decodeLineChunk(p, &chunk, stats: &stats, into: &sink) }
            }
        }
        EventBatch.decodeLineChunk(p, &chunk, stats: &stats, into: &sink)
        return stats
    }

    /// The index of the `\n` ending the line that starts at `start`, or `end`.
    @inline(__always)
    static func lineEnd(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int {
        guard start < end, let nl = memchr(p + start, Int32(UInt8.newline), end - start) else { return end }
        return UnsafeRawPointer(nl) - UnsafeRawPointer(p)
    }

    // MARK: One object

    /// Parses an event object starting at `start` (which must be `{`); returns the event and the index after `}`.
    /// `nil`: declined.
    static func parseObject(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ scratch: inout [UInt8]
    ) -> (RawEvent, Int)? {
        var i = start
        guard i < end, p[i] == .openBrace else { return nil }
        i = skipSpace(p, i + 1, end)
        guard i < end else { return nil }
        var raw = RawEvent()
        if p[i] == .closeBrace { return (raw, i + 1) }
        var seen: UInt8 = 0
        var extras: [String: JSONValue] = [:]
        while true {
            // Key: a known name (first occurrence decides), or an unknown name.
            let keyStart = i
            guard let key = parseKey(p, &i, end, &scratch) else {
                // A key JSONDecoder cannot read (a lone surrogate escape): it cannot open the object at all, so
                // `RawEvent` sees no object. Only if the element is otherwise valid JSON.
                i = keyStart
                guard JSONSyntax.string(p, &i, end) == nil, let next = skipValue(p, start, end),
                    JSONSyntax.check(p, start, next, maxDepth: EventBatch.maxElementDepth) == nil
                else { return nil }
                return (nonObject, next)
            }
            i = skipSpace(p, i, end)
            guard i < end, p[i] == .colon else { return nil }
            i = skipSpace(p, i + 1, end)
            guard i < end else { return nil }
            let known: KnownField?
            switch key {
            case .plain(let range): known = knownField(p + range.lowerBound, range.count)
            case .unescaped(let text):
                var text = text
                known = text.withUTF8 { knownField($0.baseAddress!, $0.count) }
            }
            guard let field = known else {
                // Unknown field: parsed here (linear, depth-bounded) into what JSONDecoder + `JSONValue` would
                // give; the first of duplicate names wins, as with JSONDecoder.
                guard let value = unknownValue(p, &i, end, level: 2, &scratch) else { return nil }
                let key = key.string(p)
                if extras[key] == nil {
                    switch value {
                    case .value(let v): extras[key] = v
                    case .unrepresentable: extras[key] = .null  // RawEvent: `(try? decode(JSONValue)) ?? .null`
                    }
                }
                if let next = afterMember(p, &i, end) {
                    if next { continue }
                    if !extras.isEmpty { raw.extra = encodeExtras(extras) }
                    return (raw, i)
                }
                return nil
            }
            let bit: UInt8 = 1 << field.rawValue
            if seen & bit != 0 {
                // A repeated known name: JSONDecoder reads the first occurrence only; this one must merely be valid.
                let start = i
                guard let next = skipValue(p, start, end),
                    JSONSyntax.check(p, start, next, maxDepth: EventBatch.maxElementDepth - 1) == nil
                else { return nil }
                i = next
                guard let more = afterMember(p, &i, end) else { return nil }
                if more { continue }
                if !extras.isEmpty { raw.extra = encodeExtras(extras) }
                return (raw, i)
            }
            seen |= bit

            switch field {
            case .kvfvId:
                guard let f = stringField(p, &i, end, &scratch) else { return nil }
                raw.kvfvId = f
            case .timestamp:
                guard let f = stringField(p, &i, end, &scratch) else { return nil }
                raw.timestamp = f
            case .eventId:
                guard let f = stringField(p, &i, end, &scratch) else { return nil }
                raw.eventId = f
            case .plate:
                guard let f = stringField(p, &i, end, &scratch) else { return nil }
                raw.plate = f
            case .speed:
                guard let f = doubleField(p, &i, end) else { return nil }
                raw.speed = f
            case .lane:
                guard let f = intField(p, &i, end) else { return nil }
                raw.lane = f
            case .seq:
                guard let f = intField(p, &i, end) else { return nil }
                raw.seq = f
            case .seqEpoch:
                guard let f = intField(p, &i, end) else { return nil }
                raw.seqEpoch = f
            }

            guard let next = afterMember(p, &i, end) else { return nil }
            if next { continue }
            if !extras.isEmpty { raw.extra = encodeExtras(extras) }
            return (raw, i)
        }
    }

    /// After a member's value: `,` (→ `true`, `i` at the next key) or `}` (→ `false`, `i` after it); `nil` else.
    @inline(__always)
    static func afterMember(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Bool? {
        i = skipSpace(p, i, end)
        guard i < end else { return nil }
        if p[i] == .comma {
            i = skipSpace(p, i + 1, end)
            return true
        }
        guard p[i] == .closeBrace else { return nil }
        i += 1
        return false
    }

    /// An object key: plain bytes of the body (the common case, no copy) or its unescaped text.
    enum Key {
        case plain(Range<Int>)
        case unescaped(String)

        func string(_ p: UnsafePointer<UInt8>) -> String {
            switch self {
            case .plain(let r): String(decoding: UnsafeBufferPointer(start: p + r.lowerBound, count: r.count), as: UTF8.self)
            case .unescaped(let s): s
            }
        }
    }

    /// A key at `i` (its opening quote); `i` ends after the closing quote. `nil`: not a valid key (raw control
    /// characters, invalid UTF-8 or escapes, lone surrogates).
    @inline(__always)
    static func parseKey(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ scratch: inout [UInt8]) -> Key? {
        guard i < end, p[i] == .quote else { return nil }
        let quote = i
        i += 1
        let keyStart = i
        while i < end {
            let b = p[i]
            if b == .quote {
                i += 1
                return .plain(keyStart..<(i - 1))
            }
            if b < 0x20 { return nil }
            if b == .backslash || b >= 0x80 {
                i = quote
                return parseString(p, &i, end, &scratch).map { .unescaped($0) }
            }
            i += 1
        }
        return nil
    }

    // MARK: Unknown fields

    /// What `JSONDecoder` makes of an unknown field's value through `JSONValue`: the value, or
    /// `unrepresentable` where its decoding throws (a number beyond Double, anywhere inside) and `RawEvent`
    /// keeps `null`.
    enum Unknown {
        case value(JSONValue)
        case unrepresentable
    }

    /// Parses an unknown field's value at `i` (nesting level `level`: a field's value is level 2, the element
    /// being level 1), recursing at most `EventBatch.maxElementDepth` levels. `nil`: declined (deeper, invalid,
    /// or what `JSONDecoder` would not read the same way).
    static func unknownValue(
        _ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, level: Int, _ scratch: inout [UInt8]
    ) -> Unknown? {
        guard i < end else { return nil }
        switch p[i] {
        case .quote:
            let start = i
            if let s = parseString(p, &i, end, &scratch) { return .value(.string(s)) }
            // Valid JSON text that is not valid Unicode (a lone surrogate escape): JSONDecoder cannot decode it.
            i = start
            return JSONSyntax.string(p, &i, end) == nil ? .unrepresentable : nil
        case UInt8(ascii: "n"):
            return literal(p, &i, end, "null") ? .value(.null) : nil
        case UInt8(ascii: "t"):
            return literal(p, &i, end, "true") ? .value(.bool(true)) : nil
        case UInt8(ascii: "f"):
            return literal(p, &i, end, "false") ? .value(.bool(false)) : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return unknownNumber(p, &i, end)
        case .openBracket:
            guard level <= EventBatch.maxElementDepth else { return nil }
            i = skipSpace(p, i + 1, end)
            guard i < end else { return nil }
            var items: [JSONValue] = []
            var unrepresentable = false
            if p[i] == .closeBracket {
                i += 1
                return .value(.array(items))
            }
            while true {
                guard let item = unknownValue(p, &i, end, level: level + 1, &scratch) else { return nil }
                switch item {
                case .value(let v): items.append(v)
                case .unrepresentable: unrepresentable = true
                }
                i = skipSpace(p, i, end)
                guard i < end else { return nil }
                if p[i] == .comma {
                    i = skipSpace(p, i + 1, end)
                    continue
                }
                guard p[i] == .closeBracket else { return nil }
                i += 1
                return unrepresentable ? .unrepresentable : .value(.array(items))
            }
        case .openBrace:
            guard level <= EventBatch.maxElementDepth else { return nil }
            let objectStart = i
            i = skipSpace(p, i + 1, end)
            guard i < end else { return nil }
            var members: [String: JSONValue] = [:]
            var unrepresentable = false
            if p[i] == .closeBrace {
                i += 1
                return .value(.object(members))
            }
            while true {
                let keyStart = i
                guard let key = parseKey(p, &i, end, &scratch)?.string(p) else {
                    // A key JSONDecoder cannot read makes the whole object undecodable (if it is valid JSON).
                    i = keyStart
                    guard JSONSyntax.string(p, &i, end) == nil, let next = skipValue(p, objectStart, end),
                        JSONSyntax.check(p, objectStart, next, maxDepth: EventBatch.maxElementDepth + 1 - level) == nil
                    else { return nil }
                    i = next
                    return .unrepresentable
                }
                i = skipSpace(p, i, end)
                guard i < end, p[i] == .colon else { return nil }
                i = skipSpace(p, i + 1, end)
                guard let item = unknownValue(p, &i, end, level: level + 1, &scratch) else { return nil }
                switch item {
                case .value(let v): if members[key] == nil { members[key] = v }
                case .unrepresentable: if members[key] == nil { unrepresentable = true }  // a later duplicate is never decoded
                }
                guard let next = afterMember(p, &i, end) else { return nil }
                if !next { return unrepresentable ? .unrepresentable : .value(.object(members)) }
            }
        default:
            return nil
        }
    }

    /// A number as `JSONValue` decodes it: `Int64` when exact (`2.0`, `2e0` and `-0` are integers, as
    /// `JSONDecoder`'s exact conversion makes them), else `Double`; beyond Double it is `unrepresentable`.
    static func unknownNumber(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Unknown? {
        let start = i
        guard let n = scanNumber(p, &i, end) else { return nil }
        if n.integral && n.digits <= 18 {
            let v = n.integerMagnitude
            return .value(.integer(n.negative ? -v : v))
        }
        let text = String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self)
        if n.integral {
            if let v = Int64(text) { return .value(.integer(v)) }
            guard let d = Double(text) else { return nil }
            return d.isFinite ? .value(.number(d)) : .unrepresentable
        }
        guard let d = Double(text) else { return nil }
        if !d.isFinite { return .unrepresentable }
        if d == 0 { return .value(.integer(0)) }
        if d != d.rounded(.towardZero) { return .value(.number(d)) }
        // Integral below 2^53: JSONDecoder's Int64 is strtod's Double converted exactly (so 1.0000000000000001 is
        // 1). From 2^53 it reparses the text as a Decimal: not reproduced here, so JSONDecoder reads the number
        // alone (the same `JSONValue` conversion, at the cost of one short decode).
        guard d.magnitude < 0x1p53 else {
            guard let v = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes: p + start, count: i - start)) else {
                return .unrepresentable
            }
            return .value(v)
        }
        return .value(.integer(Int64(d)))
    }

    /// `extra` as `RawEvent` writes it (`JSONEncoder`, `.sortedKeys`): keys in code-point order, no spaces, `/` escaped as `\/`, control characters as `\b \f \n \r \t` or `\u00xx`, numbers as
    /// Swift prints them.
    static func encodeExtras(_ extras: [String: JSONValue]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        encode(.object(extras), into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let v): out.append(contentsOf: String(v).utf8)
        case .number(let d): out.append(contentsOf: d.description.utf8)
        case .string(let s): encodeString(s, into: &out)
        case .array(let items):
            out.append(.openBracket)
            for (n, item) in items.enumerated() {
                if n > 0 { out.append(.comma) }
                encode(item, into: &out)
            }
            out.append(.closeBracket)
        case .object(let members):
            out.append(.openBrace)
            // JSONEncoder sorts keys by their Unicode scalars as written (not by String's canonical `<`).
            for (n, key) in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if n > 0 { out.append(.comma) }
                encodeString(key, into: &out)
                out.append(.colon)
                encode(members[key]!, into: &out)
            }
            out.append(.closeBrace)
        }
    }

    static func encodeString(_ s: String, into out: inout [UInt8]) {
        out.append(.quote)
        for b in s.utf8 {
            switch b {
            case .quote: out.append(contentsOf: [.backslash, .quote])
            case .backslash: out.append(contentsOf: [.backslash, .backslash])
            case UInt8(ascii: "/"): out.append(contentsOf: [.backslash, UInt8(ascii: "/")])
            case 0x08: out.append(contentsOf: [.backslash, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [.backslash, UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [.backslash, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [.backslash, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [.backslash, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [.backslash, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(.quote)
    }

    enum KnownField: UInt8 {
        case kvfvId, timestamp, speed, eventId, lane, plate, seq, seqEpoch
    }

    /// The eight names: only `timestamp` and `seq_epoch` share a length.
    @inline(__always)
    static func knownField(_ k: UnsafePointer<UInt8>, _ n: Int) -> KnownField? {
        @inline(__always) func equals(_ s: StaticString) -> Bool { memcmp(k, s.utf8Start, n) == 0 }
        switch n {
        case 7: return equals("kvfv_id") ? .kvfvId : nil
        case 9: return equals("timestamp") ? .timestamp : equals("seq_epoch") ? .seqEpoch : nil
        case 3: return equals("seq") ? .seq : nil
        case 13: return equals("vehicle_speed") ? .speed : nil
        case 8: return equals("event_id") ? .eventId : nil
        case 4: return equals("lane") ? .lane : nil
        case 12: return equals("plate_number") ? .plate : nil
        default: return nil
        }
    }

    // MARK: Field values

    /// `String` field: a string is `.value`, `null` is `.null`, a number or boolean is `.wrongType`.
    @inline(__always)
    static func stringField(
        _ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ scratch: inout [UInt8]
    ) -> RawEvent.Field<String>? {
        switch p[i] {
        case .quote:
            let start = i
            if let s = parseString(p, &i, end, &scratch) { return .value(s) }
            // Valid JSON that is not valid Unicode (a lone surrogate escape): JSONDecoder decides, on the string alone.
            i = start
            guard JSONSyntax.string(p, &i, end) == nil else { return nil }
            return scalarField(p, start, i, as: String.self)
        default:
            return otherValue(p, &i, end)
        }
    }

    /// What `RawEvent`'s field decoding makes of one scalar that this parser does not reproduce (a number beyond
    /// Double, a subnormal, a lone surrogate), asked of `JSONDecoder` for that scalar's text alone: the same
    /// conversion as inside the object, in time proportional to the scalar, never to the element's nesting.
    static func scalarField<T: Decodable & Sendable>(
        _ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, as type: T.Type
    ) -> RawEvent.Field<T> {
        if let v = try? JSONDecoder().decode(T.self, from: Data(bytes: p + start, count: end - start)) { return .value(v) }
        return .wrongType
    }

    /// A value that is not the field's own type: `null` is `.null`, any other valid value `.wrongType`; garbage
    /// declines (`nil`) so the reference path decides.
    @inline(__always)
    static func otherValue<T>(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> RawEvent.Field<T>? {
        switch p[i] {
        case .quote:
            let start = i
            if skipPlainString(p, &i, end) { return .wrongType }
            // Escapes (or a lone surrogate): never decoded for a wrong-typed field, only its validity matters.
            i = start
            return JSONSyntax.string(p, &i, end) == nil ? .wrongType : nil
        case UInt8(ascii: "n"):
            return literal(p, &i, end, "null") ? .null : nil
        case UInt8(ascii: "t"):
            return literal(p, &i, end, "true") ? .wrongType : nil
        case UInt8(ascii: "f"):
            return literal(p, &i, end, "false") ? .wrongType : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return scanNumber(p, &i, end) != nil ? .wrongType : nil
        case .openBracket, .openBrace:
            // Never decoded (a container is the wrong type for every known field): only its validity matters.
            let start = i
            guard let next = skipValue(p, start, end),
                JSONSyntax.check(p, start, next, maxDepth: EventBatch.maxElementDepth - 1) == nil
            else { return nil }
            i = next
            return .wrongType
        default:
            return nil
        }
    }

    /// `Double` field: what `JSONDecoder` gives (strtod of the number's text), declining overflow and underflow.
    @inline(__always)
    static func doubleField(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> RawEvent.Field<Double>? {
        switch p[i] {
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            guard let number = scanNumber(p, &i, end) else { return nil }
            if number.integral && number.digits <= 15 {
                // Exact: every integer below 10^15 is a Double, as strtod would give.
                let magnitude = Double(number.integerMagnitude)
                return .value(number.negative ? -magnitude : magnitude)
            }
            guard let d = parseDouble(p + start, i - start) else { return scalarField(p, start, i, as: Double.self) }
            return .value(d)
        default:
            return otherValue(p, &i, end)
        }
    }

    /// `Int` field: an integer literal is `.value`; `2.0`/`2e0` become 2 and `2.5` is `.wrongType`, as
    /// JSONDecoder's Double-then-exact conversion does; anything near or past 2^53 is declined.
    @inline(__always)
    static func intField(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> RawEvent.Field<Int>? {
        switch p[i] {
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = i
            guard let number = scanNumber(p, &i, end) else { return nil }
            if number.integral {
                guard number.digits <= 15 else { return scalarField(p, start, i, as: Int.self) }
                let v = Int(number.integerMagnitude)
                return .value(number.negative ? -v : v)
            }
            guard let d = parseDouble(p + start, i - start) else { return scalarField(p, start, i, as: Int.self) }
            guard d == d.rounded(.towardZero) else { return .wrongType }
            guard d.magnitude < 9.0e15, let v = Int(exactly: d) else { return scalarField(p, start, i, as: Int.self) }
            return .value(v)
        default:
            return otherValue(p, &i, end)
        }
    }

    /// `Double(String)` (strtod, correctly rounded, C locale) on a validated JSON number. `nil` where
    /// JSONDecoder would refuse or where we are not sure: infinite, rounded to zero, subnormal.
    static func parseDouble(_ s: UnsafePointer<UInt8>, _ n: Int) -> Double? {
        guard n <= 64 else { return nil }
        guard let d = Double(String(decoding: UnsafeBufferPointer(start: s, count: n), as: UTF8.self)),
            d.isFinite, d == 0 || d.magnitude >= Double.leastNormalMagnitude
        else { return nil }
        if d == 0 {
            // Zero for certain only when every digit, the exponent's too, is zero: JSONDecoder calls `1e-400`
            // and even `0e2` unrepresentable as a Double (found by the fuzz target). Anything else: not sure.
            for k in 0..<n {
                let b = s[k]
                if b >= UInt8(ascii: "1") && b <= UInt8(ascii: "9") { return nil }
            }
        }
        return d
    }

    // MARK: Lexical pieces

    struct Number {
        var negative: Bool
        var integral: Bool
        /// Number of digits of the integer part (exact value below when `integral && digits <= 15`).
        var digits: Int
        var integerMagnitude: Int64
    }

    /// A number in strict JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. `nil` if the
    /// text does not follow it (the caller declines; what comes after the number is checked by the caller).
    @inline(__always)
    static func scanNumber(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Number? {
        var n = Number(negative: false, integral: true, digits: 0, integerMagnitude: 0)
        if p[i] == UInt8(ascii: "-") {
            n.negative = true
            i += 1
            guard i < end else { return nil }
        }
        guard isDigit(p[i]) else { return nil }
        if p[i] == UInt8(ascii: "0") {
            n.digits = 1
            i += 1
            if i < end && isDigit(p[i]) { return nil }  // leading zero
        } else {
            while i < end && isDigit(p[i]) {
                if n.digits < 18 { n.integerMagnitude = n.integerMagnitude &* 10 &+ Int64(p[i] &- UInt8(ascii: "0")) }
                n.digits += 1
                i += 1
            }
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            n.integral = false
            i += 1
            guard i < end, isDigit(p[i]) else { return nil }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            n.integral = false
            i += 1
            guard i < end else { return nil }
            if p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") {
                i += 1
                guard i < end else { return nil }
            }
            guard isDigit(p[i]) else { return nil }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        return n
    }

    /// A string value (at the opening quote) for a string field; escapes decoded; `nil` for raw control
    /// characters, invalid escapes, lone surrogates, invalid UTF-8, or no closing quote.
    @inline(__always)
    static func parseString(
        _ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ scratch: inout [UInt8]
    ) -> String? {
        i += 1
        let start = i
        var ascii = true
        while i < end {
            let b = p[i]
            if b == .quote {
                let bytes = UnsafeBufferPointer(start: p + start, count: i - start)
                i += 1
                if ascii { return String(decoding: bytes, as: UTF8.self) }
                return String(validating: bytes, as: UTF8.self)
            }
            if b == .backslash {
                i = start
                return parseEscapedString(p, &i, end, &scratch)
            }
            if b < 0x20 { return nil }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        return nil
    }

    /// The slow half of `parseString`: `i` is just after the opening quote.
    static func parseEscapedString(
        _ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ scratch: inout [UInt8]
    ) -> String? {
        scratch.removeAll(keepingCapacity: true)
        while i < end {
            let b = p[i]
            i += 1
            if b == .quote {
                return String(validating: scratch, as: UTF8.self)
            }
            if b < 0x20 { return nil }
            guard b == .backslash else {
                scratch.append(b)
                continue
            }
            guard i < end else { return nil }
            let e = p[i]
            i += 1
            switch e {
            case .quote, .backslash, UInt8(ascii: "/"): scratch.append(e)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                guard let unit = hex4(p, &i, end) else { return nil }
                var scalar: UInt32
                switch unit {
                case 0xD800...0xDBFF:
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard i + 1 < end, p[i] == .backslash, p[i + 1] == UInt8(ascii: "u") else { return nil }
                    i += 2
                    guard let low = hex4(p, &i, end), (0xDC00...0xDFFF).contains(low) else { return nil }
                    scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                case 0xDC00...0xDFFF:
                    return nil
                default:
                    scalar = UInt32(unit)
                }
                guard let s = Unicode.Scalar(scalar) else { return nil }
                for u in UTF8.encode(s)! { scratch.append(u) }
            default:
                return nil
            }
        }
        return nil
    }

    @inline(__always)
    static func hex4(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> UInt16? {
        guard i + 4 <= end else { return nil }
        var v: UInt16 = 0
        for _ in 0..<4 {
            let c = p[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt16(d)
            i += 1
        }
        return v
    }

    /// Skips a string that JSONDecoder will never decode (a wrong-typed value): only plain strings without
    /// escapes or control characters, in well-formed UTF-8, are accepted, so its validity is not in doubt.
    @inline(__always)
    static func skipPlainString(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Bool {
        i += 1
        while i < end {
            let b = p[i]
            if b == .quote {
                i += 1
                return true
            }
            if b == .backslash || b < 0x20 { return false }
            if b < 0x80 {
                i += 1
            } else {
                // Invalid UTF-8 makes the body invalid JSON: decline, the syntax check says so.
                guard let n = JSONSyntax.utf8Sequence(p, i, end) else { return false }
                i += n
            }
        }
        return false
    }

    @inline(__always)
    static func literal(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard end - i >= n, memcmp(p + i, word.utf8Start, n) == 0 else { return false }
        i += n
        return true
    }

    /// The end of the JSON value at `start` (a declined element), found by bracket depth outside strings; the
    /// value itself is validated later by JSONDecoder. `nil` if it does not end inside the body.
    static func skipValue(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        var i = start
        var depth = 0
        while i < end {
            let b = p[i]
            switch b {
            case .quote:
                i += 1
                while i < end && p[i] != .quote {
                    i += p[i] == .backslash ? 2 : 1
                }
                guard i < end else { return nil }
                i += 1
                if depth == 0 { return i }
            case .openBrace, .openBracket:
                depth += 1
                i += 1
            case .closeBrace, .closeBracket:
                if depth == 0 { return i == start ? nil : i }
                depth -= 1
                i += 1
                if depth == 0 { return i }
            case .comma where depth == 0:
                return i == start ? nil : i
            default:
                if depth == 0 && isSpace(b) { return i == start ? nil : i }
                i += 1
            }
        }
        return depth == 0 && i > start ? i : nil
    }

    @inline(__always)
    static func skipSpace(_ p: UnsafePointer<UInt8>, _ from: Int, _ end: Int) -> Int {
        var i = from
        while i < end && isSpace(p[i]) { i += 1 }
        return i
    }

    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 10 || b == 13 || b == 9 }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }
}

extension UInt8 {
    fileprivate static let quote = UInt8(ascii: "\"")
    fileprivate static let backslash = UInt8(ascii: "\\")
    fileprivate static let openBrace = UInt8(ascii: "{")
    fileprivate static let closeBrace = UInt8(ascii: "}")
    fileprivate static let openBracket = UInt8(ascii: "[")
    fileprivate static let closeBracket = UInt8(ascii: "]")
    fileprivate static let comma = UInt8(ascii: ",")
    fileprivate static let colon = UInt8(ascii: ":")
    fileprivate static let newline = UInt8(ascii: "\n")
}
