import SpeedflowModel

/// Every camera's buckets in memory: where "what is a duplicate" and "where does a late event go" are decided.
///
/// A pure value, no IO: applying a record either counts it or names the buckets that must first be read from
/// the store (a late event for a bucket evicted from memory). The caller reads them — outside any lock — and
/// applies the record again with them. So memory stays bounded while dedup stays exact, and the lock that
/// guards the table is never held across a store read.
///
/// Snapshots cut what changed for the store; `persisted` / `failed` / `evict` follow the flush (see
/// `FlushMachine` for when flushes run and what a failed one means).
public struct BucketTable: Sendable {
    /// A bucket held in memory: its aggregate, the identities counted in it, and whether the store has it.
    public struct HotBucket: Sendable {
        public fileprivate(set) var state = BucketState()
        fileprivate var ids: Set<UInt64> = []
        /// Identities added since the last snapshot: the next flush appends just these to the store.
        fileprivate var pendingIds: [UInt64] = []
        /// Loaded from many chunks: the next flush writes the whole set as one chunk instead.
        fileprivate var compactIds = false
        /// `.appendDeltas` only: the aggregate and the events added since the last snapshot.
        fileprivate var delta = BucketState()
        fileprivate var pendingEvents: [CameraEvent] = []
        /// Bumped on every change; the store holds `persistedVersion`.
        fileprivate var version: UInt64 = 0
        fileprivate var persistedVersion: UInt64 = 0
        fileprivate var lastTouchMs: Int64

        fileprivate var isClean: Bool { version == persistedVersion }

        fileprivate init(lastTouchMs: Int64) { self.lastTouchMs = lastTouchMs }

        fileprivate init(stored: StoredBucket, nowMs: Int64) {
            state = stored.state
            ids = Set(stored.ids)
            version = 1
            persistedVersion = 1
            lastTouchMs = nowMs
            compactIds = stored.chunkCount > BucketTable.maxChunks
        }
    }

    /// A camera: its record (persisted), counters since start, and its buckets in memory.
    public struct Camera: Sendable {
        public fileprivate(set) var record: CameraRecord
        /// How old the camera's freshest event was when it arrived: a backlog flush shows as lag.
        public fileprivate(set) var lagMs: Int64 = 0
        public fileprivate(set) var accepted: Int64 = 0
        public fileprivate(set) var duplicates: Int64 = 0
        public fileprivate(set) var rejected: Int64 = 0
        public fileprivate(set) var lastInFutureMs: Int64?
        /// Rejections counted here and not yet in the store (taken by a snapshot or not), per 5-minute bucket of
        /// arrival time and reason: what a query adds to the store's counts.
        public fileprivate(set) var rejections: [Int64: [RejectionReason: Int64]] = [:]
        /// The part of `rejections` the next snapshot takes.
        fileprivate var pendingRejections: [Int64: [RejectionReason: Int64]] = [:]
        /// The last `recentSpeedCount` speeds (a ring; order does not matter for "all identical": a stuck sensor).
        public fileprivate(set) var recentSpeeds: [Double] = []
        public fileprivate(set) var buckets: [Int64: HotBucket] = [:]
        /// What the camera delivered by sequence number, and what it reported having recorded (`seq` cameras).
        public fileprivate(set) var sequence = CameraSequence()
        /// Resends of a sequence number already counted whose content differs (a camera bug; never counted).
        /// Best effort: seen only while the first copy's content hash is among the camera's recent ones.
        public fileprivate(set) var conflictingDuplicates: Int64 = 0
        /// Content hashes of the camera's recent sequence numbers: a ring of `recentSequenceCount` slots indexed by
        /// `seq % recentSequenceCount` (empty until the camera sends a `seq`), so keeping them costs no allocation
        /// per event.
        fileprivate var recentContent: [RecentSequence] = []
        /// Ledger chunks changed since the last snapshot, and whether the report did.
        fileprivate var dirtyChunks: Set<SequenceLedger.ChunkKey> = []
        fileprivate var reportDirty = false
        fileprivate var recentSpeedCursor = 0
        fileprivate var dirty = false

        public static let recentSequenceCount = 1024

        public static let recentSpeedCount = 20

        fileprivate init(record: CameraRecord) { self.record = record }

        fileprivate mutating func noteSpeed(_ v: Double) {
            if recentSpeeds.count < Self.recentSpeedCount {
                recentSpeeds.append(v)
            } else {
                recentSpeeds[recentSpeedCursor] = v
                recentSpeedCursor = (recentSpeedCursor + 1) % Self.recentSpeedCount
            }
        }

        /// This camera without its buckets (a copy for a reader that needs only its record and counters).
        public mutating func dropBuckets() { buckets = [:] }

        /// Whether the last `recentSpeedCount` speeds were all identical.
        public var looksStuck: Bool {
            recentSpeeds.count == Self.recentSpeedCount && recentSpeeds.allSatisfy { $0 == recentSpeeds[0] }
        }
    }

    /// A bucket read from the store for `apply(_:endOffset:nowMs:loaded:)`; `stored == nil`: the store has none.
    public struct LoadedBucket: Sendable {
        public var key: BucketKey
        public var stored: StoredBucket?

        public init(key: BucketKey, stored: StoredBucket?) {
            self.key = key
            self.stored = stored
        }
    }

    public enum Applied: Sendable, Hashable {
        /// The record is counted: how many events were new and how many duplicates.
        case counted(IngestOutcome)
        /// Nothing changed: read these buckets from the store and apply the record again with them.
        case needs([BucketKey])
    }

    /// A bucket read back from more chunks than this is rewritten as one chunk when next flushed.
    public static let maxChunks = 16

    public let policy: CommitPolicy
    /// An event arriving more than this after the end of its 5-minute bucket is late (`BucketState.lateCount`).
    public let lateGraceMs: Int64
    /// Cameras by store id; `kvfvIds` maps a camera's name to its id.
    public private(set) var cameras: [Int64: Camera] = [:]
    public private(set) var kvfvIds: [String: Int64] = [:]
    /// Every camera's name in order, kept as cameras are learnt (the fleet view pages through it).
    public private(set) var names = SortedNames()
    /// Identities held in memory (the memory budget `evict` keeps).
    public private(set) var hotIdentities = 0
    /// `.appendDeltas`: events counted whose snapshot has not landed in the store yet (a store outage shows
    /// here; the engine refuses intake beyond a bound so memory cannot grow without one).
    public private(set) var unflushedEvents = 0
    /// Log offset after the last applied record.
    public private(set) var appliedOffset: UInt64
    /// Log offset the store holds.
    public private(set) var committedOffset: UInt64
    private var dirty: Set<BucketKey> = []
    private var nextCameraId: Int64 = 1
    /// Where the store already holds a camera's rejection counts, when that is beyond `committedOffset` for
    /// some cameras (`StoreWriter.rejectionsStoredUpTo`): a replayed record's tallies are not counted again there.
    private let rejectionsStoredUpTo: (@Sendable (String) -> UInt64)?

    /// A table over a store at `logOffset` that knows `cameras`.
    public init(
        policy: CommitPolicy, logOffset: UInt64, cameras records: [CameraRecord], lateGraceMs: Int64 = 300_000,
        sequences: [Int64: CameraSequence] = [:], rejectionsStoredUpTo: (@Sendable (String) -> UInt64)? = nil
    ) {
        self.rejectionsStoredUpTo = rejectionsStoredUpTo
        self.policy = policy
        self.lateGraceMs = lateGraceMs
        self.appliedOffset = logOffset
        self.committedOffset = logOffset
        learn(records)
        for (id, sequence) in sequences { cameras[id]?.sequence = sequence }
    }

    // MARK: - Applying

    /// Applies one log record ending at `endOffset`, all or nothing: every bucket it touches must be in memory
    /// (or in `loaded`) before any event counts, so a store that cannot be read leaves the record untouched.
    /// (Counted in part, the next snapshot would carry the same log offset as the previous one, and a delta
    /// store keyed by that offset would collapse the two.)
    public mutating func apply(
        _ record: EventRecord, endOffset: UInt64, nowMs: Int64, loaded: [LoadedBucket] = []
    ) -> Applied {
        insert(loaded, nowMs: nowMs)
        var missing: [BucketKey] = []
        for event in record.events {
            let camera = cameraId(for: event.kvfvId)
            let bucket = Bucket.index(ofTimestamp: event.timestampMs)
            guard cameras[camera]?.buckets[bucket] == nil else { continue }
            // Newer than the camera's newest counted event: the store cannot have it, so no read (and no
            // dependency on the store being up for live traffic).
            if let newest = cameras[camera]?.record.lastEventMs, bucket <= Bucket.index(ofTimestamp: newest) {
                let key = BucketKey(camera: camera, bucket: bucket)
                if !missing.contains(key) { missing.append(key) }
            } else {
                cameras[camera]?.buckets[bucket] = HotBucket(lastTouchMs: nowMs)
            }
        }
        guard missing.isEmpty else { return .needs(missing) }
        for report in record.reports {
            let camera = cameraId(for: report.kvfvId)
            if cameras[camera]?.sequence.note(report, arrivalMs: record.arrivalMs) == true {
                cameras[camera]?.reportDirty = true
                cameras[camera]?.dirty = true
            }
        }
        if !record.rejections.isEmpty { tally(record, endOffset: endOffset) }
        var outcome = IngestOutcome()
        for event in record.events {
            if count(event, arrivalMs: record.arrivalMs, nowMs: nowMs) {
                outcome.accepted += 1
            } else {
                outcome.duplicates += 1
            }
        }
        appliedOffset = endOffset
        return .counted(outcome)
    }

    /// Puts buckets read from the store into memory (clean: the store has them), unless one is there already.
    public mutating func insert(_ loaded: [LoadedBucket], nowMs: Int64) {
        for l in loaded where cameras[l.key.camera] != nil && cameras[l.key.camera]?.buckets[l.key.bucket] == nil {
            hotIdentities += l.stored?.ids.count ?? 0
            cameras[l.key.camera]?.buckets[l.key.bucket] =
                l.stored.map { HotBucket(stored: $0, nowMs: nowMs) } ?? HotBucket(lastTouchMs: nowMs)
        }
    }

    /// The buckets `apply` would ask for, for every record of `records` applied in turn: the late ones that are
    /// neither in memory nor newer than their camera's newest counted event. Read together before applying, so
    /// a group of records costs the store one read, not one per record. (A record can only make a bucket it
    /// needs appear in memory by reading it; one that raises its camera's newest event can make a later record
    /// need a bucket this did not list, which `apply` then still asks for.)
    public func missingBuckets(for records: some Sequence<EventRecord>) -> [BucketKey] {
        var missing: [BucketKey] = []
        var seen: Set<BucketKey> = []
        for record in records {
            for event in record.events {
                guard let camera = kvfvIds[event.kvfvId], let known = cameras[camera],
                    let newest = known.record.lastEventMs
                else { continue }
                let bucket = Bucket.index(ofTimestamp: event.timestampMs)
                guard bucket <= Bucket.index(ofTimestamp: newest), known.buckets[bucket] == nil else { continue }
                let key = BucketKey(camera: camera, bucket: bucket)
                if seen.insert(key).inserted { missing.append(key) }
            }
        }
        return missing
    }

    /// Dedup, then merge: the only place an event changes a bucket. Returns `true` when the event was counted.
    ///
    /// The bucket and camera are mutated in place (`[key, default:]` on entries known to exist), never copied
    /// out and back: a copy would make the identity set non-unique and every insert would copy the whole set.
    private mutating func count(_ event: CameraEvent, arrivalMs: Int64, nowMs: Int64) -> Bool {
        let camera = cameraId(for: event.kvfvId)
        let bucket = Bucket.index(ofTimestamp: event.timestampMs)
        // A numbered event's identity is (epoch, seq) in its camera's ledger; others dedup within their bucket.
        if let seq = event.seq {
            guard BucketState.isRepresentable(event.speed) else { return false }
            let key = SequenceKey(epoch: event.seqEpoch ?? 0, seq: seq)
            // One in-place access to the camera (each `cameras[camera]?.…` would look it up, and reads copy it).
            guard Self.noteSequence(key, of: event, in: &cameras[camera, default: Camera(record: CameraRecord(id: camera, kvfvId: event.kvfvId))]) else {
                Self.note(event, isNew: false, arrivalMs: arrivalMs, in: &cameras[camera, default: Camera(record: CameraRecord(id: camera, kvfvId: event.kvfvId))])
                return false
            }
        }
        let late = arrivalMs > Bucket.start(ofIndex: bucket + 1) + lateGraceMs ? arrivalMs : nil
        let isNew = Self.add(
            event, to: &cameras[camera, default: Camera(record: CameraRecord(id: camera, kvfvId: event.kvfvId))]
                .buckets[bucket, default: HotBucket(lastTouchMs: nowMs)],
            nowMs: nowMs, policy: policy, lateArrivalMs: late)
        if isNew {
            if event.seq == nil { hotIdentities += 1 }
            if policy == .appendDeltas { unflushedEvents += 1 }
            dirty.insert(BucketKey(camera: camera, bucket: bucket))
        }
        Self.note(event, isNew: isNew, arrivalMs: arrivalMs, in: &cameras[camera, default: Camera(record: CameraRecord(id: camera, kvfvId: event.kvfvId))])
        return isNew
    }

    /// Takes `key` into the camera's ledger; `false` for a number already there (a duplicate, counted as
    /// conflicting when its content differs from the first copy's, as far as that copy is still remembered).
    private static func noteSequence(_ key: SequenceKey, of event: CameraEvent, in camera: inout Camera) -> Bool {
        let content = EventIdentity.contentHash(of: event)
        let slot = Int(key.seq % Int64(Camera.recentSequenceCount))
        guard camera.sequence.ledger.insert(epoch: key.epoch, seq: key.seq, timeMs: event.timestampMs) else {
            if slot < camera.recentContent.count, camera.recentContent[slot].key == key, camera.recentContent[slot].content != content {
                camera.conflictingDuplicates += 1
            }
            return false
        }
        camera.dirtyChunks.insert(SequenceLedger.ChunkKey(epoch: key.epoch, seq: key.seq))
        if camera.recentContent.isEmpty {
            camera.recentContent = Array(repeating: RecentSequence(), count: Camera.recentSequenceCount)
        }
        camera.recentContent[slot] = RecentSequence(key: key, content: content)
        return true
    }

    private static func add(
        _ event: CameraEvent, to entry: inout HotBucket, nowMs: Int64, policy: CommitPolicy, lateArrivalMs: Int64?
    ) -> Bool {
        entry.lastTouchMs = nowMs
        // A speed no bucket can hold (only in logs written before min_speed existed: a01ce8f accepted subnormals,
        // which made Σ1/v infinite) is not counted at all, identity included, so identities and count stay equal.
        guard BucketState.isRepresentable(event.speed) else { return false }
        // Numbered events were deduplicated by the camera's ledger: the bucket keeps no identity for them.
        if event.seq == nil {
            let id = event.identity
            guard entry.ids.insert(id).inserted else { return false }
            entry.pendingIds.append(id)
        }
        _ = entry.state.add(event.speed, lane: event.lane, sequenced: event.seq != nil, lateArrivalMs: lateArrivalMs)
        if policy == .appendDeltas {
            _ = entry.delta.add(event.speed, lane: event.lane, sequenced: event.seq != nil, lateArrivalMs: lateArrivalMs)
            entry.pendingEvents.append(event)
        }
        entry.version += 1
        return true
    }

    private static func note(_ event: CameraEvent, isNew: Bool, arrivalMs: Int64, in camera: inout Camera) {
        if isNew {
            camera.accepted += 1
            if event.timestampMs >= (camera.record.lastEventMs ?? .min) {
                camera.record.lastEventMs = event.timestampMs
            }
            camera.noteSpeed(event.speed)
        } else {
            camera.duplicates += 1
        }
        camera.record.lastArrivalMs = max(camera.record.lastArrivalMs ?? .min, arrivalMs)
        camera.lagMs = max(0, arrivalMs - (camera.record.lastEventMs ?? arrivalMs))
        camera.dirty = true
    }

    /// The camera's id, assigning the next one (and a dirty record, persisted by the next flush) on first sight.
    private mutating func cameraId(for kvfvId: String) -> Int64 {
        if let id = kvfvIds[kvfvId] { return id }
        let id = nextCameraId
        nextCameraId += 1
        kvfvIds[kvfvId] = id
        names.insert(kvfvId)
        var camera = Camera(record: CameraRecord(id: id, kvfvId: kvfvId))
        camera.dirty = true
        cameras[id] = camera
        return id
    }

    /// Counts a record's rejection tallies against their cameras (learning a camera that so far sent only
    /// rejected events: health must see it), in the bucket of the record's arrival time.
    private mutating func tally(_ record: EventRecord, endOffset: UInt64) {
        let bucket = Bucket.index(ofTimestamp: record.arrivalMs)
        for t in record.rejections where t.count > 0 {
            // Already in the store's part for this camera (a sharded store's commit that landed in part).
            if let storedUpTo = rejectionsStoredUpTo, endOffset <= storedUpTo(t.kvfvId) { continue }
            let camera = cameraId(for: t.kvfvId)
            cameras[camera]?.rejections[bucket, default: [:]][t.reason, default: 0] += t.count
            cameras[camera]?.pendingRejections[bucket, default: [:]][t.reason, default: 0] += t.count
            cameras[camera]?.dirty = true
        }
    }

    /// Rejections counted in memory and not yet in the store, per camera (only `camera` when given), arrival
    /// bucket in `range` and reason.
    public func unflushedRejections(camera: Int64?, buckets range: Range<Int64>) -> [Int64: [Int64: [RejectionReason: Int64]]] {
        var result: [Int64: [Int64: [RejectionReason: Int64]]] = [:]
        let ids = camera.map { [$0] } ?? Array(cameras.keys)
        for id in ids {
            guard let held = cameras[id]?.rejections, !held.isEmpty else { continue }
            for (bucket, counts) in held where range.contains(bucket) { result[id, default: [:]][bucket] = counts }
        }
        return result
    }

    // MARK: - Cameras beyond their buckets

    /// Counts a rejection against its camera when the camera is known (for health: clock skew).
    public mutating func noteRejection(kvfvId: String, reason: RejectionReason, nowMs: Int64) {
        guard let id = kvfvIds[kvfvId] else { return }
        cameras[id]?.rejected += 1
        if reason == .inFuture { cameras[id]?.lastInFutureMs = nowMs }
    }

    /// Learns cameras from the store (at open, and on API nodes whose store other processes write), keeping the
    /// newest times of those already known.
    public mutating func learn(_ records: [CameraRecord]) {
        for r in records {
            if let id = kvfvIds[r.kvfvId], var known = cameras[id]?.record {
                known.lastEventMs = max(known.lastEventMs ?? .min, r.lastEventMs ?? .min)
                known.lastArrivalMs = max(known.lastArrivalMs ?? .min, r.lastArrivalMs ?? .min)
                cameras[id]?.record = known
            } else {
                kvfvIds[r.kvfvId] = r.id
                names.insert(r.kvfvId)
                cameras[r.id] = Camera(record: r)
                nextCameraId = max(nextCameraId, r.id + 1)
            }
        }
    }

    /// The non-empty in-memory states of `camera` for bucket numbers in `range`.
    public func hotStates(camera: Int64, buckets range: Range<Int64>) -> [Int64: BucketState] {
        var states: [Int64: BucketState] = [:]
        for (bucket, entry) in cameras[camera]?.buckets ?? [:] where range.contains(bucket) && !entry.state.isEmpty {
            states[bucket] = entry.state
        }
        return states
    }

    public var hotBucketCount: Int { cameras.values.reduce(0) { $0 + $1.buckets.count } }

    /// Passes the fleet's cameras reported recording but have not delivered (`CameraSequence.backlog`).
    public var cameraBacklogEvents: Int64 { cameras.values.map { $0.sequence.backlog?.events ?? 0 }.saturatingSum() }

    /// Passes missing between received sequence numbers, fleet-wide (the gaps of every ledger).
    public var sequenceMissingEvents: Int64 {
        cameras.values.map(\.sequence.ledger.missingCount).saturatingSum()
    }

    // MARK: - Flushing

    /// A consistent cut of everything changed since the last snapshot, for the store.
    public struct Snapshot: Sendable {
        public struct Bucket: Sendable {
            public var key: BucketKey
            public var state: BucketState
            public var addedIds: [UInt64]
            public var replacesIds: Bool
            public var version: UInt64
            public var delta: BucketState
            public var events: [CameraEvent]
        }
        /// A camera's changed ledger chunks (whole, encoded) and its report when that changed.
        public struct Sequence: Sendable {
            public var camera: Int64
            public var chunks: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])]
            public var report: CameraReport?
            public var reportArrivalMs: Int64?
        }
        /// Rejections counted since the previous snapshot, per camera and arrival bucket (added to the store's).
        public struct Rejections: Sendable, Hashable {
            public var key: BucketKey
            public var counts: [RejectionReason: Int64]
        }
        public var buckets: [Bucket] = []
        public var cameras: [CameraRecord] = []
        public var sequences: [Sequence] = []
        /// In (camera, bucket) order.
        public var rejections: [Rejections] = []
        public var logOffset: UInt64 = 0
        public var timeMs: Int64 = 0

        public var isEmpty: Bool { buckets.isEmpty && cameras.isEmpty && sequences.isEmpty && rejections.isEmpty }
        public var eventCount: Int { buckets.reduce(0) { $0 + $1.events.count } }
    }

    /// Takes the changed buckets (copy-on-write copies: cheap until the next change) and clears the dirty set.
    public mutating func takeSnapshot(nowMs: Int64) -> Snapshot {
        var s = Snapshot(logOffset: appliedOffset, timeMs: nowMs)
        s.buckets.reserveCapacity(dirty.count)
        for key in dirty {
            guard let e = cameras[key.camera]?.buckets[key.bucket] else { continue }
            s.buckets.append(.init(
                key: key, state: e.state, addedIds: e.compactIds ? Array(e.ids) : e.pendingIds, replacesIds: e.compactIds,
                version: e.version, delta: e.delta, events: e.pendingEvents))
            cameras[key.camera]?.buckets[key.bucket]?.compactIds = false
            cameras[key.camera]?.buckets[key.bucket]?.pendingIds = []
            if policy == .appendDeltas {
                cameras[key.camera]?.buckets[key.bucket]?.delta = BucketState()
                cameras[key.camera]?.buckets[key.bucket]?.pendingEvents = []
            }
        }
        dirty.removeAll(keepingCapacity: true)
        for (id, camera) in cameras where camera.dirty {
            s.cameras.append(camera.record)
            cameras[id]?.dirty = false
            if !camera.pendingRejections.isEmpty {
                for (bucket, counts) in camera.pendingRejections {
                    s.rejections.append(.init(key: BucketKey(camera: id, bucket: bucket), counts: counts))
                }
                cameras[id]?.pendingRejections = [:]
            }
            guard !camera.dirtyChunks.isEmpty || camera.reportDirty else { continue }
            s.sequences.append(.init(
                camera: id, chunks: camera.dirtyChunks.sorted().map { ($0, camera.sequence.ledger.chunk($0)) },
                report: camera.reportDirty ? camera.sequence.report : nil,
                reportArrivalMs: camera.reportDirty ? camera.sequence.reportArrivalMs : nil))
            cameras[id]?.dirtyChunks = []
            cameras[id]?.reportDirty = false
        }
        s.rejections.sort { ($0.key.camera, $0.key.bucket) < ($1.key.camera, $1.key.bucket) }
        return s
    }

    /// Whether committing `snapshot` would change the store (an empty snapshot at the stored offset would not).
    public func needsCommit(_ snapshot: Snapshot) -> Bool {
        !snapshot.isEmpty || snapshot.logOffset != committedOffset
    }

    /// After the store committed `snapshot`: mark what it holds as persisted.
    public mutating func persisted(_ snapshot: Snapshot) {
        committedOffset = max(committedOffset, snapshot.logOffset)
        unflushedEvents -= snapshot.eventCount
        for b in snapshot.buckets {
            guard let version = cameras[b.key.camera]?.buckets[b.key.bucket]?.persistedVersion else { continue }
            cameras[b.key.camera]?.buckets[b.key.bucket]?.persistedVersion = max(version, b.version)
        }
        // In the store now: no longer added to it by queries.
        for r in snapshot.rejections {
            for (reason, n) in r.counts {
                let left = (cameras[r.key.camera]?.rejections[r.key.bucket]?[reason] ?? 0) - n
                cameras[r.key.camera]?.rejections[r.key.bucket]?[reason] = left > 0 ? left : nil
            }
            if cameras[r.key.camera]?.rejections[r.key.bucket]?.isEmpty == true {
                cameras[r.key.camera]?.rejections[r.key.bucket] = nil
            }
        }
    }

    /// After a failed commit under `.overwrite`: everything in the snapshot is dirty again, so the next flush
    /// writes it (merged with newer changes). Under `.appendDeltas` the snapshot is retried verbatim instead.
    public mutating func failed(_ snapshot: Snapshot) {
        for b in snapshot.buckets {
            dirty.insert(b.key)
            // Not evicted meanwhile: its version is ahead of the store, so it is not clean.
            if b.replacesIds {
                cameras[b.key.camera]?.buckets[b.key.bucket]?.compactIds = true
            } else {
                cameras[b.key.camera]?.buckets[b.key.bucket]?.pendingIds.append(contentsOf: b.addedIds)
            }
        }
        for c in snapshot.cameras { cameras[c.id]?.dirty = true }
        // Not in the store: taken again by the next snapshot (still in `rejections` for queries meanwhile).
        for r in snapshot.rejections {
            for (reason, n) in r.counts {
                cameras[r.key.camera]?.pendingRejections[r.key.bucket, default: [:]][reason, default: 0] += n
            }
            cameras[r.key.camera]?.dirty = true
        }
        for q in snapshot.sequences {
            cameras[q.camera]?.dirtyChunks.formUnion(q.chunks.map(\.key))
            if q.report != nil { cameras[q.camera]?.reportDirty = true }
        }
    }

    /// Drops persisted buckets untouched for `idleMs`, and more (least recently touched first) while over
    /// `maxIdentities` — but never one touched within `workingSetMs`: evicting the buckets being written
    /// would only reload them at once (thrash); memory then overshoots the budget by the working set.
    /// Dirty buckets always stay: they are not in the store yet.
    public mutating func evict(nowMs: Int64, idleMs: Int64, maxIdentities: Int, workingSetMs: Int64) {
        var candidates: [(touch: Int64, key: BucketKey, ids: Int)] = []
        for (camera, entry) in cameras {
            for (bucket, e) in entry.buckets where e.isClean {
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
        cameras[key.camera]?.buckets[key.bucket] = nil
        hotIdentities -= ids
    }
}

/// A sequence number within its camera: the counter's epoch and the number.
public struct SequenceKey: Hashable, Sendable {
    public var epoch: Int64
    public var seq: Int64

    public init(epoch: Int64, seq: Int64) {
        self.epoch = epoch
        self.seq = seq
    }
}

/// A recently counted sequence number and a hash of its content (`BucketTable.Camera.recentContent`).
struct RecentSequence: Sendable {
    var key = SequenceKey(epoch: -1, seq: -1)
    var content: UInt64 = 0
}
