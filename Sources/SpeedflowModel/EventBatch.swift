import Foundation

/// A request body split into validated events and per-element rejections.
///
/// Memory stays proportional to the accepted events, not to the number of elements: rejections are counted by
/// reason (and by camera, for health), and kept in detail only up to `detailLimit`, so a body of four million
/// `1`s costs counters, not four million records.
public struct EventBatch: Sendable {
    /// Accepted-by-validation events with their position in the request, in request order.
    public var events: [CameraEvent] = []
    public var positions: [Int] = []
    /// Rejected elements in detail, in index order: all of them, or the first `detailLimit` (see `decode`).
    public var rejections: [Rejection] = []
    /// Every rejected element, by reason (including those beyond `rejections`).
    public var rejectedByReason: [RejectionReason: Int] = [:]
    /// Number of rejected elements (≥ `rejections.count`).
    public var rejectedCount = 0
    /// Rejections of elements that named a valid camera, by camera and reason (for per-camera health), for at
    /// most `maxTrackedCameras` cameras per body.
    public var rejectedByCamera: [String: [RejectionReason: Int]] = [:]
    /// Number of elements in the request.
    public var elementCount = 0

    public init() {}

    /// Whether `rejections` lists fewer than all rejected elements.
    public var rejectionsTruncated: Bool { rejectedCount > rejections.count }

    /// Deepest nesting of arrays/objects allowed within one element (the element's own braces are level 1).
    ///
    /// Real camera payloads nest 2–3 levels. The fast parser reads every valid element itself in linear time (a
    /// few odd scalars go to `JSONDecoder` one at a time); the limit bounds its recursion and the work of the
    /// reference path, where `JSONDecoder`'s time grows with the square of the depth (measured: 3 ms per 150-byte
    /// element at depth 64, 0.4 s at 400).
    public static let maxElementDepth = 16
    /// Per-camera rejection counts are kept for this many distinct cameras per body (beyond: counted by reason
    /// only), so a body of distinct ids cannot grow a dictionary per element.
    public static let maxTrackedCameras = 10_000
    /// Elements handed to `JSONDecoder` together, at most (and at most `chunkBytes` of text), so its parse tree
    /// stays small whatever the body's size.
    static let chunkElements = 4096
    static let chunkBytes = 1 << 20

    /// Why a body as a whole is unusable (answered with `400`, nothing stored).
    public struct DecodeError: Error, Sendable, Hashable {
        public var reason: String
        public var message: String
    }

    /// Decodes a JSON object, a JSON array, or NDJSON, then validates every element.
    ///
    /// The body must be RFC 8259 JSON (per NDJSON line: that line): number forms such as `.5`, `+80`, `080` and
    /// `5.` make an array or object body a `400 malformed_json` and an NDJSON line a `malformed_json` element,
    /// as does any other syntax error; nesting deeper than `maxElementDepth` within an element is
    /// `400 nesting_too_deep` (NDJSON: that line is rejected `nesting_too_deep`). The check is one linear pass
    /// and runs before any text reaches `JSONDecoder` (deviation from plain `JSONDecoder`, which accepts `080`
    /// and `5.`, and nests up to 512 levels at quadratic cost).
    ///
    /// Elements go through `FastEventParser` first (objects of the known fields plus unknown fields, answered
    /// exactly as `JSONDecoder` would); whatever it declines (in practice: invalid JSON, which then fails the
    /// syntax check) goes through `JSONDecoder`, which stays the reference for the semantics, in bounded chunks.
    ///
    /// - Parameters:
    ///   - useFastPath: `false` decodes with the syntax check + `JSONDecoder` only (the oracle for tests, the
    ///     baseline for benchmarks); the result is the same either way.
    ///   - detailLimit: how many rejections to keep in `rejections` (the first by index); all are counted.
    public static func decode(
        _ body: Data, ndjson: Bool, policy: ValidationPolicy, nowMs: Int64, useFastPath: Bool = true,
        detailLimit: Int = .max
    ) throws(DecodeError) -> EventBatch {
        var builder = BatchBuilder(policy: policy, nowMs: nowMs, detailLimit: detailLimit)
        let result = body.withUnsafeBytes { buffer -> Result<Void, DecodeError> in
            do throws(DecodeError) {
                try forEachElement(buffer, ndjson: ndjson, useFastPath: useFastPath, into: &builder)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        return builder.finish()
    }

    /// The body's elements as decoded, before validation, in index order: a `RawEvent`, or why the element is
    /// unusable. (Tests compare the two paths with it.)
    static func rawElements(
        _ body: Data, ndjson: Bool, useFastPath: Bool
    ) throws(DecodeError) -> [Result<RawEvent, RejectionReason>] {
        var collector = ElementCollector()
        let result = body.withUnsafeBytes { buffer -> Result<Void, DecodeError> in
            do throws(DecodeError) {
                try forEachElement(buffer, ndjson: ndjson, useFastPath: useFastPath, into: &collector)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
        return collector.elements.sorted { $0.index < $1.index }.map(\.element)
    }

    /// Feeds every element of the body to `sink` (possibly out of index order).
    static func forEachElement<Sink: ElementSink>(
        _ buffer: UnsafeRawBufferPointer, ndjson: Bool, useFastPath: Bool, into sink: inout Sink
    ) throws(DecodeError) {
        guard let base = buffer.baseAddress, let first = buffer.first(where: { !isSpace($0) }) else {
            throw DecodeError(reason: "empty_body", message: "the request body is empty")
        }
        let p = base.assumingMemoryBound(to: UInt8.self)
        let end = buffer.count
        if !ndjson && first == UInt8(ascii: "[") {
            if useFastPath {
                if FastEventParser.decodeArray(p, end, into: &sink) { return }
                sink.reset()
            }
            try decodeArray(p, end, into: &sink)
            return
        }
        if !ndjson && first == UInt8(ascii: "{") {
            if useFastPath, let single = FastEventParser.decodeSingle(p, end) {
                sink.add(0, .success(single))
                return
            }
            if JSONSyntax.check(p, 0, end, maxDepth: maxElementDepth) == nil,
                let single = try? JSONDecoder().decode(RawEvent.self, from: Data(buffer))
            {
                sink.add(0, .success(single))
                return
            }
        }
        if first == UInt8(ascii: "{") || ndjson {
            let stats = useFastPath ? FastEventParser.decodeLines(p, end, into: &sink) : decodeLines(p, end, into: &sink)
            if !ndjson, stats.lines > 0, stats.unparsed == stats.lines {
                if stats.tooDeep == stats.lines {
                    throw DecodeError(
                        reason: "nesting_too_deep",
                        message: "the body nests deeper than \(maxElementDepth) levels within one element")
                }
                throw DecodeError(reason: "malformed_json", message: "the body is neither a JSON object, a JSON array nor NDJSON")
            }
            return
        }
        throw DecodeError(reason: "malformed_json", message: "the body must be a JSON object, a JSON array or NDJSON")
    }

    /// An array body by the reference path: syntax check of the whole body, then `JSONDecoder` per chunk of
    /// elements (the same result as one pass over the whole body, in bounded memory).
    static func decodeArray<Sink: ElementSink>(
        _ p: UnsafePointer<UInt8>, _ end: Int, into sink: inout Sink
    ) throws(DecodeError) {
        if let problem = JSONSyntax.check(p, 0, end, maxDepth: maxElementDepth + 1) {
            throw problem.decodeError
        }
        var chunk = SpanChunk()
        var i = FastEventParser.skipSpace(p, 0, end) + 1
        var index = 0
        while true {
            i = FastEventParser.skipSpace(p, i, end)
            if p[i] == UInt8(ascii: "]") { break }
            // The text is valid JSON, so bracket counting finds each element's end exactly.
            guard let next = FastEventParser.skipValue(p, i, end) else { break }
            chunk.append(index, i..<next)
            index += 1
            if chunk.isFull { try decodeArrayChunk(p, &chunk, into: &sink) }
            i = FastEventParser.skipSpace(p, next, end)
            if p[i] == UInt8(ascii: ",") { i += 1 } else { break }
        }
        try decodeArrayChunk(p, &chunk, into: &sink)
    }

    /// Decodes the chunk's elements (syntax-checked objects or values) with one `JSONDecoder` pass; empties it.
    static func decodeArrayChunk<Sink: ElementSink>(
        _ p: UnsafePointer<UInt8>, _ chunk: inout SpanChunk, into sink: inout Sink
    ) throws(DecodeError) {
        guard !chunk.spans.isEmpty else { return }
        defer { chunk.removeAll() }
        do {
            let decoded = try JSONDecoder().decode([RawEvent].self, from: chunk.joined(p, separator: UInt8(ascii: ","), brackets: true))
            guard decoded.count == chunk.spans.count else {
                throw DecodeError(reason: "malformed_json", message: "the body is not a valid JSON array")
            }
            for (span, raw) in zip(chunk.spans, decoded) { sink.add(span.index, .success(raw)) }
        } catch let error as DecodeError {
            throw error
        } catch {
            throw DecodeError(reason: "malformed_json", message: "the body is not a valid JSON array: \(describe(error))")
        }
    }

    /// What happened to an NDJSON body's lines.
    struct LineStats {
        var lines = 0
        /// Lines that were not JSON (`malformed_json`) or too deep (`nesting_too_deep`).
        var unparsed = 0
        var tooDeep = 0
    }

    /// NDJSON by the reference path: every non-blank line is an element.
    static func decodeLines<Sink: ElementSink>(
        _ p: UnsafePointer<UInt8>, _ end: Int, into sink: inout Sink
    ) -> LineStats {
        var stats = LineStats()
        var chunk = SpanChunk()
        var lineStart = 0
        while lineStart < end {
            let lineEnd = FastEventParser.lineEnd(p, lineStart, end)
            defer { lineStart = lineEnd + 1 }
            if FastEventParser.skipSpace(p, lineStart, lineEnd) == lineEnd { continue }
            chunk.append(stats.lines, lineStart..<lineEnd)
            stats.lines += 1
            if chunk.isFull { decodeLineChunk(p, &chunk, stats: &stats, into: &sink) }
        }
        decodeLineChunk(p, &chunk, stats: &stats, into: &sink)
        return stats
    }

    /// Decodes NDJSON lines: each is syntax-checked on its own (a bad line costs that line), the good ones go
    /// through one `JSONDecoder` pass as an array (each line is exactly one value, so joining them is safe), or
    /// line by line if that pass fails. Empties the chunk.
    static func decodeLineChunk<Sink: ElementSink>(
        _ p: UnsafePointer<UInt8>, _ chunk: inout SpanChunk, stats: inout LineStats, into sink: inout Sink
    ) {
        guard !chunk.spans.isEmpty else { return }
        defer { chunk.removeAll() }
        var good = SpanChunk()
        for span in chunk.spans {
            switch JSONSyntax.check(p, span.range.lowerBound, span.range.upperBound, maxDepth: maxElementDepth) {
            case nil:
                good.append(span.index, span.range)
            case .tooDeep?:
                stats.unparsed += 1
                stats.tooDeep += 1
                sink.add(span.index, .failure(.nestingTooDeep))
            case .invalid?:
                stats.unparsed += 1
                sink.add(span.index, .failure(.malformedJSON))
            }
        }
        guard !good.spans.isEmpty else { return }
        let decoder = JSONDecoder()
        if let all = try? decoder.decode([RawEvent].self, from: good.joined(p, separator: UInt8(ascii: ","), brackets: true)),
            all.count == good.spans.count
        {
            for (span, raw) in zip(good.spans, all) { sink.add(span.index, .success(raw)) }
            return
        }
        for span in good.spans {
            if let raw = try? decoder.decode(RawEvent.self, from: Data(bytes: p + span.range.lowerBound, count: span.range.count)) {
                sink.add(span.index, .success(raw))
            } else {
                stats.unparsed += 1
                sink.add(span.index, .failure(.malformedJSON))
            }
        }
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

extension JSONSyntax.Problem {
    var decodeError: EventBatch.DecodeError {
        switch self {
        case .invalid: EventBatch.DecodeError(reason: "malformed_json", message: message)
        case .tooDeep: EventBatch.DecodeError(reason: "nesting_too_deep", message: message)
        }
    }
}

/// Element spans waiting for one `JSONDecoder` pass.
struct SpanChunk {
    var spans: [(index: Int, range: Range<Int>)] = []
    var bytes = 0

    mutating func append(_ index: Int, _ range: Range<Int>) {
        spans.append((index, range))
        bytes += range.count + 1
    }

    var isFull: Bool { spans.count >= EventBatch.chunkElements || bytes >= EventBatch.chunkBytes }

    mutating func removeAll() {
        spans.removeAll(keepingCapacity: true)
        bytes = 0
    }

    /// The spans' text joined by `separator`, optionally inside `[` `]`.
    func joined(_ p: UnsafePointer<UInt8>, separator: UInt8, brackets: Bool) -> Data {
        var data = Data()
        data.reserveCapacity(bytes + 2)
        if brackets { data.append(UInt8(ascii: "[")) }
        for (n, span) in spans.enumerated() {
            if n > 0 { data.append(separator) }
            data.append(p + span.range.lowerBound, count: span.range.count)
        }
        if brackets { data.append(UInt8(ascii: "]")) }
        return data
    }
}

/// Receives a body's elements, by index, in any order.
protocol ElementSink {
    mutating func add(_ index: Int, _ element: Result<RawEvent, RejectionReason>)
    /// Forgets everything added (the fast path gave up; the reference path starts over).
    mutating func reset()
}

/// Collects raw elements (for tests).
struct ElementCollector: ElementSink {
    var elements: [(index: Int, element: Result<RawEvent, RejectionReason>)] = []
    mutating func add(_ index: Int, _ element: Result<RawEvent, RejectionReason>) { elements.append((index, element)) }
    mutating func reset() { elements.removeAll() }
}

/// Validates each element as it arrives and keeps only what the answer needs.
struct BatchBuilder: ElementSink {
    let policy: ValidationPolicy
    let nowMs: Int64
    let detailLimit: Int
    var batch = EventBatch()
    var inOrder = true
    var rejectionsInOrder = true

    init(policy: ValidationPolicy, nowMs: Int64, detailLimit: Int) {
        self.policy = policy
        self.nowMs = nowMs
        self.detailLimit = Swift.max(0, detailLimit)
    }

    mutating func reset() {
        batch = EventBatch()
        inOrder = true
        rejectionsInOrder = true
    }

    mutating func add(_ index: Int, _ element: Result<RawEvent, RejectionReason>) {
        batch.elementCount = Swift.max(batch.elementCount, index + 1)
        switch element {
        case .failure(let reason):
            reject(Rejection(index: index, reason: reason))
        case .success(let raw):
            switch policy.validate(raw, nowMs: nowMs) {
            case .success(let event):
                if let last = batch.positions.last, last > index { inOrder = false }
                batch.events.append(event)
                batch.positions.append(index)
            case .failure(let r):
                var kvfvId: String?
                if case .value(let id) = raw.kvfvId, ValidationPolicy.isValidKvfvId(id) { kvfvId = id }
                reject(Rejection(index: index, reason: r.reason, field: r.field, kvfvId: kvfvId))
            }
        }
    }

    mutating func reject(_ r: Rejection) {
        batch.rejectedCount += 1
        batch.rejectedByReason[r.reason, default: 0] += 1
        if let id = r.kvfvId, batch.rejectedByCamera[id] != nil || batch.rejectedByCamera.count < EventBatch.maxTrackedCameras {
            batch.rejectedByCamera[id, default: [:]][r.reason, default: 0] += 1
        }
        guard detailLimit > 0 else { return }
        if let last = batch.rejections.last, last.index > r.index { rejectionsInOrder = false }
        if rejectionsInOrder && batch.rejections.count >= detailLimit { return }  // later indices only
        batch.rejections.append(r)
        if batch.rejections.count >= 2 * Swift.min(detailLimit, Int.max / 2) {
            // Out of order: keep the smallest indices; amortised O(1) per rejection.
            batch.rejections.sort { $0.index < $1.index }
            batch.rejections.removeLast(batch.rejections.count - detailLimit)
        }
    }

    func finish() -> EventBatch {
        var batch = batch
        if !inOrder {
            let order = batch.positions.indices.sorted { batch.positions[$0] < batch.positions[$1] }
            batch.events = order.map { batch.events[$0] }
            batch.positions = order.map { batch.positions[$0] }
        }
        if !rejectionsInOrder {
            batch.rejections.sort { $0.index < $1.index }
        }
        if batch.rejections.count > detailLimit { batch.rejections.removeLast(batch.rejections.count - detailLimit) }
        return batch
    }
}

extension EventBatch {
    /// Moves the events for which `refuse` holds to the rejections (with `reason`), keeping request order and
    /// at most `detailLimit` rejections in detail, the rest counted. Not counted per camera: they name a camera
    /// that did not send them (e.g. `forbidden_kvfv_id`).
    public mutating func reject(where refuse: (CameraEvent) -> Bool, reason: RejectionReason, field: String?, detailLimit: Int) {
        var kept: [CameraEvent] = []
        var keptPositions: [Int] = []
        var refused: [Rejection] = []
        for (event, position) in zip(events, positions) {
            if refuse(event) {
                refused.append(Rejection(index: position, reason: reason, field: field))
            } else {
                kept.append(event)
                keptPositions.append(position)
            }
        }
        guard !refused.isEmpty else { return }
        events = kept
        positions = keptPositions
        rejectedCount += refused.count
        rejectedByReason[reason, default: 0] += refused.count
        // Both lists are in index order: merge, then keep the first `detailLimit`.
        var merged: [Rejection] = []
        merged.reserveCapacity(Swift.min(detailLimit, rejections.count + refused.count))
        var i = 0, j = 0
        while merged.count < detailLimit && (i < rejections.count || j < refused.count) {
            if j == refused.count || (i < rejections.count && rejections[i].index < refused[j].index) {
                merged.append(rejections[i])
                i += 1
            } else {
                merged.append(refused[j])
                j += 1
            }
        }
        rejections = merged
    }
}
