import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import Testing

/// A fleet of cameras that number their passes, over a bad link, and the naive truth about what arrived.
///
/// Each camera records passes 0, 1, 2, … (a minute or so apart). The link delivers most of them soon, delays
/// some by hours (late), resends some (duplicates), resends a few with other content (a camera bug: conflicting
/// duplicates, never counted), loses some for good, and reports now and then how far the camera has recorded;
/// its last few passes are still on the camera at the end (a backlog its final report tells of).
public struct SequencedFleet {
    /// One delivery: its arrival time, its events, its reports.
    public struct Delivery: Sendable {
        public var arrivalMs: Int64
        public var events: [CameraEvent]
        public var reports: [CameraReport]
    }

    public var deliveries: [Delivery] = []

    /// `cameras` cameras of `passes` passes each, recorded before `nowMs`; deliveries in arrival order.
    public init(seed: UInt64, cameras: Int, passes: Int, nowMs: Int64) {
        var rng = SeededRandom(seed: seed)
        var pending: [(arrival: Int64, event: CameraEvent?, report: CameraReport?)] = []
        for c in 0..<cameras {
            let camera = "SQ\(c)"
            var t = nowMs - Int64(passes) * 60_000 - 3_600_000
            let epochChange = rng.next() % 4 == 0 ? Int(rng.next() % UInt64(passes)) : Int.max
            var seq: Int64 = Int64(rng.next() % 1000)
            var epoch: Int64 = 0
            // The last passes are still on the camera (its link is down); it reports them at the end.
            let heldBack = Int(rng.next() % 12)
            for i in 0..<passes {
                if i == epochChange {
                    epoch += 1
                    seq = 0
                }
                t += 1 + Int64(rng.next() % 120_000)
                let e = CameraEvent(
                    kvfvId: camera, timestampMs: t, speed: 20 + Double(rng.next() % 12_000) / 100, eventId: "\(camera)-\(i)",
                    lane: Int(rng.next() % 3), seq: seq, seqEpoch: epoch == 0 ? nil : epoch)
                seq += 1
                if i >= passes - heldBack {
                    if i == passes - 1 { pending.append((nowMs, nil, CameraReport(kvfvId: camera, epoch: epoch, seq: seq - 1, timeMs: t))) }
                    continue
                }
                let roll = rng.next() % 100
                if roll < 4 { continue }  // lost for good
                let delay: Int64 = roll < 20 ? 600_000 + Int64(rng.next() % (3 * 3_600_000)) : Int64(rng.next() % 30_000)
                let arrival = min(t + delay, nowMs)
                pending.append((arrival, e, nil))
                if roll >= 90 { pending.append((min(arrival + Int64(rng.next() % 3_600_000), nowMs), e, nil)) }  // resent
                if roll == 89 {  // resent with other content: a camera bug
                    var other = e
                    other.speed += 1
                    other.timestampMs += 400_000
                    pending.append((min(arrival + 1000, nowMs), other, nil))
                }
                if rng.next() % 50 == 0 {
                    pending.append((min(t + Int64(rng.next() % 60_000), nowMs), nil, CameraReport(kvfvId: camera, epoch: epoch, seq: seq - 1, timeMs: t)))
                }
            }
        }
        pending.sort { $0.arrival < $1.arrival }
        var i = 0
        while i < pending.count {
            let n = 1 + Int(rng.next() % 30)
            let slice = pending[i..<min(pending.count, i + n)]
            deliveries.append(Delivery(
                arrivalMs: slice.last!.arrival, events: slice.compactMap(\.event), reports: slice.compactMap(\.report)))
            i += n
        }
    }
}

/// The naive truth for numbered events: first copy of (camera, epoch, seq) wins; everything else follows.
public struct SequenceTruth {
    public struct Counted {
        var event: CameraEvent
        var arrivalMs: Int64
    }

    public let graceMs: Int64
    public var counted: [String: [SequenceKey: Counted]] = [:]
    public var reports: [String: (report: CameraReport, arrivalMs: Int64)] = [:]
    public var conflicting: [String: Int] = [:]

    public init(graceMs: Int64 = 300_000) { self.graceMs = graceMs }

    /// Returns whether the event counts.
    public mutating func add(_ e: CameraEvent, arrivalMs: Int64) -> Bool {
        let key = SequenceKey(epoch: e.seqEpoch ?? 0, seq: e.seq!)
        if let first = counted[e.kvfvId]?[key] {
            if first.event.timestampMs != e.timestampMs || first.event.speed != e.speed || first.event.lane != e.lane {
                conflicting[e.kvfvId, default: 0] += 1
            }
            return false
        }
        counted[e.kvfvId, default: [:]][key] = Counted(event: e, arrivalMs: arrivalMs)
        return true
    }

    public mutating func add(_ r: CameraReport, arrivalMs: Int64) {
        if let held = reports[r.kvfvId]?.report, (held.epoch, held.seq) >= (r.epoch, r.seq) { return }
        reports[r.kvfvId] = (r, arrivalMs)
    }

    /// Missing ranges between received numbers, per epoch, with the neighbours' event times.
    public func gaps(_ camera: String) -> [SequenceLedger.Gap] {
        var naive = NaiveLedger()
        for (key, c) in counted[camera] ?? [:] { naive.received[key] = c.event.timestampMs }
        return naive.gaps
    }

    /// Backlog: numbers reported beyond the newest received one of the report's epoch.
    public func backlog(_ camera: String) -> (events: Int64, sinceMs: Int64?, untilMs: Int64)? {
        guard let r = reports[camera]?.report else { return nil }
        let mine = (counted[camera] ?? [:]).filter { $0.key.epoch == r.epoch }
        if let newest = mine.max(by: { $0.key.seq < $1.key.seq }) {
            return r.seq > newest.key.seq ? (r.seq - newest.key.seq, newest.value.event.timestampMs, r.timeMs) : nil
        }
        if let latest = counted[camera]?.keys.map(\.epoch).max(), latest > r.epoch { return nil }
        return (r.seq + 1, nil, r.timeMs)
    }

    /// What a window must say: count, late count, latest late arrival, complete, missing.
    public func window(_ camera: String, _ w: Window) -> (count: Int64, late: Int64, revisedAtMs: Int64, complete: Bool, missing: Int64) {
        var count: Int64 = 0, late: Int64 = 0, revised: Int64 = 0
        for c in (counted[camera] ?? [:]).values where w.buckets.contains(Bucket.index(ofTimestamp: c.event.timestampMs)) {
            count += 1
            let bucketEnd = Bucket.start(ofIndex: Bucket.index(ofTimestamp: c.event.timestampMs) + 1)
            if c.arrivalMs > bucketEnd + graceMs {
                late += 1
                revised = max(revised, c.arrivalMs)
            }
        }
        var missing: Int64 = 0
        for g in gaps(camera) where min(g.afterMs, g.beforeMs) < w.endMs && max(g.afterMs, g.beforeMs) >= w.startMs {
            missing += g.count
        }
        if let b = backlog(camera), (b.sinceMs ?? .min) < w.endMs, b.untilMs >= w.startMs { missing += b.events }
        var known = Int64.min
        if let latest = counted[camera]?.keys.map(\.epoch).max() {
            known = counted[camera]!.filter { $0.key.epoch == latest }.max(by: { $0.key.seq < $1.key.seq })!.value.event.timestampMs
        }
        if let r = reports[camera]?.report { known = max(known, r.timeMs) }
        return (count, late, revised, missing == 0 && known >= w.endMs - 1, missing)
    }
}

/// Compares every 5m and 1h window of every camera, its gaps and its backlog with the truth.
public func expectSequencesExact(
    _ queries: CameraQueries, _ truth: SequenceTruth, fromMs: Int64, toMs: Int64,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    for camera in truth.counted.keys.sorted() {
        let sequence = try #require(try queries.sequence(kvfvId: camera), sourceLocation: sourceLocation)
        #expect(sequence.ledger.gaps == truth.gaps(camera), "gaps of \(camera)", sourceLocation: sourceLocation)
        let backlog = sequence.backlog, expected = truth.backlog(camera)
        #expect(backlog?.events == expected?.events && backlog?.sinceMs == expected?.sinceMs, "backlog of \(camera)", sourceLocation: sourceLocation)
        for interval in [WindowInterval.fiveMinutes, .oneHour] {
            let windows = try WindowPlanner.windows(fromMs: fromMs, toMs: toMs, interval: interval)
            let reports = try #require(try await queries.windowReports(kvfvId: camera, windows: windows), sourceLocation: sourceLocation)
            for r in reports {
                let e = truth.window(camera, r.window)
                #expect(r.state.count == e.count, "count \(camera) \(r.window)", sourceLocation: sourceLocation)
                #expect(r.state.lateCount == e.late, "late_count \(camera) \(r.window)", sourceLocation: sourceLocation)
                #expect(r.state.revisedAtMs == e.revisedAtMs, "revised_at \(camera) \(r.window)", sourceLocation: sourceLocation)
                #expect(r.completeness?.complete == e.complete, "complete \(camera) \(r.window)", sourceLocation: sourceLocation)
                #expect(r.completeness?.missing == e.missing, "missing \(camera) \(r.window)", sourceLocation: sourceLocation)
            }
        }
    }
}

/// The naive model of a ledger: every (epoch, seq) received with the time of its first copy.
public struct NaiveLedger {
    public var received: [SequenceKey: Int64] = [:]

    public init() {}

    public mutating func insert(epoch: Int64, seq: Int64, timeMs: Int64) -> Bool {
        let key = SequenceKey(epoch: epoch, seq: seq)
        guard received[key] == nil else { return false }
        received[key] = timeMs
        return true
    }

    /// Gaps between consecutive received numbers of an epoch, neighbours' times included.
    public var gaps: [SequenceLedger.Gap] {
        var out: [SequenceLedger.Gap] = []
        let byEpoch = Dictionary(grouping: received.keys, by: \.epoch)
        for epoch in byEpoch.keys.sorted() {
            let seqs = byEpoch[epoch]!.map(\.seq).sorted()
            for (a, b) in zip(seqs, seqs.dropFirst()) where b > a + 1 {
                out.append(SequenceLedger.Gap(
                    epoch: epoch, first: a + 1, last: b - 1,
                    afterMs: received[SequenceKey(epoch: epoch, seq: a)]!, beforeMs: received[SequenceKey(epoch: epoch, seq: b)]!))
            }
        }
        return out
    }
}
