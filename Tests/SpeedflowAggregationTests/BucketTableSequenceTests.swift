import SpeedflowAggregation
import SpeedflowModel
import Testing

/// Cameras that number their passes: `(epoch, seq)` is the identity, across buckets; late arrivals are counted.
@Suite("Bucket table: sequence numbers, reports, late arrivals")
struct BucketTableSequenceTests {
    static let t0 = BucketTableTests.t0

    static func event(_ seq: Int64, _ ms: Int64, speed: Double = 50, epoch: Int64? = nil) -> CameraEvent {
        CameraEvent(kvfvId: "cam", timestampMs: ms, speed: speed, eventId: "informational", seq: seq, seqEpoch: epoch)
    }

    @Test("(epoch, seq) is the identity across buckets: a resend with other content is a counted-once conflict")
    func identityAcrossBuckets() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let first = Self.event(5, Self.t0)
        #expect(BucketTableTests.counted(table.apply(EventRecord(arrivalMs: Self.t0, events: [first]), endOffset: 1, nowMs: 0))
            == IngestOutcome(accepted: 1))
        // Same number, same content: a plain duplicate. Same number, another time (another bucket): a conflict.
        let same = Self.event(5, Self.t0)
        let moved = Self.event(5, Self.t0 + 3_600_000, speed: 70)
        let again = Self.event(5, Self.t0 + 3_600_000, speed: 70, epoch: 1)  // a restarted counter: a new pass
        let applied = table.apply(EventRecord(arrivalMs: Self.t0 + 3_600_000, events: [same, moved, again]), endOffset: 2, nowMs: 0)
        #expect(BucketTableTests.counted(applied) == IngestOutcome(accepted: 1, duplicates: 2))
        let camera = table.kvfvIds["cam"]!
        #expect(table.cameras[camera]?.conflictingDuplicates == 1)
        let states = table.hotStates(camera: camera, buckets: 0..<Int64.max)
        #expect(states[Bucket.index(ofTimestamp: Self.t0)]?.count == 1)
        #expect(states[Bucket.index(ofTimestamp: Self.t0 + 3_600_000)]?.count == 1)
        #expect(states.values.allSatisfy { $0.sequenced == $0.count })
        // No per-event identity is held for numbered events: the ledger is their dedup state.
        #expect(table.hotIdentities == 0)
        #expect(table.cameras[camera]?.sequence.ledger.receivedCount == 2)
    }

    @Test("Counts derived from sequence numbers saturate instead of overflowing: reports of 2^63 - 1, a gap of 2^63 - 2")
    func countsSaturate() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let t = Self.t0
        for (i, camera) in ["a", "b"].enumerated() {
            let events = [0, Int64.max].map { CameraEvent(kvfvId: camera, timestampMs: t, speed: 50, seq: $0) }
            let report = CameraReport(kvfvId: camera, epoch: 1, seq: .max, timeMs: t)
            _ = table.applying(EventRecord(arrivalMs: t, events: events, reports: [report]))
            _ = table.apply(EventRecord(arrivalMs: t, events: events, reports: [report]), endOffset: UInt64(i + 1), nowMs: 0)
        }
        #expect(table.cameraBacklogEvents == .max)
        #expect(table.sequenceMissingEvents == .max)
        let sequence = table.cameras[table.kvfvIds["a"]!]!.sequence
        #expect(sequence.ledger.missingCount == .max - 1 && sequence.ledger.receivedCount == 2)
        #expect(sequence.completeness(of: [(t, t + 300_000)])?.first?.missing == .max)
    }

    @Test("Late: arriving more than the grace period after the bucket's end counts in late_count and revised_at")
    func lateArrivals() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [], lateGraceMs: 60_000)
        let bucketEnd = Self.t0 + Bucket.durationMs
        let onTime = CameraEvent(kvfvId: "cam", timestampMs: Self.t0, speed: 50, eventId: "a")
        let atGrace = CameraEvent(kvfvId: "cam", timestampMs: Self.t0 + 1, speed: 50, eventId: "b")
        let late = CameraEvent(kvfvId: "cam", timestampMs: Self.t0 + 2, speed: 50, eventId: "c")
        _ = table.apply(EventRecord(arrivalMs: Self.t0 + 10, events: [onTime]), endOffset: 1, nowMs: 0)
        _ = table.apply(EventRecord(arrivalMs: bucketEnd + 60_000, events: [atGrace]), endOffset: 2, nowMs: 0)
        _ = table.apply(EventRecord(arrivalMs: bucketEnd + 60_001, events: [late, late]), endOffset: 3, nowMs: 0)
        let state = table.hotStates(camera: table.kvfvIds["cam"]!, buckets: 0..<Int64.max).values.first
        #expect(state?.count == 3 && state?.lateCount == 1 && state?.revisedAtMs == bucketEnd + 60_001)
    }

    @Test("A snapshot carries the ledger chunks and the report that changed; a table over them knows the same")
    func snapshotCarriesSequences() throws {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let events = (Int64(0)..<10).filter { $0 != 4 }.map { Self.event($0, Self.t0 + $0 * 1000) }
        let report = CameraReport(kvfvId: "cam", seq: 12, timeMs: Self.t0 + 12_000)
        _ = table.apply(EventRecord(arrivalMs: Self.t0 + 20_000, events: events, reports: [report]), endOffset: 1, nowMs: 0)
        let snapshot = table.takeSnapshot(nowMs: 0)
        let camera = table.kvfvIds["cam"]!
        let q = try #require(snapshot.sequences.first)
        #expect(snapshot.sequences.count == 1 && q.camera == camera && q.report == report)
        let restored = try SequenceLedger(chunks: q.chunks)
        #expect(restored == table.cameras[camera]?.sequence.ledger)
        #expect(restored.gaps.map(\.count) == [1])
        #expect(table.cameras[camera]?.sequence.backlog?.events == 3)
        // Nothing changed since: the next snapshot carries no sequence state. A failed commit marks it dirty again.
        #expect(table.takeSnapshot(nowMs: 0).sequences.isEmpty)
        table.failed(snapshot)
        #expect(table.takeSnapshot(nowMs: 0).sequences.first?.report == report)
        // Reopened over what was stored: the same ledger and report.
        let reopened = BucketTable(
            policy: .overwrite, logOffset: 1, cameras: snapshot.cameras,
            sequences: [camera: CameraSequence(ledger: restored, report: report, reportArrivalMs: Self.t0 + 20_000)])
        let again = Self.event(3, Self.t0 + 3000)
        #expect(BucketTableTests.counted(reopened.applying(EventRecord(arrivalMs: Self.t0, events: [again]))) == IngestOutcome(duplicates: 1))
    }
}

extension BucketTable {
    /// Applies `record` to a copy (buckets it needs count as absent from the store).
    func applying(_ record: EventRecord) -> BucketTable.Applied {
        var t = self
        let first = t.apply(record, endOffset: appliedOffset + 1, nowMs: 0)
        guard case .needs(let keys) = first else { return first }
        return t.apply(record, endOffset: appliedOffset + 1, nowMs: 0, loaded: keys.map { .init(key: $0, stored: nil) })
    }
}
