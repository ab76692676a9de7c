import SpeedflowAggregation
import SpeedflowModel
import Testing

/// The bucket table without any store: what is a duplicate, where late events go, and which buckets it asks
/// for instead of reading them itself.
@Suite("Bucket table: dedup, late events, loads asked for, never done")
struct BucketTableTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z, a bucket boundary

    static func event(_ camera: String, _ ms: Int64, _ speed: Double, id: String) -> CameraEvent {
        CameraEvent(kvfvId: camera, timestampMs: ms, speed: speed, eventId: id)
    }

    static func record(_ events: CameraEvent...) -> EventRecord { EventRecord(arrivalMs: t0 + 3_600_000, events: events) }

    static func counted(_ applied: BucketTable.Applied) -> IngestOutcome? {
        if case .counted(let o) = applied { return o }
        return nil
    }

    @Test("the first copy of an identity counts, later copies are duplicates")
    func duplicates() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let e = Self.event("cam", Self.t0, 50, id: "a")
        #expect(Self.counted(table.apply(Self.record(e, e), endOffset: 10, nowMs: 0)) == IngestOutcome(accepted: 1, duplicates: 1))
        #expect(Self.counted(table.apply(Self.record(e), endOffset: 20, nowMs: 0)) == IngestOutcome(accepted: 0, duplicates: 1))
        #expect(table.appliedOffset == 20)
        let camera = table.kvfvIds["cam"]!
        #expect(table.hotStates(camera: camera, buckets: 0..<Int64.max).values.map(\.count) == [1])
    }

    /// A group commit's late events are read in one go: `missingBuckets` names, for a whole sequence of records,
    /// exactly what applying them one by one would ask for — evicted buckets at or before each camera's newest
    /// event, once each — and nothing for buckets in memory, newer ones, or cameras never seen.
    @Test("missingBuckets names what the records would ask for one by one, each bucket once")
    func missingBucketsForAGroup() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let hour: Int64 = 3_600_000
        for (i, camera) in ["a", "b"].enumerated() {
            let events = (0..<6).map { Self.event(camera, Self.t0 + Int64($0) * hour, 50, id: "\(camera)\($0)") }
            _ = table.apply(EventRecord(arrivalMs: 0, events: events), endOffset: UInt64(10 * (i + 1)), nowMs: 0)
        }
        table.persisted(table.takeSnapshot(nowMs: 0))
        table.evict(nowMs: 1_000_000, idleMs: 1, maxIdentities: .max, workingSetMs: 0)
        // Back in memory: a's bucket at 5 h.
        let a5 = BucketKey(camera: table.kvfvIds["a"]!, bucket: Bucket.index(ofTimestamp: Self.t0 + 5 * hour))
        let back = Self.record(Self.event("a", Self.t0 + 5 * hour + 1, 50, id: "a5b"))
        #expect(table.apply(back, endOffset: 30, nowMs: 1_000_000) == .needs([a5]))
        _ = table.apply(back, endOffset: 30, nowMs: 1_000_000, loaded: [.init(key: a5, stored: nil)])
        let records = [
            Self.record(Self.event("a", Self.t0 + 1, 50, id: "x1"), Self.event("a", Self.t0 + 5 * hour + 2, 50, id: "x2")),
            Self.record(Self.event("b", Self.t0 + 2 * hour, 50, id: "x3"), Self.event("a", Self.t0 + 2, 50, id: "x4")),
            Self.record(Self.event("b", Self.t0 + 9 * hour, 50, id: "x5"), Self.event("new", Self.t0, 50, id: "x6")),
        ]
        let a = table.kvfvIds["a"]!, b = table.kvfvIds["b"]!
        let expected = [BucketKey(camera: a, bucket: Bucket.index(ofTimestamp: Self.t0)),
                        BucketKey(camera: b, bucket: Bucket.index(ofTimestamp: Self.t0 + 2 * hour))]
        #expect(table.missingBuckets(for: records) == expected)
        // One by one, the same buckets are asked for — and given them, every record counts without another read.
        var asked: [BucketKey] = []
        var offset: UInt64 = 40
        for record in records {
            if case .needs(let keys) = table.apply(record, endOffset: offset, nowMs: 2_000_000) {
                asked += keys
                let loaded = keys.map { BucketTable.LoadedBucket(key: $0, stored: nil) }
                #expect(Self.counted(table.apply(record, endOffset: offset, nowMs: 2_000_000, loaded: loaded)) != nil)
            }
            offset += 10
        }
        #expect(asked == expected)
    }

    /// A late event for a bucket evicted from memory: the table names the bucket and changes nothing (not the
    /// other events of the record, not the offset); given the stored bucket it counts — and the stored
    /// identities make a resent event a duplicate.
    @Test("a late event for an evicted bucket asks for it, all or nothing, then dedups against the store's ids")
    func lateEventAsksForItsBucket() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let early = Self.event("cam", Self.t0, 40, id: "early")
        let later = Self.event("cam", Self.t0 + 3_000_000, 60, id: "later")
        _ = table.apply(Self.record(early, later), endOffset: 10, nowMs: 0)
        let snapshot = table.takeSnapshot(nowMs: 0)
        table.persisted(snapshot)
        table.evict(nowMs: 1_000_000, idleMs: 1, maxIdentities: .max, workingSetMs: 0)
        #expect(table.hotBucketCount == 0)
        #expect(table.hotIdentities == 0)

        let camera = table.kvfvIds["cam"]!
        let key = BucketKey(camera: camera, bucket: Bucket.index(ofTimestamp: Self.t0))
        let resent = early
        let fresh = Self.event("cam", Self.t0 + 1, 45, id: "late")
        let newest = Self.event("cam", Self.t0 + 7_200_000, 70, id: "newest")  // past the newest: no read
        let record = Self.record(newest, resent, fresh)
        #expect(table.apply(record, endOffset: 20, nowMs: 2_000_000) == .needs([key]))
        #expect(table.appliedOffset == 10)
        #expect(table.cameras[camera]!.accepted == 2)  // `newest` not counted either

        let stored = snapshot.buckets.first { $0.key == key }!
        let loaded = BucketTable.LoadedBucket(key: key, stored: StoredBucket(state: stored.state, ids: stored.addedIds))
        #expect(Self.counted(table.apply(record, endOffset: 20, nowMs: 2_000_000, loaded: [loaded])) == IngestOutcome(accepted: 2, duplicates: 1))
        #expect(table.hotStates(camera: camera, buckets: key.bucket..<key.bucket + 1)[key.bucket]?.count == 2)
        #expect(table.appliedOffset == 20)
    }

    @Test("append-deltas: snapshots carry each bucket's delta and new events; the backlog drains on persist")
    func deltas() {
        var table = BucketTable(policy: .appendDeltas, logOffset: 0, cameras: [])
        _ = table.apply(Self.record(Self.event("cam", Self.t0, 50, id: "a"), Self.event("cam", Self.t0 + 1, 70, id: "b")), endOffset: 5, nowMs: 0)
        #expect(table.unflushedEvents == 2)
        let first = table.takeSnapshot(nowMs: 0)
        #expect(first.buckets.count == 1)
        #expect(first.buckets[0].delta.count == 2)
        #expect(first.buckets[0].events.map(\.eventId) == ["a", "b"])
        _ = table.apply(Self.record(Self.event("cam", Self.t0 + 2, 90, id: "c")), endOffset: 9, nowMs: 0)
        let second = table.takeSnapshot(nowMs: 0)
        #expect(second.buckets[0].delta.count == 1)  // only what came after the first cut
        #expect(second.buckets[0].state.count == 3)
        table.persisted(first)
        table.persisted(second)
        #expect(table.unflushedEvents == 0)
        #expect(table.committedOffset == 9)
    }

    @Test("overwrite: a failed snapshot's identities go out again with the next one")
    func failedIsDirtyAgain() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        _ = table.apply(Self.record(Self.event("cam", Self.t0, 50, id: "a")), endOffset: 5, nowMs: 0)
        let failed = table.takeSnapshot(nowMs: 0)
        #expect(failed.buckets[0].events.isEmpty)  // no deltas under overwrite
        table.failed(failed)
        _ = table.apply(Self.record(Self.event("cam", Self.t0 + 1, 60, id: "b")), endOffset: 7, nowMs: 0)
        let next = table.takeSnapshot(nowMs: 0)
        #expect(Set(next.buckets[0].addedIds) == Set(failed.buckets[0].addedIds).union(next.buckets[0].addedIds))
        #expect(next.buckets[0].addedIds.count == 2)
        #expect(next.cameras.map(\.kvfvId) == ["cam"])
        // Dirty buckets are never evicted, whatever the budget.
        table.evict(nowMs: .max / 2, idleMs: 0, maxIdentities: 0, workingSetMs: 0)
        #expect(table.hotBucketCount == 1)
    }

    @Test("a speed no bucket can hold is not counted, identity included")
    func unrepresentableSpeed() {
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        let outcome = Self.counted(table.apply(Self.record(Self.event("cam", Self.t0, 5e-324, id: "sub")), endOffset: 1, nowMs: 0))
        #expect(outcome == IngestOutcome(accepted: 0, duplicates: 1))
        #expect(table.hotIdentities == 0)
    }
}
