/// A strict RFC 8259 syntax check of one JSON value: iterative, linear in the input, nesting bounded.
///
/// It runs before any text reaches `JSONDecoder`, for two reasons. `JSONDecoder` (with `RawEvent`'s lenient
/// `JSONValue` for unknown fields) costs superlinear time in nesting depth, so deep values must never reach it;
/// and it is lenient where RFC 8259 is not (`080`, `5.`, trailing commas, raw control characters), which made
/// number forms a mix of whole-request and per-element errors. Text that passes here is valid JSON within the
/// depth limit; what it means is still `JSONDecoder`'s and the fast parser's business.
enum JSONSyntax {
    /// Why a value was refused. `offset` is absolute in the buffer checked.
    enum Problem: Error, Hashable {
        case invalid(offset: Int, what: String)
        case tooDeep(offset: Int)

        var message: String {
            switch self {
            case .invalid(let offset, let what): "invalid JSON at byte \(offset): \(what)"
            case .tooDeep(let offset):
                "JSON nested deeper than \(EventBatch.maxElementDepth) levels within one element, at byte \(offset)"
            }
        }
    }

    /// Checks that `p[start..<end]` is exactly one JSON value with optional surrounding whitespace, whose
    /// arrays and objects nest at most `maxDepth` levels (a value that is itself an object or array is level 1).
    /// `nil` when it is.
    static func check(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, maxDepth: Int) -> Problem? {
        enum Expect { case value, valueOrClose, key, keyOrClose, colon, commaOrClose, done }
        // One bit per level would do; a byte per level keeps it simple and the depth is bounded anyway.
        var stack: [Bool] = []  // true = object
        stack.reserveCapacity(Swift.min(maxDepth, 64))
        var expect = Expect.value
        var i = start
        while true {
            while i < end && isSpace(p[i]) { i += 1 }
            guard i < end else {
                return expect == .done ? nil : .invalid(offset: i, what: "unexpected end of input")
            }
            let b = p[i]
            switch expect {
            case .done:
                return .invalid(offset: i, what: "unexpected data after the value")
            case .colon:
                guard b == UInt8(ascii: ":") else { return .invalid(offset: i, what: "expected ':'") }
                i += 1
                expect = .value
            case .commaOrClose:
                let inObject = stack[stack.count - 1]
                if b == UInt8(ascii: ",") {
                    i += 1
                    expect = inObject ? .key : .value
                } else if b == (inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    i += 1
                    stack.removeLast()
                    expect = stack.isEmpty ? .done : .commaOrClose
                } else {
                    return .invalid(offset: i, what: inObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            case .key, .keyOrClose:
                if expect == .keyOrClose && b == UInt8(ascii: "}") {
                    i += 1
                    stack.removeLast()
                    expect = stack.isEmpty ? .done : .commaOrClose
                    continue
                }
                guard b == UInt8(ascii: "\"") else { return .invalid(offset: i, what: "expected a string key") }
                if let problem = string(p, &i, end) { return problem }
                expect = .colon
            case .value, .valueOrClose:
                if expect == .valueOrClose && b == UInt8(ascii: "]") {
                    i += 1
                    stack.removeLast()
                    expect = stack.isEmpty ? .done : .commaOrClose
                    continue
                }
                switch b {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard stack.count < maxDepth else { return .tooDeep(offset: i) }
                    stack.append(b == UInt8(ascii: "{"))
                    i += 1
                    expect = b == UInt8(ascii: "{") ? .keyOrClose : .valueOrClose
                    continue
                case UInt8(ascii: "\""):
                    if let problem = string(p, &i, end) { return problem }
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    if let problem = number(p, &i, end) { return problem }
                case UInt8(ascii: "t"):
                    guard literal(p, &i, end, "true") else { return .invalid(offset: i, what: "invalid literal") }
                case UInt8(ascii: "f"):
                    guard literal(p, &i, end, "false") else { return .invalid(offset: i, what: "invalid literal") }
                case UInt8(ascii: "n"):
                    guard literal(p, &i, end, "null") else { return .invalid(offset: i, what: "invalid literal") }
                default:
                    return .invalid(offset: i, what: "expected a value")
                }
                expect = stack.isEmpty ? .done : .commaOrClose
            }
        }
    }

    /// A number in RFC 8259 grammar `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, which must end at a
    /// delimiter: `080`, `5.`, `.5`, `+80`, `1.e5`, `0x10` are refused.
    @inline(__always)
    static func number(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Problem? {
        let start = i
        func bad() -> Problem { .invalid(offset: start, what: "invalid number") }
        if p[i] == UInt8(ascii: "-") {
            i += 1
        }
        guard i < end, isDigit(p[i]) else { return bad() }
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && p[i] == UInt8(ascii: ".") {
            i += 1
            guard i < end, isDigit(p[i]) else { return bad() }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < end, isDigit(p[i]) else { return bad() }
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end {
            switch p[i] {
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 32, 10, 13, 9: break
            default: return bad()
            }
        }
        return nil
    }

    /// A string at its opening quote: no raw control characters, only RFC 8259 escapes, well-formed UTF-8.
    @inline(__always)
    static func string(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int) -> Problem? {
        let start = i
        i += 1
        while i < end {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return nil
            }
            if b < 0x20 { return .invalid(offset: i, what: "control character in a string") }
            if b == UInt8(ascii: "\\") {
                guard i + 1 < end else { break }
                switch p[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard i + 6 <= end, (2..<6).allSatisfy({ isHex(p[i + $0]) }) else {
                        return .invalid(offset: i, what: "invalid \\u escape")
                    }
                    i += 6
                default:
                    return .invalid(offset: i, what: "invalid escape")
                }
                continue
            }
            if b < 0x80 {
                i += 1
                continue
            }
            guard let n = utf8Sequence(p, i, end) else { return .invalid(offset: i, what: "invalid UTF-8") }
            i += n
        }
        return .invalid(offset: start, what: "unterminated string")
    }

    /// Length of the well-formed UTF-8 sequence at `i` (lead byte ≥ 0x80), or `nil` (Unicode Table 3-7).
    @inline(__always)
    static func utf8Sequence(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int? {
        let b0 = p[i]
        func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool { i + k < end && (lo...hi).contains(p[i + k]) }
        switch b0 {
        case 0xC2...0xDF: return cont(1) ? 2 : nil
        case 0xE0: return cont(1, 0xA0) && cont(2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF: return cont(1) && cont(2) ? 3 : nil
        case 0xED: return cont(1, 0x80, 0x9F) && cont(2) ? 3 : nil
        case 0xF0: return cont(1, 0x90) && cont(2) && cont(3) ? 4 : nil
        case 0xF1...0xF3: return cont(1) && cont(2) && cont(3) ? 4 : nil
        case 0xF4: return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : nil
        default: return nil
        }
    }

    @inline(__always)
    static func literal(_ p: UnsafePointer<UInt8>, _ i: inout Int, _ end: Int, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard end - i >= n else { return false }
        for k in 0..<n where p[i + k] != word.utf8Start[k] { return false }
        i += n
        if i < end {
            switch p[i] {
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 32, 10, 13, 9: break
            default: return false
            }
        }
        return true
    }

    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 10 || b == 13 || b == 9 }
    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- UInt8(ascii: "0") < 10 }
    @inline(__always)
    static func isHex(_ b: UInt8) -> Bool {
        isDigit(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }
}
