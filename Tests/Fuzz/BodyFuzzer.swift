// libFuzzer target over the ingest body decoder, `EventBatch.decode`: gzip, JSON object, JSON array, NDJSON,
// unknown fields. Three decoders are compared on every input: the fast path (`useFastPath: true`, what the server
// runs), the oracle (`useFastPath: false`: syntax check + JSONDecoder only) and plain JSONDecoder as the decoder
// was before the strict syntax check (written out below); plus, when SpeedflowModel has `Gzip`, the gzip reader
// against an independent zlib reader.
//
// Not part of any SwiftPM target (Tests/Fuzz is not declared in Package.swift): `scripts/fuzz` compiles this file
// together with Sources/SpeedflowModel/*.swift into one module with `-sanitize=fuzzer,address`, so the model code
// is instrumented and its internals are visible. The model changes under this harness, so scripts/fuzz passes
// `-D` flags for what the sources have: SPEEDFLOW_FUZZ_GZIP (`enum Gzip`), SPEEDFLOW_FUZZ_STRICT_SYNTAX
// (`maxElementDepth`, the strict syntax check and its documented deviations), SPEEDFLOW_FUZZ_REJECTION_COUNTS
// (`rejectedByReason`, the bounded answer).
//
// An input is a request body as a camera would POST it; every body is decoded as a plain body (`ndjson: false`)
// and as `application/x-ndjson` (`ndjson: true`). A body starting with 1f 8b is gunzipped first. A failing input is
// directly reproducible with curl (`--data-binary @file`, plus `Content-Encoding: gzip` when it starts with 1f 8b).
//
// What counts as a finding (the process aborts, libFuzzer saves the input):
// - the fast path's result differs in anything from the oracle's: whole-body error reason, element count, events
//   (every field, speeds by bit pattern), positions, rejections (index, reason, field, camera), rejection counters;
// - the oracle differs from plain JSONDecoder, except on bodies showing a documented deviation
//   (`documentedDeviation`: number forms, nesting depth, trailing commas, raw control characters);
// - a result breaks the batch's own invariants (every element accounted for once and in order, counters agree
//   with the list, a detail limit only cuts the list, accepted events are valid and statistically harmless);
// - gzip: output over the limit, or a different verdict or different bytes than the reference reader;
// - and from libFuzzer/ASan: crashes, memory errors, `-timeout` (hangs, superlinear cost), `-rss_limit_mb`.

import Foundation

import CLibFuzzer  // Tests/Fuzz/CLibFuzzer: LLVMFuzzerMutate

#if SPEEDFLOW_FUZZ_GZIP
import CZlib
#endif

/// The server clock of every fuzzed request: 2026-11-22T12:00:00Z. Seed bodies use timestamps around it.
let fuzzNowMs: Int64 = 1_795_348_800_000
let fuzzPolicy = ValidationPolicy()

@_cdecl("LLVMFuzzerTestOneInput")
public func bodyFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    var body = Data(input)
    if size >= 2 && data[0] == 0x1f && data[1] == 0x8b {
        #if SPEEDFLOW_FUZZ_GZIP
        // A gzip body: the reader is fuzzed for crashes, hangs and limit violations; what it yields is decoded.
        guard let plain = checkGzip(input) else { return 0 }
        body = Data(plain)
        #endif
    }
    compareWithOracle(body, ndjson: false)
    compareWithOracle(body, ndjson: true)
    return 0
}

// MARK: Fast path vs oracle vs plain JSONDecoder

/// Everything `EventBatch.decode` makes observable (the HTTP answer, the events stored, per-camera health).
enum Outcome: Equatable, CustomStringConvertible {
    case batch(elementCount: Int, events: [String], positions: [Int], rejections: [Rejection], counts: String)
    case error(reason: String)

    var description: String {
        switch self {
        case .error(let reason): return "error(\(reason))"
        case .batch(let count, let events, let positions, let rejections, let counts):
            let rs = rejections.map { "#\($0.index) \($0.reason.rawValue) \($0.field ?? "-") kvfv=\($0.kvfvId ?? "-")" }
            return "batch(elements: \(count), positions: \(positions)\n  events: \(events.joined(separator: "\n          "))"
                + "\n  rejections: \(rs.joined(separator: "; "))\n  counts: \(counts))"
        }
    }
}

/// One event, every field; the speed by bit pattern so -0.0/0.0 and rounding differences show.
func describeEvent(_ e: CameraEvent) -> String {
    let str: (String?) -> String = { s in
        s.map { "\"" + $0.unicodeScalars.map { $0.escaped(asASCII: true) }.joined() + "\"" } ?? "nil"
    }
    return "kvfv=\(str(e.kvfvId)) ts=\(e.timestampMs) speed=\(e.speed)/\(String(e.speed.bitPattern, radix: 16)) "
        + "id=\(str(e.eventId)) lane=\(e.lane.map(String.init) ?? "nil") plate=\(str(e.plate)) extra=\(str(e.extra)) "
        + "seq=\(e.seq.map(String.init) ?? "nil") epoch=\(e.seqEpoch.map(String.init) ?? "nil")"
}

func outcome(_ batch: EventBatch) -> Outcome {
    .batch(
        elementCount: batch.elementCount, events: batch.events.map(describeEvent), positions: batch.positions,
        rejections: batch.rejections, counts: describeCounts(batch))
}

func outcome(_ body: Data, ndjson: Bool, fast: Bool) -> Outcome {
    do {
        let batch = try EventBatch.decode(body, ndjson: ndjson, policy: fuzzPolicy, nowMs: fuzzNowMs, useFastPath: fast)
        checkInvariants(batch, body: body, ndjson: ndjson, path: fast ? "fast" : "oracle")
        return outcome(batch)
    } catch {
        return .error(reason: error.reason)
    }
}

/// Decoded bodies larger than this (only gzip can make them: inputs are at most `-max_len`) are decoded by the
/// product paths only, not by the slow plain-JSONDecoder reference, so a legitimate large body cannot time out.
let referenceBodyLimit = 64 << 10

func compareWithOracle(_ body: Data, ndjson: Bool) {
    let fast = outcome(body, ndjson: ndjson, fast: true)
    let oracle = outcome(body, ndjson: ndjson, fast: false)
    // 1. The fast path is an optimisation: it must give exactly what the oracle gives, no exceptions.
    if fast != oracle && !isOpenFinding(body) {
        fail("fast path differs from the JSONDecoder oracle (useFastPath: false, ndjson: \(ndjson))\nfast:   \(fast)\noracle: \(oracle)", body: body)
    }
    #if SPEEDFLOW_FUZZ_REJECTION_COUNTS
    checkDetailLimit(body, ndjson: ndjson, full: fast)
    #endif
    // 2. The oracle against plain JSONDecoder, as the decoder was before the strict syntax check: equal except for
    //    the documented deviations.
    //    A body showing a deviation is not decoded by the reference at all: plain JSONDecoder is what took
    //    quadratic time on deep nesting, so running it would time out on exactly the bodies the decoder now
    //    refuses cheaply.
    guard body.count <= referenceBodyLimit, documentedDeviation(body, ndjson: ndjson) == nil else { return }
    let reference = referenceOutcome(body, ndjson: ndjson)
    if oracle == reference { return }
    fail("the decoder differs from plain JSONDecoder outside the documented deviations (ndjson: \(ndjson))\ndecoder:     \(oracle)\nJSONDecoder: \(reference)", body: body)
}

/// For exploring past findings that are reported but not fixed yet: built with `-D BODYFUZZER_TOLERATE_OPEN_FINDINGS`
/// (`FUZZ_SWIFTFLAGS=-DBODYFUZZER_TOLERATE_OPEN_FINDINGS scripts/fuzz`), fast-path mismatches of their class
/// are let through so the run can find something else. Never used by scripts/test or bench/fuzz.sh.
func isOpenFinding(_ body: Data) -> Bool {
    #if BODYFUZZER_TOLERATE_OPEN_FINDINGS
    // None open. (The last one, ill-formed UTF-8 in a wrong-typed string — Tests/Fuzz/crashes/
    // fast-path-skips-invalid-utf8-in-wrong-typed-string.json — was matched by
    // `String(validating: body, as: UTF8.self) == nil` until it was fixed.)
    #endif
    return false
}

// MARK: Plain JSONDecoder reference

/// `EventBatch.decode` as it was at a01ce8f with `useFastPath: false`, i.e. nothing but `JSONDecoder` and
/// `RawEvent`'s `Decodable`: an array body is one `[RawEvent]`, an object body one `RawEvent` or else NDJSON,
/// NDJSON is one `RawEvent` per non-blank line (`malformed_json` for a line it refuses).
func referenceOutcome(_ body: Data, ndjson: Bool) -> Outcome {
    func malformed() -> Outcome { .error(reason: "malformed_json") }
    guard let first = body.first(where: { !isJSONSpace($0) }) else { return .error(reason: "empty_body") }
    var raws: [Result<RawEvent, RejectionReason>]
    if !ndjson && first == UInt8(ascii: "[") {
        guard let all = try? JSONDecoder().decode([RawEvent].self, from: body) else { return malformed() }
        raws = all.map { .success($0) }
    } else if !ndjson, first == UInt8(ascii: "{"), let single = try? JSONDecoder().decode(RawEvent.self, from: body) {
        raws = [.success(single)]
    } else if first == UInt8(ascii: "{") || ndjson {
        let decoder = JSONDecoder()
        raws = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            .filter { line in line.contains { !isJSONSpace($0) } }
            .map { line in
                (try? decoder.decode(RawEvent.self, from: Data(line))).map { .success($0) } ?? .failure(.malformedJSON)
            }
        if !ndjson, raws.allSatisfy({ if case .failure = $0 { true } else { false } }) { return malformed() }
    } else {
        return malformed()
    }
    var batch = EventBatch()
    batch.elementCount = raws.count
    for (index, raw) in raws.enumerated() {
        var rejection: Rejection
        switch raw {
        case .failure(let reason):
            rejection = Rejection(index: index, reason: reason)
        case .success(let raw):
            switch fuzzPolicy.validate(raw, nowMs: fuzzNowMs) {
            case .success(let event):
                batch.events.append(event)
                batch.positions.append(index)
                continue
            case .failure(let r):
                var kvfvId: String?
                if case .value(let id) = raw.kvfvId, ValidationPolicy.isValidKvfvId(id) { kvfvId = id }
                rejection = Rejection(index: index, reason: r.reason, field: r.field, kvfvId: kvfvId)
            }
        }
        batch.rejections.append(rejection)
        #if SPEEDFLOW_FUZZ_REJECTION_COUNTS
        batch.rejectedCount += 1
        batch.rejectedByReason[rejection.reason, default: 0] += 1
        if let id = rejection.kvfvId { batch.rejectedByCamera[id, default: [:]][rejection.reason, default: 0] += 1 }
        #endif
    }
    return outcome(batch)
}

@inline(__always)
func isJSONSpace(_ b: UInt8) -> Bool { b == 32 || b == 10 || b == 13 || b == 9 }

/// Why `body` may legitimately decode differently from plain `JSONDecoder`, or `nil` if it may not.
///
/// The decoder requires RFC 8259 JSON: a strict syntax check (`JSONSyntax`) runs before `JSONDecoder` sees any
/// text (EventBatch.decode's doc comment: number forms, nesting, any other syntax error). Where `JSONDecoder` is
/// more lenient the answers differ; these are the leniencies (found by this fuzzer or documented):
/// - number forms RFC 8259 does not allow but `JSONDecoder` reads (`080`, `5.`, `1.e5`, ...): the body (array,
///   object) or the NDJSON line is `malformed_json` instead of an `invalid_speed`/`invalid_lane` element;
/// - nesting deeper than `EventBatch.maxElementDepth` within one element: `nesting_too_deep` instead of whatever
///   `JSONDecoder` (up to 512 levels, quadratic cost) would have made of it;
/// - other leniencies of `JSONDecoder` that the check refuses: trailing commas, raw control characters in strings,
///   ill-formed UTF-8 (`JSONDecoder` reads `"\xff"` as a string it cannot decode: a per-element `invalid_plate`;
///   RFC 8259 §8.1 requires UTF-8, so the strict check makes it `malformed_json`), invalid escapes such as `\i`
///   or `\u12G4` (`JSONDecoder` scans strings lazily: in a key it made the element `not_an_object`, in a known
///   field's value a wrong-typed field), a byte-order mark or a UTF-16/UTF-32 body (`JSONDecoder` detects the
///   encoding from a BOM or from NUL bytes: `00 2D` is UTF-16 for `-`, a `not_an_object` line; RFC 8259 §8.1:
///   UTF-8, no BOM).
/// The scan below is deliberately simpler and more generous than `JSONSyntax` (it is not a second copy of it): it
/// only says whether one of these forms occurs anywhere in the body, so any other difference is still a finding.
func documentedDeviation(_ body: Data, ndjson: Bool) -> String? {
    #if SPEEDFLOW_FUZZ_STRICT_SYNTAX
    // Scanned as one text and line by line: a string broken over two lines is read differently by each.
    if let why = lenientForm(body[...], maxDepth: EventBatch.maxElementDepth) { return why }
    for line in body.split(separator: UInt8(ascii: "\n")) {
        if let why = lenientForm(line, maxDepth: EventBatch.maxElementDepth) { return why }
    }
    return nil
    #else
    // Before the strict syntax check existed the oracle *was* plain JSONDecoder: no deviation at all.
    return nil
    #endif
}

/// The first deviation-triggering form in `text`: ill-formed UTF-8, a byte-order mark, a control byte outside
/// strings, a non-RFC number token, a trailing comma, a raw control character or an invalid escape in a string,
/// or brackets nested deeper than `maxDepth` (counted from the text's start, so an array
/// body's elements sit one level deeper: such bodies are excluded one level early, which errs on the safe side).
func lenientForm(_ text: Data.SubSequence, maxDepth: Int) -> String? {
    if String(validating: text, as: UTF8.self) == nil { return "ill-formed UTF-8" }
    if text.starts(with: [0xEF, 0xBB, 0xBF]) { return "byte-order mark" }
    var depth = 0, inString = false, escaped = false, hexLeft = 0
    var token: [UInt8] = []
    var lastSignificant: UInt8 = 0
    func endToken() -> String? {
        defer { token.removeAll(keepingCapacity: true) }
        guard let c = token.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
        else { return nil }
        return isRFCNumber(token) ? nil : "number form \(String(decoding: token, as: UTF8.self))"
    }
    for b in text {
        if inString {
            if hexLeft > 0 {
                guard isHexDigit(b) else { return "invalid \\u escape" }
                hexLeft -= 1
            } else if escaped {
                escaped = false
                switch b {
                case UInt8(ascii: "u"): hexLeft = 4
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"): break
                default: return "invalid escape"
                }
            } else if b == UInt8(ascii: "\\") {
                escaped = true
            } else if b == UInt8(ascii: "\"") {
                inString = false
            } else if b < 0x20 {
                return "raw control character in a string"
            }
            continue
        }
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "}"), UInt8(ascii: "]"),
            UInt8(ascii: ","), UInt8(ascii: ":"), 32, 9, 10, 13:
            if let why = endToken() { return why }
        case 0x00..<0x20:
            return "control byte outside strings (JSONDecoder takes NULs for UTF-16/UTF-32)"
        default:
            token.append(b)
            lastSignificant = b
            continue
        }
        switch b {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            if depth > maxDepth { return "nesting deeper than \(maxDepth)" }
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            if lastSignificant == UInt8(ascii: ",") { return "trailing comma" }
            depth = max(0, depth - 1)
        default: break
        }
        if !isJSONSpace(b) { lastSignificant = b }
    }
    return endToken()
}

@inline(__always)
func isHexDigit(_ b: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
        || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
}

/// RFC 8259: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
func isRFCNumber(_ t: [UInt8]) -> Bool {
    var i = 0
    let n = t.count
    func digit(_ k: Int) -> Bool { k < n && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(t[k]) }
    if i < n && t[i] == UInt8(ascii: "-") { i += 1 }
    guard digit(i) else { return false }
    if t[i] == UInt8(ascii: "0") { i += 1 } else { while digit(i) { i += 1 } }
    if i < n && t[i] == UInt8(ascii: ".") {
        i += 1
        guard digit(i) else { return false }
        while digit(i) { i += 1 }
    }
    if i < n && (t[i] == UInt8(ascii: "e") || t[i] == UInt8(ascii: "E")) {
        i += 1
        if i < n && (t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-")) { i += 1 }
        guard digit(i) else { return false }
        while digit(i) { i += 1 }
    }
    return i == n
}

// MARK: Invariants

/// The rejection counters, in a stable order (empty before they existed).
func describeCounts(_ batch: EventBatch) -> String {
    #if SPEEDFLOW_FUZZ_REJECTION_COUNTS
    let byReason = batch.rejectedByReason.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }
    let byCamera = batch.rejectedByCamera.sorted { $0.key < $1.key }.map { camera in
        camera.key + ":" + camera.value.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ",")
    }
    return "rejected=\(batch.rejectedCount) by reason [\(byReason.joined(separator: " "))] by camera [\(byCamera.joined(separator: " "))]"
    #else
    return ""
    #endif
}

#if SPEEDFLOW_FUZZ_REJECTION_COUNTS
/// The answer's size bound (issue 11 §6): with a detail limit, the detailed rejections are the first ones of the
/// full answer, and everything else (events, counters) is unchanged.
func checkDetailLimit(_ body: Data, ndjson: Bool, full: Outcome) {
    guard case .batch(let count, let events, let positions, let rejections, let counts) = full else { return }
    let limit = 2
    guard let cut = try? EventBatch.decode(body, ndjson: ndjson, policy: fuzzPolicy, nowMs: fuzzNowMs, detailLimit: limit)
    else { fail("decode(detailLimit: \(limit)) threw where the full decode did not", body: body) }
    let expected = Outcome.batch(
        elementCount: count, events: events, positions: positions, rejections: Array(rejections.prefix(limit)), counts: counts)
    if outcome(cut) != expected {
        fail("decode(detailLimit: \(limit)) is not the full answer cut to \(limit) rejections (ndjson: \(ndjson))\ncut:  \(outcome(cut))\nfull: \(full)", body: body)
    }
    if cut.rejectionsTruncated != (cut.rejectedCount > limit) { fail("rejectionsTruncated is wrong", body: body) }
}
#endif

/// Properties every decoded batch must have, whichever path produced it.
func checkInvariants(_ batch: EventBatch, body: Data, ndjson: Bool, path: String) {
    func broken(_ what: String) -> Never {
        fail("\(path) batch breaks an invariant (ndjson: \(ndjson)): \(what)", body: body)
    }
    guard batch.events.count == batch.positions.count else { broken("events/positions counts differ") }
    guard batch.events.count + batch.rejections.count == batch.elementCount else {
        broken("\(batch.events.count) events + \(batch.rejections.count) rejections != \(batch.elementCount) elements")
    }
    // Every element is either accepted or rejected, exactly once, in order.
    var seen = [Bool](repeating: false, count: batch.elementCount)
    for i in batch.positions + batch.rejections.map(\.index) {
        guard i >= 0, i < batch.elementCount, !seen[i] else { broken("element index \(i) missing, repeated or out of range") }
        seen[i] = true
    }
    guard zip(batch.positions, batch.positions.dropFirst()).allSatisfy({ $0 < $1 }),
        zip(batch.rejections, batch.rejections.dropFirst()).allSatisfy({ $0.index < $1.index })
    else { broken("positions or rejection indexes not increasing") }
    #if SPEEDFLOW_FUZZ_REJECTION_COUNTS
    // Without a detail limit every rejection is listed, and the counters agree with the list.
    guard batch.rejectedCount == batch.rejections.count, !batch.rejectionsTruncated,
        batch.rejectedByReason.values.reduce(0, +) == batch.rejectedCount,
        batch.rejectedByReason.allSatisfy({ reason, n in n == batch.rejections.count { $0.reason == reason } })
    else { broken("rejection counters disagree with the rejections: \(describeCounts(batch))") }
    for r in batch.rejections {
        if let id = r.kvfvId, batch.rejectedByCamera[id]?[r.reason] != batch.rejections.count(where: { $0.kvfvId == id && $0.reason == r.reason }) {
            broken("rejectedByCamera disagrees for \(id)")
        }
    }
    #endif
    for e in batch.events {
        // Accepted means the statistics can take it: finite speed in range whose reciprocal (harmonic mean) is
        // finite too, a queryable camera id, a time inside the acceptance window.
        guard e.speed.isFinite, e.speed > 0, e.speed <= fuzzPolicy.maxSpeed, (1 / e.speed).isFinite else {
            broken("accepted speed \(e.speed)")
        }
        guard ValidationPolicy.isValidKvfvId(e.kvfvId) else { broken("accepted kvfv_id \(e.kvfvId)") }
        guard e.timestampMs <= fuzzNowMs + fuzzPolicy.maxClockSkewMs,
            e.timestampMs >= fuzzNowMs - fuzzPolicy.acceptanceHorizonMs
        else { broken("accepted timestamp \(e.timestampMs)") }
        if let id = e.eventId, id.isEmpty || id.utf8.count > 128 { broken("accepted event_id of \(id.utf8.count) bytes") }
        if let extra = e.extra {
            // The raw archive keeps unknown fields as a JSON object's text: it must parse back as one.
            guard (try? JSONSerialization.jsonObject(with: Data(extra.utf8), options: [.fragmentsAllowed])) is [String: Any]
            else { broken("extra is not a JSON object: \(extra)") }
        }
    }
}

// MARK: Gzip

#if SPEEDFLOW_FUZZ_GZIP
/// Decompressed-size limit for fuzzing: small, so a bomb shows as a limit error, not as an RSS failure, and
/// decoding what comes out stays within the time limit.
let gzipLimit = 256 << 10

/// Runs `Gzip.decompress` on a body that starts with the gzip magic and checks it against `referenceGunzip`.
/// Returns the decompressed body, or `nil` when both readers reject it.
func checkGzip(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
    let result: [UInt8]?
    do {
        result = try Gzip.decompress(input, limit: gzipLimit)
    } catch {
        result = nil
    }
    let reference = referenceGunzip(input, limit: gzipLimit)
    let body = Data(input)
    switch (result, reference) {
    case (nil, .invalid), (nil, .tooLarge):
        return nil
    case (let out?, _) where out.count > gzipLimit:
        fail("Gzip.decompress returned \(out.count) bytes, over its limit \(gzipLimit)", body: body)
    case (let out?, .ok(let expected)):
        guard out == expected else {
            fail("Gzip.decompress returned \(out.count) bytes that differ from zlib's \(expected.count)", body: body)
        }
        // The limit is inclusive and exact: the same input with limit = its output size still succeeds.
        guard (try? Gzip.decompress(input, limit: out.count)) == out else {
            fail("Gzip.decompress fails with limit == output size \(out.count)", body: body)
        }
        if !out.isEmpty, (try? Gzip.decompress(input, limit: out.count - 1)) != nil {
            fail("Gzip.decompress succeeds with limit \(out.count - 1) < output size \(out.count)", body: body)
        }
        return out
    case (let out?, .invalid):
        fail("Gzip.decompress accepted (\(out.count) bytes) what zlib rejects as gzip", body: body)
    case (let out?, .tooLarge):
        fail("Gzip.decompress accepted (\(out.count) bytes) what exceeds the limit", body: body)
    case (nil, .ok(let expected)):
        fail("Gzip.decompress rejected a valid gzip stream (\(expected.count) bytes per zlib)", body: body)
    }
}

/// Mutates gzip inputs through their content: half the time a gzip input is gunzipped, its body mutated by
/// libFuzzer's mutator, and gzipped again as 1–3 members, sometimes repeated to exceed `gzipLimit` (mutating the
/// compressed bytes alone almost never yields another valid stream, so the member loop, the output growth and the
/// limit would hardly be reached). Everything else gets libFuzzer's usual mutations.
@_cdecl("LLVMFuzzerCustomMutator")
public func bodyFuzzerCustomMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var rng = SplitMix(state: UInt64(seed))
    guard size >= 2, data[0] == 0x1f, data[1] == 0x8b, rng.next() % 2 == 0,
        case .ok(let plain) = referenceGunzip(UnsafeRawBufferPointer(start: data, count: size), limit: 64 << 10)
    else { return LLVMFuzzerMutate(data, size, maxSize) }
    // The body alone, without repetitions from an earlier round: the first member's content.
    var body = plain
    body.append(contentsOf: repeatElement(0, count: 2048))
    let n = body.withUnsafeMutableBufferPointer { LLVMFuzzerMutate($0.baseAddress!, plain.count, $0.count) }
    body.removeSubrange(n...)
    // Now and then many elements: the body's elements repeated (an array stays an array, lines stay lines) to
    // cross the decoder's chunk boundary (4096 elements) and `referenceBodyLimit`; or the body repeated past the
    // gzip limit (checks .tooLarge without a big input).
    var content = body
    switch rng.next() % 16 {
    case 0: content = Array(repeatElement(body.isEmpty ? [0x20] : body, count: gzipLimit / max(1, body.count) + 1).joined())
    case 1, 2: content = repeatedElements(body, times: Int(rng.next() % 8192) + 2)
    default: break
    }
    // 1–3 members split at random points.
    var cuts = [0, content.count]
    for _ in 0..<(rng.next() % 3) where !content.isEmpty { cuts.append(Int(rng.next() % UInt64(content.count + 1))) }
    cuts.sort()
    var out: [UInt8] = []
    for (a, b) in zip(cuts, cuts.dropFirst()) {
        out += content[a..<b].withUnsafeBytes { gzipMember($0, level: Int32(rng.next() % 10)) }
    }
    guard out.count <= maxSize else { return LLVMFuzzerMutate(data, size, maxSize) }
    out.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: out.count) }
    return out.count
}

/// `[e1,e2]` becomes `[e1,e2,e1,e2,…]`; anything else is repeated as lines. At most about `gzipLimit` bytes.
func repeatedElements(_ body: [UInt8], times: Int) -> [UInt8] {
    let trimmed = body.drop(while: isJSONSpace).reversed().drop(while: isJSONSpace).reversed()
    let times = min(times, gzipLimit / max(1, body.count))
    if trimmed.first == UInt8(ascii: "["), trimmed.last == UInt8(ascii: "]"), trimmed.count > 2 {
        let inner = Array(trimmed.dropFirst().dropLast())
        return [UInt8(ascii: "[")] + Array(repeatElement(inner, count: times).joined(separator: [UInt8(ascii: ",")]))
            + [UInt8(ascii: "]")]
    }
    let line = body.last == UInt8(ascii: "\n") ? body : body + [UInt8(ascii: "\n")]
    return Array(repeatElement(line, count: times).joined())
}

/// SplitMix64: deterministic from libFuzzer's seed, so a run can be replayed.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One gzip member of `input` (zlib's deflate with the gzip wrapper), for the mutator.
func gzipMember(_ input: UnsafeRawBufferPointer, level: Int32) -> [UInt8] {
    var stream = z_stream()
    guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
        Int32(MemoryLayout<z_stream>.size)) == Z_OK
    else { return [] }
    defer { deflateEnd(&stream) }
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
    var source = Array(input)
    source.append(0)  // a valid pointer even for empty input
    let status = source.withUnsafeMutableBufferPointer { src in
        output.withUnsafeMutableBufferPointer { out in
            stream.next_in = src.baseAddress
            stream.avail_in = uInt(input.count)
            stream.next_out = out.baseAddress
            stream.avail_out = uInt(out.count)
            return deflate(&stream, Z_FINISH)
        }
    }
    guard status == Z_STREAM_END else { return [] }
    output.removeSubrange(Int(stream.total_out)...)
    return output
}

enum ReferenceGunzip {
    case ok([UInt8])
    case invalid
    case tooLarge
}

/// RFC 1952 the strict way, written independently of `Gzip` with zlib's inflate: one or more complete gzip
/// members (header, deflate data, CRC-32 and ISIZE checked by zlib) back to back and nothing after the last.
func referenceGunzip(_ input: UnsafeRawBufferPointer, limit: Int) -> ReferenceGunzip {
    guard let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count > 0 else { return .invalid }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var offset = 0
    while offset < input.count {
        var stream = z_stream()
        // 15 + 16: gzip wrapper only (no zlib or raw deflate members).
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return .invalid
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: base + offset)
        stream.avail_in = uInt(input.count - offset)
        var status: Int32 = Z_OK
        while status == Z_OK {
            status = chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let s = inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                return s
            }
            if output.count > limit { return .tooLarge }
            // Input exhausted before the member's end: a cut stream.
            if status == Z_BUF_ERROR || (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
                return .invalid
            }
        }
        guard status == Z_STREAM_END else { return .invalid }
        offset = input.count - Int(stream.avail_in)
    }
    return .ok(output)
}
#endif

// MARK: Failing

/// Reports a finding and aborts, so libFuzzer keeps the input as a crash artifact (and `scripts/fuzz` fails).
func fail(_ message: String, body: Data) -> Never {
    let shown = body.prefix(2_000).map { b -> String in
        switch b {
        case 0x20...0x7E where b != 0x5C: String(UnicodeScalar(b))
        case 0x0A: "\\n"
        case 0x5C: "\\\\"
        default: "\\x" + (b < 16 ? "0" : "") + String(b, radix: 16)
        }
    }.joined()
    FileHandle.standardError.write(Data(
        "\n==== BodyFuzzer finding ====\n\(message)\nbody (\(body.count) bytes): \(shown)\(body.count > 2_000 ? "…" : "")\n".utf8))
    abort()
}
