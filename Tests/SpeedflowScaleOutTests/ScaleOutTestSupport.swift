#if Kafka
import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import Synchronization
import SpeedflowTestSupport
import Testing

// Shared helpers (withTimeout, eventually, testLogger, consumeAll, mockCluster, temporaryDirectory,
// SeededRandom) are in SpeedflowTestSupport.

/// Keeps every log message, for tests that check what was logged.
final class CapturedLogs: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }
    let entries = Mutex<[Entry]>([])

    var logger: Logger {
        var logger = Logger(label: "captured") { _ in Handler(logs: self) }
        logger.logLevel = .debug
        return logger
    }

    func count(_ level: Logger.Level, _ message: String) -> Int {
        entries.withLock { $0.filter { $0.level == level && $0.message == message }.count }
    }

    func all(_ message: String) -> [Entry] { entries.withLock { $0.filter { $0.message == message } } }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }.mapValues { "\($0)" }
            logs.entries.withLock { $0.append(Entry(level: level, message: message.description, metadata: all)) }
        }
    }
}

/// The naive truth: the first copy of each event counts, once, in its camera's 5-minute bucket.
struct CountOracle {
    var seen: Set<String> = []
    var counts: [String: [Int64: Int64]] = [:]

    mutating func add(_ events: [CameraEvent]) {
        for e in events where seen.insert("\(e.kvfvId)|\(e.identity)").inserted {
            counts[e.kvfvId, default: [:]][Bucket.index(ofTimestamp: e.timestampMs), default: 0] += 1
        }
    }
}

/// Event counts per camera and bucket as `store` holds them.
func storedCounts(_ store: any StoreReader, nowMs: Int64) async throws -> [String: [Int64: Int64]] {
    let now = Bucket.index(ofTimestamp: nowMs)
    var counts: [String: [Int64: Int64]] = [:]
    for camera in try store.cameras() {
        for (bucket, state) in try await store.readStates(camera: camera.id, buckets: (now - 2000)..<(now + 100)) {
            counts[camera.kvfvId, default: [:]][bucket] = state.count
        }
    }
    return counts
}

/// The counts of several stores together (partitions hold disjoint cameras).
func storedCounts(_ stores: [any StoreReader], nowMs: Int64) async throws -> [String: [Int64: Int64]] {
    var all: [String: [Int64: Int64]] = [:]
    for store in stores {
        for (camera, buckets) in try await storedCounts(store, nowMs: nowMs) {
            #expect(all[camera] == nil, "camera \(camera) in two partitions")
            all[camera] = buckets
        }
    }
    return all
}

/// Requests as ingest nodes log them: each a few cameras' events, some late (hours), some resent (the same
/// event again in a later request).
func randomRequests(seed: UInt64, cameras: Int, requests: Int, nowMs: Int64) -> [EventRecord] {
    var rng = SeededRandom(seed: seed)
    var sent: [CameraEvent] = []
    var records: [EventRecord] = []
    for r in 0..<requests {
        var events: [CameraEvent] = []
        for i in 0..<Int(1 + rng.next() % 8) {
            if !sent.isEmpty, rng.next() % 6 == 0 {
                events.append(sent[Int(rng.next() % UInt64(sent.count))])
                continue
            }
            let camera = "KV\(rng.next() % UInt64(cameras))"
            let age = rng.next() % 5 == 0 ? Int64(rng.next() % (6 * 3_600_000)) : Int64(rng.next() % 600_000)
            let e = CameraEvent(
                kvfvId: camera, timestampMs: nowMs - age, speed: 20 + Double(rng.next() % 10_000) / 100,
                eventId: "\(camera)-\(r)-\(i)", lane: Int(rng.next() % 3), plate: "P\(r)")
            events.append(e)
            sent.append(e)
        }
        records.append(EventRecord(arrivalMs: nowMs - Int64(requests - r), events: events))
    }
    return records
}

/// What a Kafka topic holds after ingest nodes logged `records`: one message per camera per request, in its
/// partition (here: camera number mod `partitions`), offsets counting from 0 per partition.
func partitionMessages(_ records: [EventRecord], topic: String, partitions: Int32) -> [KafkaConsumerMessage] {
    var next: [Int32: Int64] = [:]
    var messages: [KafkaConsumerMessage] = []
    for record in records {
        var order: [String] = []
        var byCamera: [String: [CameraEvent]] = [:]
        for e in record.events {
            if byCamera[e.kvfvId] == nil { order.append(e.kvfvId) }
            byCamera[e.kvfvId, default: []].append(e)
        }
        for camera in order {
            let partition = Int32(camera.dropFirst(2))! % partitions
            let offset = next[partition, default: 0]
            next[partition] = offset + 1
            messages.append(KafkaConsumerMessage(
                topic: topic, partition: partition, offset: offset, key: Array(camera.utf8),
                value: EventRecord(arrivalMs: record.arrivalMs, events: byCamera[camera]!).encoded()))
        }
    }
    return messages
}

/// Opens each partition's aggregator on a SQLite store of its own in `dir` (what `aggregate --store sqlite` does).
func sqlitePartitions(_ dir: URL, wrap: @escaping @Sendable (any StoreWriter) -> any StoreWriter = { $0 }) -> @Sendable (KafkaPartition) throws -> Aggregator {
    { p in
        let store = try SQLiteStore(path: dir.appendingPathComponent("\(p.topic)-\(p.partition).sqlite").path,
                                    logger: testLogger("store"))
        return try Aggregator(store: wrap(store), configuration: EngineConfiguration(), logger: testLogger("aggregator"))
    }
}

/// `sqlitePartitions` with each store wrapped in a `FlakyStore`; `store` is the one opened last.
final class FlakyPartitions: Sendable {
    let dir: URL
    private let latest = Mutex<FlakyStore?>(nil)

    init(_ dir: URL) { self.dir = dir }

    var open: @Sendable (KafkaPartition) throws -> Aggregator {
        sqlitePartitions(dir, wrap: { [self] store in
            let f = FlakyStore(store)
            latest.withLock { $0 = f }
            return f
        })
    }

    var store: FlakyStore? { latest.withLock { $0 } }
}

/// A store whose `loadBucket` fails while `failuresLeft` > 0 (a ClickHouse outage seen by a late event).
final class FlakyStore: StoreWriter {
    struct Unavailable: Error {}
    let base: any StoreWriter
    let failuresLeft = Mutex(0)
    let loadAttempts = Mutex(0)
    /// `loadBuckets` calls (each reads many buckets; `loadAttempts` counts the buckets).
    let batchReads = Mutex(0)

    init(_ base: any StoreWriter) { self.base = base }

    func loadBuckets(_ keys: [BucketKey]) throws -> [BucketKey: StoredBucket] {
        batchReads.withLock { $0 += 1 }
        var found: [BucketKey: StoredBucket] = [:]
        for key in keys { if let stored = try loadBucket(key) { found[key] = stored } }
        return found
    }

    var commitPolicy: CommitPolicy { base.commitPolicy }
    func logOffset() throws -> UInt64 { try base.logOffset() }
    func cameras() throws -> [CameraRecord] { try base.cameras() }
    func sequences(cameras: [Int64]?) throws -> [Int64: CameraSequence] { try base.sequences(cameras: cameras) }
    func loadBucket(_ key: BucketKey) throws -> StoredBucket? {
        loadAttempts.withLock { $0 += 1 }
        let fail = failuresLeft.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if fail { throw Unavailable() }
        return try base.loadBucket(key)
    }
    func commit(_ commit: StoreCommit) throws { try base.commit(commit) }
    func readStates(camera: Int64, buckets range: Range<Int64>, lanes: Bool) async throws -> [(bucket: Int64, state: BucketState)] {
        try await base.readStates(camera: camera, buckets: range, lanes: lanes)
    }
    func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await base.statesByCamera(buckets: range)
    }
    func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        try await base.countsByCamera(buckets: range)
    }
    func rejections(camera: Int64, buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        try await base.rejections(camera: camera, buckets: range)
    }
    func rejectionsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        try await base.rejectionsByCamera(buckets: range)
    }
    func rejectionsStoredUpTo() throws -> (@Sendable (_ kvfvId: String) -> UInt64)? { try base.rejectionsStoredUpTo() }
    func reset(fromBucket: Int64, logOffset: UInt64) throws { try base.reset(fromBucket: fromBucket, logOffset: logOffset) }
    func pruneIdentities(before bucket: Int64) throws -> Int { try base.pruneIdentities(before: bucket) }
    func sizeInBytes() -> Int64 { base.sizeInBytes() }
    func maintain(nowMs: Int64) throws -> String? { try base.maintain(nowMs: nowMs) }
    func checkIntegrity(summaries: Bool) throws -> [String] { try base.checkIntegrity(summaries: summaries) }
    func quarantine(reason: String) throws -> String? { try base.quarantine(reason: reason) }
    func onCorruption(_ handler: @escaping @Sendable (StoreError) -> Void) { base.onCorruption(handler) }
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
#endif
