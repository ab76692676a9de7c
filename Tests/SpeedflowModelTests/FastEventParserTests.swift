import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

// MARK: Comparing the fast path with the JSONDecoder-only path (the oracle)

/// Every observable part of a `RawEvent` (doubles by bit pattern, so -0.0 and 0.0 differ).
func describeRaw(_ r: RawEvent) -> String {
    func f<T>(_ field: RawEvent.Field<T>, _ show: (T) -> String) -> String {
        switch field {
        case .absent: "absent"
        case .null: "null"
        case .wrongType: "wrongType"
        case .value(let v): "value(\(show(v)))"
        }
    }
    let str: (String) -> String = { "\"" + $0.unicodeScalars.map { $0.escaped(asASCII: true) }.joined() + "\"" }
    return "obj=\(r.isObject) kvfv=\(f(r.kvfvId, str)) ts=\(f(r.timestamp, str)) "
        + "speed=\(f(r.speed) { "\($0)/\(String($0.bitPattern, radix: 16))" }) id=\(f(r.eventId, str)) "
        + "lane=\(f(r.lane) { "\($0)" }) plate=\(f(r.plate, str)) extra=\(r.extra.map(str) ?? "nil") "
        + "seq=\(f(r.seq) { "\($0)" }) epoch=\(f(r.seqEpoch) { "\($0)" })"
}

func describeElements(_ elements: [Result<RawEvent, RejectionReason>]) -> [String] {
    elements.map {
        switch $0 {
        case .success(let r): describeRaw(r)
        case .failure(let reason): "failure(\(reason.rawValue))"
        }
    }
}

enum Outcome: Equatable {
    case batch(events: [CameraEvent], positions: [Int], rejections: [Rejection], count: Int, raws: [String])
    case error(EventBatch.DecodeError)
}

func outcome(_ body: [UInt8], ndjson: Bool, fast: Bool) -> Outcome {
    let data = Data(body)
    do {
        let batch = try EventBatch.decode(data, ndjson: ndjson, policy: .init(), nowMs: nowMs, useFastPath: fast)
        let raws = try EventBatch.rawElements(data, ndjson: ndjson, useFastPath: fast)
        return .batch(
            events: batch.events, positions: batch.positions, rejections: batch.rejections, count: batch.elementCount,
            raws: describeElements(raws))
    } catch {
        return .error(error)
    }
}

/// Asserts that both paths agree on `body`; returns the outcome.
@discardableResult
func expectSameAsOracle(
    _ body: [UInt8], ndjson: Bool, _ note: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Outcome {
    let fast = outcome(body, ndjson: ndjson, fast: true)
    let slow = outcome(body, ndjson: ndjson, fast: false)
    if fast != slow {
        Issue.record(
            "fast path differs from JSONDecoder (\(note()), ndjson \(ndjson)) on body:\n\(String(decoding: body, as: UTF8.self))\nfast: \(fast)\noracle: \(slow)",
            sourceLocation: sourceLocation)
    }
    return slow
}

@discardableResult
func expectSameAsOracle(
    _ body: String, ndjson: Bool, sourceLocation: SourceLocation = #_sourceLocation
) -> Outcome {
    expectSameAsOracle(Array(body.utf8), ndjson: ndjson, sourceLocation: sourceLocation)
}

/// What the fast parser alone says about one object (`nil` = declined).
func fastObject(_ text: String) -> RawEvent? {
    fastSingle(Array(text.utf8))
}

func fastSingle(_ bytes: [UInt8]) -> RawEvent? {
    bytes.withUnsafeBufferPointer { FastEventParser.decodeSingle($0.baseAddress!, $0.count) }
}

/// Whether the fast path gives up on an array body (the reference path then decides).
func fastArrayGivesUp(_ body: String) -> Bool {
    var sink = ElementCollector()
    return !Array(body.utf8).withUnsafeBufferPointer { FastEventParser.decodeArray($0.baseAddress!, $0.count, into: &sink) }
}

// MARK: Random bodies

struct BodyGenerator {
    var rng: SeededRandom

    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }

    /// Whitespace between tokens (no newline: NDJSON elements stay on their line unless asked).
    mutating func ws() -> String {
        chance(0.75) ? "" : pick([" ", "  ", "\t", " \t ", "\r"])
    }

    static let plainStrings = [
        "KV12345", "A123БВ68", "KV12345-000123", "", "x", "bad id", "日本語", "😀 emoji", "tab\tinside",
        String(repeating: "z", count: 70), "a/b", "Ω≈ç√", "e\u{301}", "ascii-only_1.2",
    ]
    static let escapedStrings = [
        #"a\"b"#, #"back\\slash"#, #"sl\/ash"#, #"\b\f\n\r\t"#, #"\u0041\u00e9\u0416"#, #"\ud83d\ude00"#,
        #"KV\u0031\u0032"#, #"\u0000nul"#, #"\uD83D\uDE00x"#, #"plain\u005fesc"#,
        // Invalid or doubtful: the fast path must decline or agree.
        #"\ud800"#, #"\udc00x"#, #"\ud800\u0041"#, #"\x"#, #"\u12"#, #"\u12G4"#,
    ]
    static let numbers = [
        "0", "-0", "1", "2", "85", "85.2", "-85.2", "0.5", "300", "300.0", "300.0000000001", "1e2", "1E2", "1e+2",
        "8.52e1", "852e-1", "2.0", "2e0", "2.5", "-1", "255", "256", "-0.0", "0.0", "1e-7", "1e400", "-1e400",
        "1e-400", "4.9e-324", "2.2250738585072014e-308", "123456789012345", "1234567890123456",
        "12345678901234567890", "9007199254740993", "85.19999999999999928946", "0.1", "1.7976931348623157e308",
        "100000000000000000000000000000.5", "3.0e0", "1.5e1",
        // Not JSON numbers: the whole element must be judged by JSONDecoder.
        "01", "1.", ".5", "-", "1e", "+1", "NaN", "Infinity", "0x10", "1.5.3", "--1", "1e+",
    ]

    mutating func timestamp() -> String {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: "2025-04-05T10:15:30Z"
        case 1: Timestamp.format(nowMs + 3_600_000)
        case 2: "yesterday"
        default: Timestamp.format(nowMs - Int64.random(in: 0..<86_400_000, using: &rng))
        }
    }

    mutating func stringLiteral() -> String {
        chance(0.7) ? "\"" + pick(Self.plainStrings) + "\"" : "\"" + pick(Self.escapedStrings) + "\""
    }

    /// A value for `key`: mostly well typed, sometimes null, wrong types, nested or broken.
    mutating func value(for key: String) -> String {
        let r = Double.random(in: 0..<1, using: &rng)
        if r < 0.06 { return "null" }
        if r < 0.09 { return pick(["true", "false"]) }
        if r < 0.12 { return pick(["{}", "[]", "[1,2]", "{\"a\":[null]}", "[\"x\"]"]) }
        if r < 0.14 { return pick(["nul", "tru", "\"unterminated", "{", "]", "\"a\"\"b\""]) }
        let typed: Bool = r < 0.85
        switch key {
        case "kvfv_id": return typed ? "\"" + pick(["KV12345", "KV1", "CAM.7_x-9", "bad id", ""]) + "\"" : pickAny()
        case "timestamp": return typed ? "\"" + timestamp() + "\"" : pickAny()
        case "vehicle_speed", "lane", "seq", "seq_epoch": return typed ? pick(Self.numbers) : pickAny()
        case "event_id", "plate_number": return typed ? stringLiteral() : pickAny()
        default: return pickAny()
        }
    }

    mutating func pickAny() -> String {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0, 1: pick(Self.numbers)
        case 2, 3: stringLiteral()
        default: pick(["{\"nested\":{\"deep\":[1,{\"x\":\"y\"}]}}", "[1,\"two\",3.5,null,true]", "9223372036854775807", "-9223372036854775808", "18446744073709551616"])
        }
    }

    static let knownKeys = ["kvfv_id", "timestamp", "vehicle_speed", "event_id", "lane", "plate_number", "seq", "seq_epoch"]
    static let unknownKeys = [
        "direction", "camera_model", "zz", "a", "speed_limit", "kvfv\\u005fid", "Lane", "vehicle_speed ", "Seq", "seq_", "seq_epocH",
    ]

    mutating func object() -> String {
        var keys = Self.knownKeys.filter { _ in chance(0.9) }
        if chance(0.2) { keys.append(pick(Self.unknownKeys)) }
        if chance(0.05) { keys.append(pick(Self.unknownKeys)) }
        if chance(0.04) { keys.append(pick(Self.knownKeys)) }  // duplicate key
        keys.shuffle(using: &rng)
        let members = keys.map { key in ws() + "\"" + key + "\"" + ws() + ":" + ws() + value(for: key) + ws() }
        var text = "{" + (members.isEmpty ? ws() : members.joined(separator: ",")) + "}"
        if chance(0.02) { text = pick(["{,}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\":1}}", "{\"lane\":1 \"x\":2}", "{'a':1}"]) }
        return text
    }

    /// An element's bytes, sometimes with invalid UTF-8 or a raw control character inside a string.
    mutating func element() -> [UInt8] {
        if chance(0.04) { return Array(pick(["17", "\"str\"", "null", "[1,2]", "true", "[]", "-0.5", "[{\"kvfv_id\":\"KV1\"}]"]).utf8) }
        var bytes = Array(object().utf8)
        if chance(0.03), let q = bytes.lastIndex(of: UInt8(ascii: "\"")) {
            bytes.insert(pick([0xFF, 0xC3, 0x80, 0x01, 0x1F]), at: q)  // just before some closing quote
        }
        return bytes
    }

    mutating func arrayBody() -> [UInt8] {
        let n = Int.random(in: 0..<12, using: &rng)
        var body = Array((pick(["", " ", "\n", "\r\n "]) + "[" + ws()).utf8)
        for i in 0..<n {
            if i > 0 { body += Array((ws() + (chance(0.2) ? ",\n" : ",") + ws()).utf8) }
            body += element()
        }
        if chance(0.03) { body += Array(",".utf8) }  // trailing comma: malformed
        body += Array((ws() + "]" + pick(["", " ", "\n", " x"])).utf8)
        return body
    }

    mutating func ndjsonBody() -> [UInt8] {
        let n = Int.random(in: 1..<14, using: &rng)
        var body: [UInt8] = []
        for i in 0..<n {
            if i > 0 { body += Array(pick(["\n", "\r\n", "\n\n", "\n \t\n", "\r\n\r\n"]).utf8) }
            var e = element()
            if chance(0.03), let c = e.firstIndex(of: UInt8(ascii: ",")) { e.insert(UInt8(ascii: "\n"), at: c + 1) }  // split value
            if chance(0.03) { e += Array((pick([" ", ""]) + "{\"lane\":1}").utf8) }  // two values on one line
            body += Array(ws().utf8) + e + Array(ws().utf8)
        }
        if chance(0.5) { body += Array(pick(["\n", "\r\n", "\n\n  \n"]).utf8) }
        return body
    }

    mutating func singleBody() -> [UInt8] {
        var text = Array(object().utf8)
        if chance(0.3) {
            // Pretty-printed: newlines between members.
            text = Array(String(decoding: text, as: UTF8.self).replacingOccurrences(of: ",\"", with: ",\n  \"").utf8)
        }
        return Array(pick(["", " ", "\n"]).utf8) + text + Array(pick(["", "\n", " \r\n"]).utf8)
    }
}

@Suite("FastEventParser: same results as JSONDecoder, faster")
struct FastEventParserTests {
    @Test("property: random JSON array bodies decode exactly as with JSONDecoder", arguments: 0..<4)
    func randomArrays(shard: Int) {
        var g = BodyGenerator(rng: SeededRandom(seed: 0xA11A_0000 + UInt64(shard)))
        for n in 0..<1_000 {
            expectSameAsOracle(g.arrayBody(), ndjson: false, "array shard \(shard) #\(n)")
        }
    }

    @Test("property: random NDJSON bodies decode exactly as with JSONDecoder", arguments: 0..<4)
    func randomNDJSON(shard: Int) {
        var g = BodyGenerator(rng: SeededRandom(seed: 0x2D15_0000 + UInt64(shard)))
        for n in 0..<1_000 {
            let body = g.ndjsonBody()
            expectSameAsOracle(body, ndjson: true, "ndjson shard \(shard) #\(n)")
            // Without the content type, a body starting with `{` is a single object or NDJSON.
            expectSameAsOracle(body, ndjson: false, "ndjson as plain shard \(shard) #\(n)")
        }
    }

    @Test("property: random single-object bodies decode exactly as with JSONDecoder")
    func randomSingles() {
        var g = BodyGenerator(rng: SeededRandom(seed: 0x51_6E1E))
        for n in 0..<3_000 {
            expectSameAsOracle(g.singleBody(), ndjson: false, "single #\(n)")
        }
    }

    @Test("the hot path is taken: plain events of known fields are parsed without JSONDecoder")
    func hotPathTaken() throws {
        let text = #"{"kvfv_id":"KV12345","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":85.2,"plate_number":"A123БВ68","event_id":"KV12345-000123","lane":2}"#
        let raw = try #require(fastObject(text))
        #expect(describeRaw(raw) == describeRaw(try JSONDecoder().decode(RawEvent.self, from: Data(text.utf8))))
        #expect(fastObject(#"{ "lane" : null , "vehicle_speed" : "85" , "kvfv_id" : 7 }"#) != nil)
        #expect(fastObject("{}") != nil)
        #expect(fastObject(#"{"event_id":"a\"b\u00e9\ud83d\ude00"}"#) != nil)

        // A random NDJSON body of valid, known-field events: every line answered by the fast parser.
        var g = BodyGenerator(rng: SeededRandom(seed: 7))
        let lines = (0..<200).map { i in
            #"{"kvfv_id":"KV\#(i)","timestamp":"\#(g.timestamp())","vehicle_speed":\#(Double(i) / 3),"lane":\#(i % 4)}"#
        }
        let body = Data(lines.joined(separator: "\r\n").utf8)
        var scratch: [UInt8] = []
        let answered = body.withUnsafeBytes { buffer in
            let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var count = 0, start = 0
            for line in lines {
                if FastEventParser.parseObject(p, start, start + line.utf8.count, &scratch) != nil { count += 1 }
                start += line.utf8.count + 2
            }
            return count
        }
        #expect(answered == lines.count)
        expectSameAsOracle(Array(body), ndjson: true)
    }

    @Test("answered without JSONDecoder: unknown fields of any shape, containers as wrong-typed known fields")
    func answered() {
        for text in [
            #"{"kvfv_id":"KV1","direction":"north"}"#, #"{"lane":{"n":1}}"#, #"{"lane":[1]}"#, #"{"kvfv_id":[[{"a":[]}]]}"#,
            #"{"z":1,"a":[1,2.5,-0,"x\u00e9\n/",null,true,{"b":{},"a":[]}],"m":{"k":1e400},"e":1e-400,"big":12345678901234567890}"#,
            #"{"d":1,"d":2,"x":{"q":1,"q":[2]}}"#, #"{"lane":1,"lane":2}"#, #"{"lane":"x","lane":2,"kvfv_id":"A","kvfv_id":[1e400]}"#, #"{"kvfv\u005fid":"KV1","\u00e9":1,"é":2,"e\u0301":3,"日":[],"A":{"Å":1,"A\u030a":2}}"#, #"{"s":"\u0000\u001f\u007f\b\f\t\r\"\\"}"#, #"{"n":[2.0,2e0,1E2,852e-1,4.9e-324,-1e-400]}"#,
        ] {
            #expect(fastObject(text) != nil, "\(text)")
            expectSameAsOracle(text, ndjson: false)
            expectSameAsOracle(text, ndjson: true)
            expectSameAsOracle("[" + text + "]", ndjson: false)
        }
    }

    @Test("property: random unknown values (nested, numbers, escapes, duplicates) give JSONDecoder's extra", arguments: 0..<4)
    func randomUnknownValues(shard: Int) {
        var rng = SeededRandom(seed: 0xE0_7A00 + UInt64(shard))
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        let keys = ["a", "b", "Z", "_x", "10", "9", "a b", "a/b", "zz", "Lane", "kvfv", "e", "é", "e\u{301}", "A\u{30A}", "Å", "日", "\\u00e9", "kvfv\\u005fid", "lane", "\\\"q", "\\ud800"]
        let invalid: Set = ["01", "1.", ".5", "-", "1e", "+1", "NaN", "Infinity", "0x10", "1.5.3", "--1", "1e+"]
        let scalars = BodyGenerator.numbers.filter { !invalid.contains($0) }
            + ["1e18", "9007199254740993.0", "123456789012345.0", "1.5e1", "-2.50", "0e0", "1e19", "3.14159", "1e-320"]
            + ["null", "true", "false", #""""#, #""plain""#, #""é日😀""#, #""a\"b\\c\/d""#, #""\u0041\u00e9\ud83d\ude00""#, #""\b\f\n\r\t\u0001""#, #""\ud800""#, #""x\udc00""#, #""\ud800\u0041""#, "1.0000000000000001", "9007199254740991.0", "-4503599627370497e0"]
        func value(_ depth: Int) -> String {
            let r = Int.random(in: 0..<10, using: &rng)
            if depth >= 4 || r < 6 { return pick(scalars) }
            let n = Int.random(in: 0..<4, using: &rng)
            if r < 8 { return "[" + (0..<n).map { _ in value(depth + 1) }.joined(separator: ",") + "]" }
            return "{" + (0..<n).map { _ in "\"" + pick(keys) + "\":" + value(depth + 1) }.joined(separator: ",") + "}"
        }
        for n in 0..<500 {
            var members = [#""kvfv_id":"KV1""#, #""timestamp":"\#(Timestamp.format(nowMs - 1000))""#, #""vehicle_speed":80"#]
            for _ in 0..<Int.random(in: 1..<4, using: &rng) { members.append("\"" + pick(keys) + "\":" + value(1)) }
            members.shuffle(using: &rng)
            let text = "{" + members.joined(separator: ",") + "}"
            expectSameAsOracle(Array(text.utf8), ndjson: true, "unknown values shard \(shard) #\(n)")
            expectSameAsOracle(Array(("[" + text + "," + text + "]").utf8), ndjson: false, "unknown values shard \(shard) #\(n)")
        }
    }

    @Test("scalars not reproduced here are read by JSONDecoder alone, the element is still answered")
    func scalarsByJSONDecoder() {
        for text in [
            #"{"vehicle_speed":1e400}"#, #"{"vehicle_speed":1e-400}"#, #"{"vehicle_speed":4.9e-324}"#,
            // Found by the fuzz target: JSONDecoder's Double refuses a zero written with a non-zero exponent digit.
            #"{"vehicle_speed":0e2}"#, #"{"vehicle_speed":-0.0E+1}"#, #"{"vehicle_speed":0e0}"#, #"{"lane":0e2}"#,
            #"{"lane":12345678901234567}"#, #"{"lane":1e300}"#, #"{"lane":9007199254740993.0}"#, #"{"vehicle_speed":"a\nb"}"#,
            #"{"plate_number":"\ud800"}"#, #"{"event_id":"x\udc00"}"#, #"{"x":[1e18,9007199254740993.0,-1.5e300,1e400]}"#,
            #"{"x":12345678901234567.89e1,"y":{"z":-9223372036854775296.0}}"#,
            // Keys JSONDecoder cannot read: no object at all at the top, an undecodable value inside.
            #"{"\ud800":1,"kvfv_id":"A"}"#, #"{"kvfv_id":"A","a\udc00b":[[1]]}"#, #"{"kvfv_id":"A","x":{"\ud800":1},"y":2}"#,
            #"{"kvfv_id":"A","x":[{"a":1,"\udc00":{"b":[]}}],"y":2}"#,
        ] {
            #expect(fastObject(text) != nil, "\(text)")
            expectSameAsOracle(text, ndjson: false)
            expectSameAsOracle(text, ndjson: true)
            expectSameAsOracle("[" + text + "]", ndjson: false)
        }
    }

    @Test("declined: invalid JSON, invalid UTF-8")
    func declined() {
        for text in [
            #"{"lane":01}"#, "{\"plate_number\":\"a\tb\"}", #"{"a":1,}"#, #"{"\ud800":01}"#, #"{"x":{"\udc00":1,}}"#,
        ] {
            #expect(fastObject(text) == nil, "\(text)")
            expectSameAsOracle(text, ndjson: false)
            expectSameAsOracle(text, ndjson: true)
            expectSameAsOracle("[" + text + "]", ndjson: false)
        }
        let invalidUTF8: [UInt8] = Array(#"{"plate_number":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(fastSingle(invalidUTF8) == nil)
        expectSameAsOracle(invalidUTF8, ndjson: false)
        expectSameAsOracle(invalidUTF8, ndjson: true)
        expectSameAsOracle(Array("[".utf8) + invalidUTF8 + Array("]".utf8), ndjson: false)
    }

    @Test("numbers: integers, fractions, exponents, signs for the speed and the lane", arguments: BodyGenerator.numbers)
    func numbers(number: String) {
        for key in ["vehicle_speed", "lane", "plate_number"] {
            let text = #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","\#(key)":\#(number)}"#
            expectSameAsOracle(text, ndjson: false)
            expectSameAsOracle(text + "\n" + text, ndjson: true)
            expectSameAsOracle("[" + text + "," + text + "]", ndjson: false)
        }
    }

    @Test("lane: 2.0 and 2e0 are the integer 2, 2.5 is the wrong type, as JSONDecoder says")
    func laneNotations() throws {
        func lane(_ n: String) throws -> String {
            describeRaw(try #require(fastObject(#"{"lane":\#(n)}"#)))
        }
        #expect(try lane("2.0").contains("lane=value(2)"))
        #expect(try lane("2e0").contains("lane=value(2)"))
        #expect(try lane("-0").contains("lane=value(0)"))
        #expect(try lane("2.5").contains("lane=wrongType"))
        for n in ["2.0", "2e0", "2.5", "-0", "20E-1", "0.2e1"] { expectSameAsOracle(#"{"lane":\#(n)}"#, ndjson: false) }
    }

    @Test("strings: escapes and surrogate pairs decode as JSONDecoder decodes them", arguments: BodyGenerator.escapedStrings)
    func escapes(escaped: String) {
        for key in ["event_id", "plate_number", "kvfv_id", "timestamp", "vehicle_speed", "lane"] {
            let text = #"{"\#(key)":"\#(escaped)"}"#
            expectSameAsOracle(text, ndjson: false)
            expectSameAsOracle(text + "\n{}", ndjson: true)
            expectSameAsOracle("[" + text + "]", ndjson: false)
        }
    }

    @Test("unknown fields keep JSONDecoder's sorted re-encoding in extra, beside fast-parsed elements")
    func extras() {
        let plain = #"{"kvfv_id":"KV1","timestamp":"\#(Timestamp.format(nowMs - 1000))","vehicle_speed":80}"#
        let extra = #"{"kvfv_id":"KV1","zeta":[1,{"b":2,"a":1}],"timestamp":"\#(Timestamp.format(nowMs - 1000))","alpha":9007199254740993,"vehicle_speed":80}"#
        let outcome = expectSameAsOracle([plain, extra, plain].joined(separator: "\n"), ndjson: true)
        guard case .batch(let events, _, _, _, _) = outcome else {
            Issue.record("expected a batch")
            return
        }
        #expect(events.map(\.extra) == [nil, #"{"alpha":9007199254740993,"zeta":[1,{"a":1,"b":2}]}"#, nil])
        expectSameAsOracle("[" + [plain, extra, plain].joined(separator: ",") + "]", ndjson: false)
    }

    @Test("NDJSON line boundaries: a value split over lines, two values on a line, blank and CRLF lines")
    func lineBoundaries() {
        let e = #"{"kvfv_id":"KV1","timestamp":"\#(Timestamp.format(nowMs - 1000))","vehicle_speed":80}"#
        for body in [
            e + "\r\n\r\n" + e + "\n",
            "{\"kvfv_id\":\"KV1\",\n\"vehicle_speed\":80}\n" + e,
            e + " " + e + "\n" + e,
            e + e,
            "\n \t\r\n" + e + "\n\r\n",
            e + "\n[" + e + "]\n17\n\"s\"\nnull",
            e + "\n{\"a\":1\n}",
            e + "\n}",
            e + "\n" + e + ",",
        ] {
            expectSameAsOracle(body, ndjson: true)
            expectSameAsOracle(body, ndjson: false)
        }
    }

    @Test("whole-body errors are unchanged: malformed arrays, garbage, empty bodies")
    func wholeBodyErrors() {
        let e = #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":80}"#
        // Malformed for JSONDecoder: the same 400, with the same message.
        for body in ["[" + e + "", "[" + e + "] x", "[" + e + " " + e + "]", "[,]", "[" + e + "}]", "[" + e + "]]", "[[" + e + "]", "[", "[{"] {
            let outcome = expectSameAsOracle(body, ndjson: false)
            #expect(outcome == .error(.init(reason: "malformed_json", message: errorMessage(body))), "\(body)")
            #expect(fastArrayGivesUp(body), "\(body)")
        }
        // JSONDecoder is lenient about some of these (trailing commas, leading zeros, raw control characters):
        // the fast path declines them and the outcome is whatever JSONDecoder says.
        for body in [
            "[" + e + ",]", "[" + e + ",{\"a\":01}]", "[\"\u{1}\"]", "{\"a\":1} {", "  ", "", "x",
            "[" + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "]",
        ] {
            expectSameAsOracle(body, ndjson: false)
            expectSameAsOracle(body, ndjson: true)
        }
        #expect(expectSameAsOracle("[]", ndjson: false) == .batch(events: [], positions: [], rejections: [], count: 0, raws: []))
        #expect(expectSameAsOracle(" [ \r\n] ", ndjson: false) == .batch(events: [], positions: [], rejections: [], count: 0, raws: []))
    }

    func errorMessage(_ body: String) -> String {
        do {
            _ = try EventBatch.decode(Data(body.utf8), ndjson: false, policy: .init(), nowMs: nowMs, useFastPath: false)
            return "(no error)"
        } catch {
            return error.message
        }
    }
}
