import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

/// A SQLite store that notes whether two commits ever ran at the same time, and in which order their log
/// offsets arrived. Commits are widened by a short sleep so that overlapping callers really do overlap.
final class OverlapDetectingStore: StoreWriter {
    let inner: SQLiteStore
    let running = Atomic<Int>(0)
    let overlaps = Atomic<Int>(0)
    let offsets = Mutex<[UInt64]>([])

    init(path: String) throws { inner = try SQLiteStore(path: path) }

    var commitPolicy: CommitPolicy { inner.commitPolicy }
    func logOffset() throws -> UInt64 { try inner.logOffset() }
    func cameras() throws -> [CameraRecord] { try inner.cameras() }
    func sequences(cameras: [Int64]?) throws -> [Int64: CameraSequence] { try inner.sequences(cameras: cameras) }
    func loadBucket(_ key: BucketKey) throws -> StoredBucket? { try inner.loadBucket(key) }
    func commit(_ commit: StoreCommit) throws {
        if running.add(1, ordering: .sequentiallyConsistent).newValue > 1 { overlaps.add(1, ordering: .relaxed) }
        defer { running.subtract(1, ordering: .sequentiallyConsistent) }
        usleep(500)
        offsets.withLock { $0.append(commit.logOffset) }
        try inner.commit(commit)
    }
    func readStates(camera: Int64, buckets range: Range<Int64>, lanes: Bool) async throws -> [(bucket: Int64, state: BucketState)] {
        try await inner.readStates(camera: camera, buckets: range, lanes: lanes)
    }
    func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await inner.statesByCamera(buckets: range)
    }
    func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        try await inner.countsByCamera(buckets: range)
    }
    func rejections(camera: Int64, buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        try await inner.rejections(camera: camera, buckets: range)
    }
    func rejectionsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        try await inner.rejectionsByCamera(buckets: range)
    }
    func rejectionsStoredUpTo() throws -> (@Sendable (_ kvfvId: String) -> UInt64)? { try inner.rejectionsStoredUpTo() }
    func reset(fromBucket: Int64, logOffset: UInt64) throws { try inner.reset(fromBucket: fromBucket, logOffset: logOffset) }
    func pruneIdentities(before bucket: Int64) throws -> Int { try inner.pruneIdentities(before: bucket) }
    func sizeInBytes() -> Int64 { inner.sizeInBytes() }
    func maintain(nowMs: Int64) throws -> String? { try inner.maintain(nowMs: nowMs) }
}

@Suite("Aggregator: flushes never overlap")
struct FlushRaceTests {
    /// An aggregator starts flushes from two places: after applying a record, and from its ticker when the
    /// topic is quiet. Two flushes at once let a later snapshot's log-offset marker land while an earlier
    /// snapshot was still in flight; a crash between them lost the earlier deltas behind the marker.
    @Test("applies and ticks racing start one flush at a time, in log order")
    func appliesAndTicksRacing() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try OverlapDetectingStore(path: dir.appendingPathComponent("store.sqlite").path)
        var configuration = EngineConfiguration()
        configuration.flushIntervalMs = 0  // every call finds a flush due
        let engine = try Aggregator(store: store, configuration: configuration)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Enough records for many flushes (each takes about a millisecond), with a bound on the run.
        var records = 0

        let ticking = Atomic<Bool>(true)
        let ticker = Thread {
            while ticking.load(ordering: .relaxed) { engine.tick() }
        }
        ticker.start()
        while store.offsets.withLock({ $0.count }) < 40 && records < 1_000_000 {
            let i = records
            records += 1
            let event = CameraEvent(kvfvId: "KV\(i % 4)", timestampMs: now - Int64(i % 50) * 60_000, speed: 50 + Double(i % 70),
                                    eventId: "e\(i)", lane: 1, plate: "P\(i)")
            _ = try engine.apply(EventRecord(arrivalMs: now, events: [event]), endOffset: UInt64(i + 1))
            engine.tick()
        }
        ticking.store(false, ordering: .relaxed)
        try engine.flushSynchronously()

        #expect(store.overlaps.load(ordering: .relaxed) == 0, "two commits ran at once")
        let offsets = store.offsets.withLock { $0 }
        #expect(offsets.count >= 40, "the race needs many flushes: \(offsets.count)")
        #expect(offsets == offsets.sorted(), "commits arrived out of log order")
        #expect(try store.logOffset() == UInt64(records))
        let stored = try await store.countsByCamera(buckets: Bucket.index(ofTimestamp: now - 3_600_000)..<(Bucket.index(ofTimestamp: now) + 1))
        #expect(stored.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(records))
    }
}
