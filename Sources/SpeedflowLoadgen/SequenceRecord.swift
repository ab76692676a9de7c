/// What one numbering camera did with its pass numbers (`seq`), from the load generator's own side: the numbers it
/// sent, as runs in numbering order (everything sent is acknowledged by the end of a passing run, or the run
/// reports it unacknowledged), how many it lost for good or still holds, and its newest acknowledged status report.
///
/// It shares no code with the server's `SequenceLedger`: `SequenceExpectation` derives the gaps, the backlog and
/// each window's `complete`/`missing` from it the naive way (sort, merge, compare neighbours, sum overlaps).
/// Memory stays bounded by the losses, not the events: consecutive sent numbers extend one run.
struct SequenceRecord: Sendable, Equatable {
    /// Numbers `lo...hi` of `epoch`, all sent, with the event times of passes `lo` and `hi`.
    struct Run: Sendable, Equatable {
        var epoch: Int64
        var lo: Int64
        var hi: Int64
        var loMs: Int64
        var hiMs: Int64

        var count: Int64 { hi - lo + 1 }
    }

    /// A status report the server acknowledged, with the bounds of its arrival on the load generator's clock
    /// (first send … first acknowledgement).
    struct Report: Sendable, Equatable {
        var epoch: Int64
        var seq: Int64
        var timeMs: Int64
        var arrivalFromMs: Int64
        var arrivalToMs: Int64
    }

    enum Fate: Sendable {
        /// Put on the wire (and resent until acknowledged).
        case sent
        /// Lost for good: never sent.
        case lost
        /// Still on the camera when the run ends: recorded, reported, not sent.
        case pending
    }

    private(set) var runs: [Run] = []
    private(set) var lost = 0
    private(set) var pending = 0
    private(set) var report: Report?

    /// Notes one numbered pass. Numbers of a stream come in increasing order; a sent number right after the
    /// previous sent one extends its run.
    mutating func note(epoch: Int64, seq: Int64, timeMs: Int64, fate: Fate) {
        switch fate {
        case .lost: lost += 1
        case .pending: pending += 1
        case .sent:
            if let last = runs.last, last.epoch == epoch, last.hi + 1 == seq {
                runs[runs.count - 1].hi = seq
                runs[runs.count - 1].hiMs = timeMs
            } else {
                runs.append(Run(epoch: epoch, lo: seq, hi: seq, loMs: timeMs, hiMs: timeMs))
            }
        }
    }

    /// Notes an acknowledged report the way the contract says the server keeps one: the newest by (epoch, seq)
    /// wins; an identical one changes nothing (so the arrival stays the first one's).
    mutating func acknowledged(_ r: Report) {
        if let held = report {
            if (held.epoch, held.seq) > (r.epoch, r.seq) { return }
            if (held.epoch, held.seq, held.timeMs) == (r.epoch, r.seq, r.timeMs) { return }
        }
        report = r
    }
}

/// What the server must say about a numbering camera: `GET /kvfv/{id}/gaps` and each window's `complete` and
/// `missing`, computed naively from a `SequenceRecord` (DESIGN "say how final a number is"; README "Load test").
struct SequenceExpectation: Sendable, Equatable {
    struct Gap: Sendable, Equatable {
        var epoch: Int64
        var first: Int64
        var last: Int64
        var afterMs: Int64
        var beforeMs: Int64

        var count: Int64 { last - first + 1 }
    }

    struct Backlog: Sendable, Equatable {
        var events: Int64
        /// Time of the newest received pass of the reported epoch; nil when none of that epoch arrived.
        var sinceMs: Int64?
        var untilMs: Int64
    }

    /// Anything numbered arrived, or a report did: the server then answers `complete`/`missing` for every window.
    let sequenced: Bool
    let received: Int64
    let gaps: [Gap]
    let report: SequenceRecord.Report?
    let backlog: Backlog?
    /// The event time up to which the camera has told what it recorded (`Int64.min`: not at all).
    let knownThroughMs: Int64

    init(_ record: SequenceRecord) {
        // Received numbers per epoch as maximal runs: sort, then merge runs that touch.
        var merged: [Int64: [SequenceRecord.Run]] = [:]
        for run in record.runs.sorted(by: { ($0.epoch, $0.lo) < ($1.epoch, $1.lo) }) {
            var list = merged[run.epoch] ?? []
            if let last = list.last, last.hi + 1 >= run.lo {
                // Touching (a reserved history range meeting the live numbers). Overlap would be a generator bug.
                precondition(last.hi < run.lo, "a number was sent twice as new")
                list[list.count - 1].hi = run.hi
                list[list.count - 1].hiMs = run.hiMs
            } else {
                list.append(run)
            }
            merged[run.epoch] = list
        }
        var gaps: [Gap] = []
        var received: Int64 = 0
        for epoch in merged.keys.sorted() {
            let list = merged[epoch]!
            received += list.reduce(0) { $0 + $1.count }
            for (a, b) in zip(list, list.dropFirst()) {
                gaps.append(Gap(epoch: epoch, first: a.hi + 1, last: b.lo - 1, afterMs: a.hiMs, beforeMs: b.loMs))
            }
        }
        self.gaps = gaps
        self.received = received
        self.report = record.report
        self.sequenced = !merged.isEmpty || record.report != nil

        let latestEpoch = merged.keys.max()
        var backlog: Backlog?
        if let r = record.report {
            if let newest = merged[r.epoch]?.last {
                if r.seq > newest.hi { backlog = Backlog(events: r.seq - newest.hi, sinceMs: newest.hiMs, untilMs: r.timeMs) }
            } else if latestEpoch.map({ $0 > r.epoch }) != true {
                // Nothing of the reported epoch arrived (and no newer epoch did): numbers 0...seq are all out.
                backlog = Backlog(events: r.seq + 1, sinceMs: nil, untilMs: r.timeMs)
            }
        }
        self.backlog = backlog
        var known = Int64.min
        if let e = latestEpoch, let newest = merged[e]?.last { known = newest.hiMs }
        if let r = record.report { known = max(known, r.timeMs) }
        self.knownThroughMs = known
    }

    /// `complete` and `missing` of the window `[startMs, endMs)`; nil for a camera that is not sequenced.
    /// `missing` sums every gap and the backlog whose time span may reach into the window; `complete` needs none and
    /// the camera to have told what it recorded up to the window's last millisecond.
    func window(startMs: Int64, endMs: Int64) -> (complete: Bool, missing: Int64)? {
        guard sequenced else { return nil }
        var missing: Int64 = 0
        for g in gaps {
            let from = min(g.afterMs, g.beforeMs), to = max(g.afterMs, g.beforeMs)
            if from < endMs && to >= startMs { missing += g.count }
        }
        if let b = backlog, (b.sinceMs ?? .min) < endMs, b.untilMs >= startMs { missing += b.events }
        return (missing == 0 && knownThroughMs >= endMs - 1, missing)
    }
}
