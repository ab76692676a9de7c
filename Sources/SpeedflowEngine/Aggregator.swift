import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

/// A bucket held in memory: its aggregate, the identities counted in it, and whether the store has it.
struct HotBucket {
    var state: BucketState
    var ids: Set<UInt64>
    /// Identities added since the last snapshot: the next flush appends just these to the store.
    var pendingIds: [UInt64] = []
    /// Loaded from many chunks: the next flush writes the whole set as one chunk instead.
    var compactIds = false
    /// Only when the store records deltas: the aggregate and the events added since the last snapshot.
    var delta = BucketState()
    var pendingEvents: [CameraEvent] = []
    /// Bumped on every change; the store holds `persistedVersion`.
    var version: UInt64
    var persistedVersion: UInt64
    var lastTouchMs: Int64

    var isClean: Bool { version == persistedVersion }
}

/// What we know about a camera beyond its buckets; the newest times are persisted, the counters are since start.
struct CameraLive {
    var record: CameraRecord
    var lagMs: Int64 = 0
    var accepted: Int64 = 0
    var duplicates: Int64 = 0
    var rejected: Int64 = 0
    var lastInFutureMs: Int64?
    /// The last speeds seen, to tell a stuck sensor (all identical).
    var recentSpeeds: [Double] = []
    var dirty = false

    static let recentSpeedCount = 20

    var recentSpeedCursor = 0

    /// A ring of the last `recentSpeedCount` speeds (order does not matter for "all identical").
    mutating func noteSpeed(_ v: Double) {
        if recentSpeeds.count < Self.recentSpeedCount {
            recentSpeeds.append(v)
        } else {
            recentSpeeds[recentSpeedCursor] = v
            recentSpeedCursor = (recentSpeedCursor + 1) % Self.recentSpeedCount
        }
    }
}

/// The aggregation state machine: dedup by identity, then merge into the event's 5-minute bucket.
///
/// This is where "what is a duplicate" and "where do late events go" are decided. It is a value confined to
/// the engine's lock; loading a bucket that is not in memory (a late event for an evicted bucket) reads the
/// store, so memory stays bounded while dedup stays exact.
struct Aggregator {
    let store: any Store
    /// The store appends deltas (ClickHouse): keep each bucket's delta and new events until the next snapshot.
    let recordsDeltas: Bool
    var cameraIds: [String: Int64] = [:]
    var cameras: [Int64: CameraLive] = [:]
    /// Hot buckets per camera, so a query touches only its camera's entries.
    var hot: [Int64: [Int64: HotBucket]] = [:]
    var hotIdentities = 0
    var dirty: Set<BucketKey> = []
    var nextCameraId: Int64 = 1
    /// Log offset after the last applied record.
    var appliedOffset: UInt64
    /// Log offset the store holds.
    var committedOffset: UInt64

    init(store: any Store) throws {
        self.store = store
        self.recordsDeltas = store.recordsDeltas
        self.appliedOffset = try store.logOffset()
        self.committedOffset = appliedOffset
        for c in try store.cameras() {
            cameraIds[c.kvfvId] = c.id
            cameras[c.id] = CameraLive(record: c)
            nextCameraId = max(nextCameraId, c.id + 1)
        }
    }

    /// Applies one log record. Returns how many events were new and how many were duplicates.
    mutating func apply(_ record: EventRecord, endOffset: UInt64, nowMs: Int64) throws -> IngestOutcome {
        // All or nothing: every bucket the record touches is in memory before any event counts, so a store that
        // cannot be read fails the record untouched. (Counted in part, the next snapshot would carry the same
        // log offset as the previous one, and a delta store keyed by that offset would collapse the two.)
        for event in record.events {
            try ensureHot(camera: cameraId(for: event.kvfvId), bucket: Bucket.index(ofTimestamp: event.timestampMs), nowMs: nowMs)
        }
        var outcome = IngestOutcome()
        for event in record.events {
            if try apply(event, arrivalMs: record.arrivalMs, nowMs: nowMs) {
                outcome.accepted += 1
            } else {
                outcome.duplicates += 1
            }
        }
        appliedOffset = endOffset
        return outcome
    }

    /// Returns `true` when the event was counted, `false` for a duplicate.
    ///
    /// Buckets and cameras are mutated in place (`hot[c]![b]!`), never copied out and back: a copy would make
    /// the identity set non-unique and every insert would copy the whole set.
    mutating func apply(_ event: CameraEvent, arrivalMs: Int64, nowMs: Int64) throws -> Bool {
        let camera = cameraId(for: event.kvfvId)
        let bucket = Bucket.index(ofTimestamp: event.timestampMs)
        try ensureHot(camera: camera, bucket: bucket, nowMs: nowMs)
        let isNew = Self.add(event, to: &hot[camera]![bucket]!, nowMs: nowMs, recordsDeltas: recordsDeltas)
        if isNew {
            hotIdentities += 1
            dirty.insert(BucketKey(camera: camera, bucket: bucket))
        }
        Self.note(event, isNew: isNew, arrivalMs: arrivalMs, in: &cameras[camera]!)
        return isNew
    }

    /// Puts a bucket in memory if it is not: from the store, or new.
    private mutating func ensureHot(camera: Int64, bucket: Int64, nowMs: Int64) throws {
        guard hot[camera]?[bucket] == nil else { return }
        // Newer than the camera's newest counted event: the store cannot have it, so no read (and no
        // dependency on the store being up for live traffic).
        if let newest = cameras[camera]!.record.lastEventMs, bucket <= Bucket.index(ofTimestamp: newest) {
            hot[camera, default: [:]][bucket] = try loadBucket(BucketKey(camera: camera, bucket: bucket), nowMs: nowMs)
        } else {
            hot[camera, default: [:]][bucket] = HotBucket(
                state: BucketState(), ids: [], version: 0, persistedVersion: 0, lastTouchMs: nowMs)
        }
    }

    /// A bucket read back from more chunks than this is rewritten as one chunk when next flushed.
    static let maxChunks = 16

    /// A bucket not in memory: from the store (a late event for an evicted bucket), or a new one.
    private mutating func loadBucket(_ key: BucketKey, nowMs: Int64) throws -> HotBucket {
        if let stored = try store.loadBucket(key) {
            hotIdentities += stored.ids.count
            var entry = HotBucket(state: stored.state, ids: Set(stored.ids), version: 1, persistedVersion: 1, lastTouchMs: nowMs)
            entry.compactIds = stored.chunkCount > Self.maxChunks
            return entry
        }
        return HotBucket(state: BucketState(), ids: [], version: 0, persistedVersion: 0, lastTouchMs: nowMs)
    }

    /// Dedup, then merge: the only place an event changes a bucket.
    private static func add(_ event: CameraEvent, to entry: inout HotBucket, nowMs: Int64, recordsDeltas: Bool) -> Bool {
        entry.lastTouchMs = nowMs
        // A speed no bucket can hold (only in logs written before min_speed existed: a01ce8f accepted subnormals,
        // which made Σ1/v infinite) is not counted at all, identity included, so identities and count stay equal.
        guard BucketState.isRepresentable(event.speed) else { return false }
        let id = event.identity
        guard entry.ids.insert(id).inserted else { return false }
        entry.pendingIds.append(id)
        _ = entry.state.add(event.speed)
        if recordsDeltas {
            _ = entry.delta.add(event.speed)
            entry.pendingEvents.append(event)
        }
        entry.version += 1
        return true
    }

    private static func note(_ event: CameraEvent, isNew: Bool, arrivalMs: Int64, in live: inout CameraLive) {
        if isNew {
            live.accepted += 1
            if event.timestampMs >= (live.record.lastEventMs ?? .min) {
                live.record.lastEventMs = event.timestampMs
            }
            live.noteSpeed(event.speed)
        } else {
            live.duplicates += 1
        }
        live.record.lastArrivalMs = max(live.record.lastArrivalMs ?? .min, arrivalMs)
        // How old the camera's freshest event was when it arrived: a backlog flush shows as lag.
        live.lagMs = max(0, arrivalMs - (live.record.lastEventMs ?? arrivalMs))
        live.dirty = true
    }

    mutating func cameraId(for kvfvId: String) -> Int64 {
        if let id = cameraIds[kvfvId] { return id }
        let id = nextCameraId
        nextCameraId += 1
        cameraIds[kvfvId] = id
        var live = CameraLive(record: CameraRecord(id: id, kvfvId: kvfvId))
        live.dirty = true
        cameras[id] = live
        return id
    }

    // MARK: - Flushing

    /// A consistent cut of everything changed since the last snapshot, for the store.
    struct Snapshot: Sendable {
        struct Bucket: Sendable {
            var key: BucketKey
            var state: BucketState
            var addedIds: [UInt64]
            var replacesIds: Bool
            var version: UInt64
            var delta: BucketState
            var events: [CameraEvent]
        }
        var buckets: [Bucket] = []
        var cameras: [CameraRecord] = []
        var logOffset: UInt64 = 0
        var timeMs: Int64 = 0

        var isEmpty: Bool { buckets.isEmpty && cameras.isEmpty }
    }

    /// Takes the changed buckets (copy-on-write copies: cheap until the next change) and clears the dirty set.
    mutating func takeSnapshot(nowMs: Int64) -> Snapshot {
        var s = Snapshot(logOffset: appliedOffset, timeMs: nowMs)
        s.buckets.reserveCapacity(dirty.count)
        for key in dirty {
            guard let e = hot[key.camera]?[key.bucket] else { continue }
            if e.compactIds {
                s.buckets.append(.init(
                    key: key, state: e.state, addedIds: Array(e.ids), replacesIds: true, version: e.version,
                    delta: e.delta, events: e.pendingEvents))
                hot[key.camera]![key.bucket]!.compactIds = false
            } else {
                s.buckets.append(.init(
                    key: key, state: e.state, addedIds: e.pendingIds, replacesIds: false, version: e.version,
                    delta: e.delta, events: e.pendingEvents))
            }
            hot[key.camera]![key.bucket]!.pendingIds = []
            if recordsDeltas {
                hot[key.camera]![key.bucket]!.delta = BucketState()
                hot[key.camera]![key.bucket]!.pendingEvents = []
            }
        }
        dirty.removeAll(keepingCapacity: true)
        for (id, live) in cameras where live.dirty {
            s.cameras.append(live.record)
            cameras[id]!.dirty = false
        }
        return s
    }

    /// After the store committed `snapshot`: mark what it holds as persisted.
    mutating func persisted(_ snapshot: Snapshot) {
        committedOffset = max(committedOffset, snapshot.logOffset)
        for b in snapshot.buckets {
            if var e = hot[b.key.camera]?[b.key.bucket] {
                e.persistedVersion = max(e.persistedVersion, b.version)
                hot[b.key.camera]![b.key.bucket] = e
            }
        }
    }

    /// After a failed commit to a store that overwrites whole states: everything in the snapshot is dirty again.
    /// (Delta stores retry the failed snapshot verbatim instead; see `Engine.commit`.)
    mutating func failed(_ snapshot: Snapshot) {
        for b in snapshot.buckets {
            dirty.insert(b.key)
            // Not evicted meanwhile: its version is ahead of the store, so it is not clean.
            if b.replacesIds {
                hot[b.key.camera]?[b.key.bucket]?.compactIds = true
            } else {
                hot[b.key.camera]?[b.key.bucket]?.pendingIds.append(contentsOf: b.addedIds)
            }
        }
        for c in snapshot.cameras { cameras[c.id]?.dirty = true }
    }

    /// Drops persisted buckets untouched for `idleMs`, and more (least recently touched first) while over
    /// `maxIdentities` — but never one touched within `workingSetMs`: evicting the buckets being written
    /// would only reload them at once (thrash); memory then overshoots the budget by the working set.
    /// Dirty buckets always stay: they are not in the store yet.
    mutating func evict(nowMs: Int64, idleMs: Int64, maxIdentities: Int, workingSetMs: Int64) {
        var candidates: [(touch: Int64, key: BucketKey, ids: Int)] = []
        for (camera, buckets) in hot {
            for (bucket, e) in buckets where e.isClean {
                if nowMs - e.lastTouchMs >= idleMs {
                    remove(BucketKey(camera: camera, bucket: bucket), ids: e.ids.count)
                } else if hotIdentities > maxIdentities && nowMs - e.lastTouchMs >= workingSetMs {
                    candidates.append((e.lastTouchMs, BucketKey(camera: camera, bucket: bucket), e.ids.count))
                }
            }
        }
        guard hotIdentities > maxIdentities else { return }
        for c in candidates.sorted(by: { $0.touch < $1.touch }) {
            guard hotIdentities > maxIdentities else { break }
            remove(c.key, ids: c.ids)
        }
    }

    private mutating func remove(_ key: BucketKey, ids: Int) {
        hot[key.camera]![key.bucket] = nil
        if hot[key.camera]!.isEmpty { hot[key.camera] = nil }
        hotIdentities -= ids
    }

    var hotBucketCount: Int { hot.values.reduce(0) { $0 + $1.count } }
}
