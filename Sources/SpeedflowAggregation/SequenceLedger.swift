import SpeedflowModel

/// What a camera that numbers its passes (`seq`) has delivered: per counter epoch, the received sequence numbers
/// as maximal runs, each with the event times of its two ends. It is the dedup state of such a camera — an event
/// whose `(epoch, seq)` is in a run is a duplicate — and the gap ledger: between two runs lie passes that
/// happened (between the neighbours' times) but have not arrived.
///
/// Exact and small: a camera that loses nothing holds one run per epoch however many events it sends, and each
/// permanent loss adds one run. Persisted in chunks of `chunkSpan` sequence numbers (`chunks(_:)`), so a commit
/// rewrites only the chunks whose numbers it received, not the whole ledger.
public struct SequenceLedger: Sendable, Hashable {
    /// Consecutive received numbers `lo...hi`, and the event times of passes `lo` and `hi`.
    public struct Run: Sendable, Hashable {
        public var lo: Int64
        public var hi: Int64
        public var loTimeMs: Int64
        public var hiTimeMs: Int64

        public init(lo: Int64, hi: Int64, loTimeMs: Int64, hiTimeMs: Int64) {
            self.lo = lo
            self.hi = hi
            self.loTimeMs = loTimeMs
            self.hiTimeMs = hiTimeMs
        }

        /// (Saturating: the run 0…2⁶³−1 holds one number more than `Int64` counts.)
        public var count: Int64 { (hi - lo).addingSaturating(1) }
    }

    /// Numbers `first...last` of `epoch` have not arrived; the passes happened between `afterMs` (the time of
    /// number `first − 1`) and `beforeMs` (that of `last + 1`).
    public struct Gap: Sendable, Hashable {
        public var epoch: Int64
        public var first: Int64
        public var last: Int64
        public var afterMs: Int64
        public var beforeMs: Int64

        public init(epoch: Int64, first: Int64, last: Int64, afterMs: Int64, beforeMs: Int64) {
            self.epoch = epoch
            self.first = first
            self.last = last
            self.afterMs = afterMs
            self.beforeMs = beforeMs
        }

        public var count: Int64 { last - first + 1 }

        /// Whether passes of this gap may lie in `[fromMs, toMs)`.
        public func overlaps(fromMs: Int64, toMs: Int64) -> Bool { min(afterMs, beforeMs) < toMs && max(afterMs, beforeMs) >= fromMs }
    }

    /// Runs per epoch, ascending, never overlapping or touching.
    public private(set) var epochs: [Int64: [Run]] = [:]
    /// Numbers missing between received ones, over all gaps: kept as numbers arrive, so the fleet's total costs one
    /// addition per camera (saturating, like every count derived from sequence numbers).
    public private(set) var missingCount: Int64 = 0

    public init() {}

    public var isEmpty: Bool { epochs.isEmpty }

    /// Adds `(epoch, seq)` received with event time `timeMs`; `false` if it was there already (a duplicate).
    @discardableResult
    public mutating func insert(epoch: Int64, seq: Int64, timeMs: Int64) -> Bool {
        var runs = epochs.removeValue(forKey: epoch) ?? []
        defer { epochs[epoch] = runs }
        // Live traffic extends the last run: O(1).
        // (Written so that nothing overflows at seq 0 or 2⁶³ − 1.)
        if let last = runs.last, seq > last.hi {
            if seq - 1 == last.hi {
                runs[runs.count - 1].hi = seq
                runs[runs.count - 1].hiTimeMs = timeMs
            } else {
                missingCount = missingCount.addingSaturating(seq - last.hi - 1)
                runs.append(Run(lo: seq, hi: seq, loTimeMs: timeMs, hiTimeMs: timeMs))
            }
            return true
        }
        // The first run whose end is at or after seq.
        let i = Self.firstRun(endingAtOrAfter: seq, in: runs)
        if i < runs.count && runs[i].lo <= seq { return false }
        let joinsPrevious = i > 0 && runs[i - 1].hi == seq - 1
        let joinsNext = i < runs.count && runs[i].lo - 1 == seq
        // (Here a run follows seq, if any run exists: later numbers take the fast path above.) Between two runs,
        // one missing number arrived; before the first run, the numbers up to it are not a gap — unless seq lies
        // apart from it, which opens one.
        if i > 0 {
            missingCount = missingCount == .max ? .max : missingCount - 1
        } else if i < runs.count && !joinsNext {
            missingCount = missingCount.addingSaturating(runs[i].lo - seq - 1)
        }
        switch (joinsPrevious, joinsNext) {
        case (true, true):
            runs[i - 1].hi = runs[i].hi
            runs[i - 1].hiTimeMs = runs[i].hiTimeMs
            runs.remove(at: i)
        case (true, false):
            runs[i - 1].hi = seq
            runs[i - 1].hiTimeMs = timeMs
        case (false, true):
            runs[i].lo = seq
            runs[i].loTimeMs = timeMs
        case (false, false):
            runs.insert(Run(lo: seq, hi: seq, loTimeMs: timeMs, hiTimeMs: timeMs), at: i)
        }
        return true
    }

    public func contains(epoch: Int64, seq: Int64) -> Bool {
        guard let runs = epochs[epoch] else { return false }
        let i = Self.firstRun(endingAtOrAfter: seq, in: runs)
        return i < runs.count && runs[i].lo <= seq
    }

    static func firstRun(endingAtOrAfter seq: Int64, in runs: [Run]) -> Int {
        var lo = 0, hi = runs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if runs[mid].hi < seq { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The newest epoch that has received anything.
    public var latestEpoch: Int64? { epochs.keys.max() }

    /// The highest number received in `epoch`, with its event time.
    public func newest(epoch: Int64) -> (seq: Int64, timeMs: Int64)? {
        epochs[epoch]?.last.map { ($0.hi, $0.hiTimeMs) }
    }

    /// Numbers received, over all epochs.
    public var receivedCount: Int64 { epochs.values.flatMap { $0.map(\.count) }.saturatingSum() }


    /// Every gap, oldest epoch first, ascending within each.
    public var gaps: [Gap] {
        var out: [Gap] = []
        for epoch in epochs.keys.sorted() {
            let runs = epochs[epoch]!
            for i in runs.indices.dropFirst() {
                let a = runs[i - 1], b = runs[i]
                out.append(Gap(epoch: epoch, first: a.hi + 1, last: b.lo - 1, afterMs: a.hiTimeMs, beforeMs: b.loTimeMs))
            }
        }
        return out
    }

    // MARK: - Persistence in chunks

    /// Sequence numbers per persisted chunk: chunk `c` of an epoch holds the runs clipped to `c·span ..< (c+1)·span`.
    public static let chunkSpan: Int64 = 1 << 16

    public struct ChunkKey: Sendable, Hashable, Comparable {
        public var epoch: Int64
        public var chunk: Int64

        public init(epoch: Int64, chunk: Int64) {
            self.epoch = epoch
            self.chunk = chunk
        }

        public init(epoch: Int64, seq: Int64) { self.init(epoch: epoch, chunk: seq / SequenceLedger.chunkSpan) }

        public static func < (a: ChunkKey, b: ChunkKey) -> Bool { (a.epoch, a.chunk) < (b.epoch, b.chunk) }
    }

    /// The runs of `key`'s chunk, clipped to it and encoded. A run cut at a chunk boundary is whole again once the
    /// chunks are read back together (`init(chunks:)`): the times written at a cut are never seen.
    public func chunk(_ key: ChunkKey) -> [UInt8] {
        let start = key.chunk * Self.chunkSpan, end = start + (Self.chunkSpan - 1)
        var out: [UInt8] = [1]  // format version
        var clipped: [Run] = []
        let runs = epochs[key.epoch] ?? []
        // From the first run reaching into the chunk (binary search): a flush costs the chunk's runs, not the ledger's.
        for run in runs[Self.firstRun(endingAtOrAfter: start, in: runs)...] {
            guard run.lo <= end else { break }
            clipped.append(Run(lo: max(run.lo, start), hi: min(run.hi, end), loTimeMs: run.loTimeMs, hiTimeMs: run.hiTimeMs))
        }
        out.appendVarint(UInt64(clipped.count))
        var previous = start
        for r in clipped {
            out.appendVarint(UInt64(r.lo - previous))
            out.appendVarint(UInt64(r.hi - r.lo))
            out.appendVarint(zigzag: r.loTimeMs)
            out.appendVarint(zigzag: r.hiTimeMs - r.loTimeMs)
            previous = r.hi
        }
        return out
    }

    /// A ledger from its persisted chunks (in any order); throws on bytes that are not a chunk of `key`.
    public init(chunks: [(key: ChunkKey, bytes: [UInt8])]) throws {
        for (key, bytes) in chunks.sorted(by: { $0.key < $1.key }) {
            guard key.epoch >= 0, (0...(Int64.max / Self.chunkSpan)).contains(key.chunk) else { throw EventRecord.FormatError() }
            let start = key.chunk * Self.chunkSpan, end = start + (Self.chunkSpan - 1)
            try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws in
                var r = ByteReader(raw)
                guard try r.byte() == 1 else { throw EventRecord.FormatError() }
                let n = try r.varint()
                guard n <= UInt64(raw.count) else { throw EventRecord.FormatError() }
                var runs = epochs[key.epoch] ?? []
                var previous = start
                for _ in 0..<n {
                    let (lo, o1) = previous.addingReportingOverflow(try r.nonNegative())
                    let (hi, o2) = lo.addingReportingOverflow(try r.nonNegative())
                    guard !o1, !o2, lo >= start, hi <= end, lo >= previous, hi >= lo else { throw EventRecord.FormatError() }
                    let loTime = try r.zigzag()
                    let hiTime = loTime &+ (try r.zigzag())
                    let run = Run(lo: lo, hi: hi, loTimeMs: loTime, hiTimeMs: hiTime)
                    if let last = runs.last, last.hi >= lo - 1 {
                        // Touching the previous chunk's last run (cut at the boundary): one run again.
                        guard last.hi < lo else { throw EventRecord.FormatError() }
                        runs[runs.count - 1].hi = hi
                        runs[runs.count - 1].hiTimeMs = hiTime
                    } else {
                        runs.append(run)
                    }
                    previous = hi
                }
                if !runs.isEmpty { epochs[key.epoch] = runs }
            }
        }
        missingCount = gaps.map(\.count).saturatingSum()
    }
}

/// A camera's sequence state: the ledger of what arrived and what it last reported having recorded.
public struct CameraSequence: Sendable, Hashable {
    public var ledger = SequenceLedger()
    /// The camera's newest report (`POST /kvfv/{id}/status`), and when it arrived.
    public var report: CameraReport?
    public var reportArrivalMs: Int64?

    public init(ledger: SequenceLedger = SequenceLedger(), report: CameraReport? = nil, reportArrivalMs: Int64? = nil) {
        self.ledger = ledger
        self.report = report
        self.reportArrivalMs = reportArrivalMs
    }

    /// Passes the camera has recorded but not delivered: those after the newest number received in the reported
    /// epoch, up to the reported one. `sinceMs`: the time of the newest received pass (they happened after it),
    /// `nil` when nothing of that epoch arrived.
    public var backlog: (events: Int64, sinceMs: Int64?, untilMs: Int64)? {
        guard let report else { return nil }
        if let newest = ledger.newest(epoch: report.epoch) {
            guard report.seq > newest.seq else { return nil }
            return (report.seq - newest.seq, newest.timeMs, report.timeMs)
        }
        // Only a newer epoch arrived: the report is stale.
        if let latest = ledger.latestEpoch, latest > report.epoch { return nil }
        return (report.seq == .max ? .max : report.seq + 1, nil, report.timeMs)
    }

    /// Takes a report if it is not older than the one held (a higher epoch, or the same with a higher number).
    public mutating func note(_ r: CameraReport, arrivalMs: Int64) -> Bool {
        if let held = report, (held.epoch, held.seq) > (r.epoch, r.seq) { return false }
        if report == r { return false }
        report = r
        reportArrivalMs = arrivalMs
        return true
    }

    /// How final each window `[fromMs, toMs)` is: `missing`, the passes known not to have arrived that may
    /// belong to it (gaps and backlog whose time span overlaps it: an upper bound); `complete` when none may and
    /// the camera is known to have recorded up to the window's end (its newest pass or report is not older).
    /// `nil` for a camera that never sent a sequence number.
    /// One pass over the runs (no gap list is built), and each gap that reaches into the windows' range adds to the
    /// windows it overlaps, found by binary search: a day of 5-minute windows costs the ledger's size, not windows ×
    /// gaps. `windows` ascending and disjoint, as `WindowPlanner` makes them.
    public func completeness(of windows: [(fromMs: Int64, toMs: Int64)]) -> [(complete: Bool, missing: Int64)]? {
        guard !ledger.isEmpty || report != nil else { return nil }
        var missing = [Int64](repeating: 0, count: windows.count)
        func add(from: Int64, to: Int64, count: Int64) {
            // The first window ending after `from`; then every one starting at or before `to`.
            var lo = 0, hi = windows.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if windows[mid].toMs <= from { lo = mid + 1 } else { hi = mid }
            }
            var w = lo
            while w < windows.count && windows[w].fromMs <= to {
                missing[w] = missing[w].addingSaturating(count)
                w += 1
            }
        }
        if let first = windows.first, let last = windows.last {
            for runs in ledger.epochs.values {
                for i in runs.indices.dropFirst() {
                    let a = runs[i - 1], b = runs[i]
                    let from = min(a.hiTimeMs, b.loTimeMs), to = max(a.hiTimeMs, b.loTimeMs)
                    guard from < last.toMs && to >= first.fromMs else { continue }
                    add(from: from, to: to, count: b.lo - a.hi - 1)
                }
            }
            if let b = backlog {
                let from = b.sinceMs ?? Int64.min
                if from < last.toMs && b.untilMs >= first.fromMs { add(from: from, to: b.untilMs, count: b.events) }
            }
        }
        let known = knownThroughMs
        return windows.indices.map { i in (missing[i] == 0 && known >= windows[i].toMs - 1, missing[i]) }
    }

    /// The event time up to which the camera has told what it recorded: its newest received pass (latest epoch)
    /// or its report, whichever is later.
    public var knownThroughMs: Int64 {
        var t = Int64.min
        if let e = ledger.latestEpoch, let n = ledger.newest(epoch: e) { t = n.timeMs }
        if let r = report { t = max(t, r.timeMs) }
        return t
    }
}

extension Int64 {
    /// `self + other` for counts (non-negative): `Int64.max` instead of an overflow. Sequence numbers span 2⁶³, so
    /// counts derived from them (gaps, backlogs, their sums) can exceed what an `Int64` holds; they saturate.
    public func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}

extension Sequence<Int64> {
    /// The sum of non-negative counts, saturating at `Int64.max`.
    public func saturatingSum() -> Int64 { reduce(0) { $0.addingSaturating($1) } }
}
