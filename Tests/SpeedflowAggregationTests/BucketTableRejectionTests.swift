import SpeedflowAggregation
import SpeedflowModel
import Testing

/// Rejection tallies in the bucket table: counted by arrival bucket, handed to exactly one successful commit,
/// visible to queries until then, and never counted twice by a failed or retried flush.
@Suite("Bucket table: rejection tallies")
struct BucketTableRejectionTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    static func record(arrival: Int64, _ tallies: [(String, RejectionReason, Int64)], events: [CameraEvent] = []) -> EventRecord {
        EventRecord(arrivalMs: arrival, events: events, rejections: tallies.map { RejectionTally(kvfvId: $0.0, reason: $0.1, count: $0.2) })
    }

    /// Everything the snapshots handed to the store, summed: what a store holds after committing them.
    static func sum(_ snapshots: [BucketTable.Snapshot]) -> [BucketKey: [RejectionReason: Int64]] {
        var total: [BucketKey: [RejectionReason: Int64]] = [:]
        for s in snapshots { for r in s.rejections { total[r.key, default: [:]].merge(r.counts, uniquingKeysWith: +) } }
        return total
    }

    @Test("tallies count by arrival bucket, learn cameras that sent nothing else, and are flushed once")
    func flushedOnce() {
        for policy in [CommitPolicy.overwrite, .appendDeltas] {
            var table = BucketTable(policy: policy, logOffset: 0, cameras: [])
            _ = table.apply(
                Self.record(arrival: Self.t0 + 10, [("A", .inFuture, 2), ("B", .tooLate, 1)],
                            events: [CameraEvent(kvfvId: "A", timestampMs: Self.t0 - 86_400_000, speed: 50, eventId: "x")]),
                endOffset: 10, nowMs: 0)
            _ = table.apply(Self.record(arrival: Self.t0 + 400_000, [("A", .inFuture, 1), ("A", .speedOutOfRange, 4)]), endOffset: 20, nowMs: 0)
            let a = table.kvfvIds["A"]!, b = table.kvfvIds["B"]!
            let b0 = Bucket.index(ofTimestamp: Self.t0), b1 = b0 + 1
            let expected: [BucketKey: [RejectionReason: Int64]] = [
                BucketKey(camera: a, bucket: b0): [.inFuture: 2], BucketKey(camera: b, bucket: b0): [.tooLate: 1],
                BucketKey(camera: a, bucket: b1): [.inFuture: 1, .speedOutOfRange: 4],
            ]
            #expect(table.unflushedRejections(camera: a, buckets: b0..<(b1 + 1)) == [a: [b0: [.inFuture: 2], b1: [.inFuture: 1, .speedOutOfRange: 4]]])
            let first = table.takeSnapshot(nowMs: 0)
            #expect(Self.sum([first]) == expected)
            #expect(first.cameras.contains { $0.kvfvId == "B" })
            // In flight: still in memory for queries, not in the next snapshot.
            #expect(table.unflushedRejections(camera: nil, buckets: b0..<(b1 + 1)).count == 2)
            #expect(table.takeSnapshot(nowMs: 0).rejections.isEmpty)
            table.persisted(first)
            #expect(table.unflushedRejections(camera: nil, buckets: .min..<Int64.max).isEmpty)
            #expect(table.takeSnapshot(nowMs: 0).rejections.isEmpty)
        }
    }

    @Test("a failed flush under .overwrite goes out again merged with newer tallies, counted once")
    func failedOverwrite() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 2)]), endOffset: 10, nowMs: 0)
        let failed = table.takeSnapshot(nowMs: 0)
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 3), ("A", .tooLate, 1)]), endOffset: 20, nowMs: 0)
        table.failed(failed)
        let a = table.kvfvIds["A"]!, b0 = Bucket.index(ofTimestamp: Self.t0)
        // Queries see every tally exactly once meanwhile.
        #expect(table.unflushedRejections(camera: a, buckets: b0..<(b0 + 1)) == [a: [b0: [.inFuture: 5, .tooLate: 1]]])
        let retry = table.takeSnapshot(nowMs: 0)
        #expect(Self.sum([retry]) == [BucketKey(camera: a, bucket: b0): [.inFuture: 5, .tooLate: 1]])
        table.persisted(retry)
        #expect(table.unflushedRejections(camera: nil, buckets: .min..<Int64.max).isEmpty)
    }

    @Test("a failed flush under .appendDeltas is retried verbatim, and the next snapshot does not carry it again")
    func retriedVerbatim() {
        var table = BucketTable(policy: .appendDeltas, logOffset: 0, cameras: [])
        var machine = FlushMachine<BucketTable.Snapshot>(policy: .appendDeltas, intervalMs: 0)
        var landed: [BucketTable.Snapshot] = []
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 2)]), endOffset: 10, nowMs: 0)
        // Flush 1 fails.
        #expect(machine.flushNow() == .flush)
        let first = machine.commits(fresh: table.takeSnapshot(nowMs: 0))
        #expect(first.count == 1)
        guard case .retryVerbatim = machine.commitFailed(remaining: first) else {
            Issue.record("an append-deltas failure is retried verbatim")
            return
        }
        _ = machine.flushEnded(succeeded: false)
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 5)]), endOffset: 20, nowMs: 0)
        // Flush 2: the failed snapshot verbatim, then the fresh one.
        #expect(machine.flushNow() == .flush)
        let second = machine.commits(fresh: table.takeSnapshot(nowMs: 0))
        #expect(second.count == 2)
        #expect(second[0].rejections == first[0].rejections)
        for s in second {
            landed.append(s)
            table.persisted(s)
        }
        _ = machine.flushEnded(succeeded: true)
        let a = table.kvfvIds["A"]!, b0 = Bucket.index(ofTimestamp: Self.t0)
        #expect(Self.sum(landed) == [BucketKey(camera: a, bucket: b0): [.inFuture: 7]])
        #expect(table.unflushedRejections(camera: nil, buckets: .min..<Int64.max).isEmpty)
    }

    @Test("a replayed record whose camera's store part already holds it adds no tallies (rejectionsStoredUpTo)")
    func storedUpTo() {
        var table = BucketTable(
            policy: .appendDeltas, logOffset: 10, cameras: [], rejectionsStoredUpTo: { $0 == "A" ? 20 : 10 })
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 1), ("B", .inFuture, 1)]), endOffset: 20, nowMs: 0)
        _ = table.apply(Self.record(arrival: Self.t0, [("A", .inFuture, 10), ("B", .inFuture, 10)]), endOffset: 30, nowMs: 0)
        let s = Self.sum([table.takeSnapshot(nowMs: 0)])
        let b0 = Bucket.index(ofTimestamp: Self.t0)
        #expect(s[BucketKey(camera: table.kvfvIds["A"]!, bucket: b0)] == [.inFuture: 10])
        #expect(s[BucketKey(camera: table.kvfvIds["B"]!, bucket: b0)] == [.inFuture: 11])
    }
}
