import Foundation

/// A request body split into validated events and per-element rejections.
public struct EventBatch: Sendable {
    /// Accepted-by-validation events with their position in the request.
    public var events: [CameraEvent] = []
    public var positions: [Int] = []
    public var rejections: [Rejection] = []
    /// Number of elements in the request.
    public var elementCount = 0

    public init() {}

    /// Why a body as a whole is unusable (answered with `400`, nothing stored).
    public struct DecodeError: Error, Sendable, Hashable {
        public var reason: String
        public var message: String
    }

    /// Decodes a JSON object, a JSON array, or NDJSON, then validates every element.
    ///
    /// Elements go through `FastEventParser` first (flat objects of the known fields, the common case); whatever it
    /// declines goes through `JSONDecoder` exactly as before, which stays the reference for the semantics.
    /// NDJSON is tried as one array first (one decoder pass, fast); only when some line is malformed does it
    /// fall back to line-by-line decoding, so one bad line costs that line, not the batch.
    ///
    /// - Parameter useFastPath: `false` decodes with `JSONDecoder` only (the oracle for tests, the baseline for
    ///   benchmarks); the result is the same either way.
    public static func decode(
        _ body: Data, ndjson: Bool, policy: ValidationPolicy, nowMs: Int64, useFastPath: Bool = true
    ) throws(DecodeError) -> EventBatch {
        let raws = try rawElements(body, ndjson: ndjson, useFastPath: useFastPath)

        var batch = EventBatch()
        batch.elementCount = raws.count
        batch.events.reserveCapacity(raws.count)
        batch.positions.reserveCapacity(raws.count)
        for (index, raw) in raws.enumerated() {
            switch raw {
            case .failure(let reason):
                batch.rejections.append(Rejection(index: index, reason: reason))
            case .success(let raw):
                switch policy.validate(raw, nowMs: nowMs) {
                case .success(let event):
                    batch.events.append(event)
                    batch.positions.append(index)
                case .failure(let r):
                    var kvfvId: String?
                    if case .value(let id) = raw.kvfvId, ValidationPolicy.isValidKvfvId(id) { kvfvId = id }
                    batch.rejections.append(Rejection(index: index, reason: r.reason, field: r.field, kvfvId: kvfvId))
                }
            }
        }
        return batch
    }

    /// The body's elements as decoded, before validation: a `RawEvent`, or why the element is unusable.
    static func rawElements(
        _ body: Data, ndjson: Bool, useFastPath: Bool
    ) throws(DecodeError) -> [Result<RawEvent, RejectionReason>] {
        guard let first = body.first(where: { !isSpace($0) }) else {
            throw DecodeError(reason: "empty_body", message: "the request body is empty")
        }
        if !ndjson && first == UInt8(ascii: "[") {
            if useFastPath, let raws = FastEventParser.decodeArray(body) { return raws }
            do {
                return try JSONDecoder().decode([RawEvent].self, from: body).map { .success($0) }
            } catch {
                throw DecodeError(reason: "malformed_json", message: "the body is not a valid JSON array: \(describe(error))")
            }
        }
        if !ndjson, first == UInt8(ascii: "{"),
            let single = (useFastPath ? FastEventParser.decodeSingle(body) : nil) ?? (try? JSONDecoder().decode(RawEvent.self, from: body))
        {
            return [.success(single)]
        }
        if first == UInt8(ascii: "{") || ndjson {
            let raws = (useFastPath ? FastEventParser.decodeLines(body) : nil) ?? decodeLines(body)
            if !ndjson, raws.allSatisfy({ if case .failure = $0 { true } else { false } }) {
                throw DecodeError(reason: "malformed_json", message: "the body is neither a JSON object, a JSON array nor NDJSON")
            }
            return raws
        }
        throw DecodeError(reason: "malformed_json", message: "the body must be a JSON object, a JSON array or NDJSON")
    }

    static func decodeLines(_ body: Data) -> [Result<RawEvent, RejectionReason>] {
        let lines = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            .filter { line in line.contains { !isSpace($0) } }
        var joined = Data()
        joined.reserveCapacity(body.count + 2)
        joined.append(UInt8(ascii: "["))
        for (i, line) in lines.enumerated() {
            if i > 0 { joined.append(UInt8(ascii: ",")) }
            joined.append(contentsOf: line)
        }
        joined.append(UInt8(ascii: "]"))
        // Joining is only safe when every line is one complete value; otherwise a value split over two lines
        // (or two values on one line) would shift positions.
        if lines.allSatisfy(isOneBalancedValue), let all = try? JSONDecoder().decode([RawEvent].self, from: joined),
            all.count == lines.count
        {
            return all.map { .success($0) }
        }
        let decoder = JSONDecoder()
        return lines.map { line in
            if let raw = try? decoder.decode(RawEvent.self, from: Data(line)) { return .success(raw) }
            return .failure(.malformedJSON)
        }
    }

    /// Whether a line holds exactly one JSON object or array: brackets balance (outside strings) and return to
    /// depth 0 only at its last non-space byte.
    static func isOneBalancedValue(_ line: Data.SubSequence) -> Bool {
        var depth = 0, inString = false, escaped = false, closed = false
        for b in line {
            if closed {
                if isSpace(b) { continue }
                return false
            }
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                guard depth > 0 else { return false }
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                guard depth >= 0 else { return false }
                if depth == 0 { closed = true }
            default:
                if depth == 0 && !isSpace(b) { return false }
            }
        }
        return closed
    }

    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 10 || b == 13 || b == 9 }

    static func describe(_ error: any Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .dataCorrupted(let c): return c.debugDescription
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c): return c.debugDescription
            @unknown default: return "\(e)"
            }
        }
        return "\(error)"
    }
}
