import Dispatch
import Foundation
import Logging
import Metrics
import NIOPosix
import SpeedflowAggregation
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import Synchronization

/// Counts durable records into the bucket table and flushes the table to a store: the part every counting role
/// shares. `serve` feeds it from the segment log's group commit (`Engine`); `aggregate` feeds one per Kafka
/// partition. It never sees where records come from — only their order and the source position after each.
///
/// - Dedup and late events: `BucketTable` (pure). A bucket it asks for is read from the store here, outside
///   the table's lock.
/// - When a flush runs and what a failed commit means: `FlushMachine` (pure). Background flushes and integrity
///   checks run on the thread pool of the service that runs this aggregator (`start(background:)`; until then,
///   NIO's shared pool), so none outlives it; commits are atomic in the store (state, identities, source
///   position together).
public final class Aggregator: Sendable {
    public let store: any StoreWriter
    public let configuration: EngineConfiguration
    let logger: Logger
    let clock: @Sendable () -> Int64
    let table: Mutex<BucketTable>
    let flush: Mutex<FlushMachine<BucketTable.Snapshot>>
    /// `.appendDeltas`: events counted in memory whose snapshot has not landed in the store yet (the table's
    /// count, mirrored here so every request can read it without the table's lock).
    let storeBacklog = Atomic<Int>(0)
    let flushDone = DispatchSemaphore(value: 0)
    let lastMaintenanceMs = Mutex<Int64>(0)
    /// Commits started and ended (`store.commit` through `persisted`): a reader of rejection counts in memory and
    /// in the store takes both only while none runs and none starts, so a flush never counts twice or not at all.
    let commitCount = Mutex<(started: UInt64, ended: UInt64)>((0, 0))
    /// Where background flushes and integrity checks run: the running service's pool.
    let background = Mutex<NIOThreadPool>(NIOThreadPool.singleton)
    /// The role's own hourly retention after the store's: `serve` drops log segments the store has consumed.
    /// Gets the stored position and the cutoff time; returns what it removed.
    let retention: (@Sendable (_ storedOffset: UInt64, _ cutoffMs: Int64) throws -> Int)?

    private let hotGauge = Gauge(label: "speedflow_hot_buckets")
    private let backlogGauge = Gauge(label: "speedflow_store_backlog_events")
    private let cameraBacklogGauge = Gauge(label: "speedflow_camera_backlog_events")
    private let sequenceGapGauge = Gauge(label: "speedflow_sequence_missing_events")
    private let flushTimer = Timer(label: "speedflow_store_flush_seconds")

    /// Opens over `store`, checking it first (`checkStoreAtOpen`): a damaged store is rebuilt automatically only
    /// from `completeLog`, a log that still holds every event the store ever counted (`nil`: there is none).
    public init(
        store: any StoreWriter, configuration: EngineConfiguration = .init(), completeLog: (any Log)? = nil,
        retention: (@Sendable (_ storedOffset: UInt64, _ cutoffMs: Int64) throws -> Int)? = nil,
        logger: Logger = Logger(label: "speedflow.aggregator"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.store = store
        self.configuration = configuration
        self.retention = retention
        self.logger = logger
        self.clock = clock
        try Self.checkStoreAtOpen(store, completeLog: completeLog, logger: logger)
        // The one place the store's commit policy is read: the table and the flush protocol carry it.
        let policy = store.commitPolicy
        let offset = try store.logOffset()
        self.table = Mutex(
            BucketTable(
                policy: policy, logOffset: offset, cameras: try store.cameras(),
                lateGraceMs: configuration.lateGraceMs, sequences: try store.sequences(cameras: nil),
                rejectionsStoredUpTo: try store.rejectionsStoredUpTo()))
        self.flush = Mutex(FlushMachine(policy: policy, intervalMs: configuration.flushIntervalMs))
    }

    // MARK: - Applying

    /// Counts a durable record ending at source position `endOffset`. A late event for a bucket no longer in
    /// memory needs it from the store: read here, outside the table's lock, then the record is applied again
    /// with it (all or nothing). Throws when the store cannot be read; nothing of the record was counted then,
    /// so applying it again is exact. `upcoming`: records that will be applied after this one (a Kafka poll's
    /// rest); when this one needs a read, what they need is read with it, in the same query.
    public func apply(_ record: EventRecord, endOffset: UInt64, upcoming: ArraySlice<EventRecord> = []) throws -> IngestOutcome {
        try apply([(record, endOffset)], upcoming: upcoming)[0].get()
    }

    /// Counts records in order — a group commit's — under one acquisition of the table's lock for as long as no
    /// record needs a bucket from the store; such a record's buckets are read outside the lock, as in `apply`.
    /// A record the store cannot serve fails alone (its result), and the rest are still applied. Only once a record
    /// needs a read are the later records (and `upcoming`) scanned for theirs: live traffic pays nothing for it.
    public func apply(
        _ records: [(record: EventRecord, endOffset: UInt64)], upcoming: ArraySlice<EventRecord> = []
    ) -> [Result<IngestOutcome, any Error>] {
        let nowMs = clock()
        var results: [Result<IngestOutcome, any Error>] = []
        results.reserveCapacity(records.count)
        var loaded: [BucketTable.LoadedBucket] = []
        while results.count < records.count {
            let (needs, backlog) = table.withLock { t -> ([BucketKey]?, Int) in
                while results.count < records.count {
                    let (record, end) = records[results.count]
                    switch t.apply(record, endOffset: end, nowMs: nowMs, loaded: loaded) {
                    case .counted(let outcome):
                        results.append(.success(outcome))
                        loaded = []
                    case .needs(let keys):
                        // And what the records after it will need: one read for the group (`loadBuckets`).
                        let later = t.missingBuckets(for: records[(results.count + 1)...].lazy.map(\.record) + upcoming)
                        let known = Set(keys)
                        return (keys + later.filter { !known.contains($0) }, t.unflushedEvents)
                    }
                }
                return (nil, t.unflushedEvents)
            }
            storeBacklog.store(backlog, ordering: .relaxed)
            guard let needs else { break }
            do {
                let found = try store.loadBuckets(needs)
                loaded = needs.map { .init(key: $0, stored: found[$0]) }
            } catch {
                results.append(.failure(error))
                loaded = []
            }
        }
        return results
    }

    /// Counts rejections against their camera when the camera is known (for health: clock skew).
    public func noteRejections(_ rejections: [(kvfvId: String, reason: RejectionReason)]) {
        guard !rejections.isEmpty else { return }
        let now = clock()
        table.withLock { t in
            for r in rejections { t.noteRejection(kvfvId: r.kvfvId, reason: r.reason, nowMs: now) }
        }
    }

    // MARK: - Flushing

    /// Background work from now on runs on `pool`, owned by the service running this aggregator (which stops
    /// it only after `flushSynchronously`/`relinquish`, so no flush outlives the service).
    public func start(background pool: NIOThreadPool) {
        background.withLock { $0 = pool }
    }

    /// Runs `body` on the background pool, or `cancelled` when the pool drops it (stopping).
    func inBackground(_ body: @escaping @Sendable () -> Void, cancelled: @escaping @Sendable () -> Void) {
        background.withLock { $0 }.submit { state in
            if case .active = state { body() } else { cancelled() }
        }
    }

    /// Starts a flush in the background when one is due (`FlushMachine.tick`: due and none running, in one
    /// step). Call after applying records, and periodically when they stop arriving so the last ones land.
    public func tick() {
        guard flush.withLock({ $0.tick(nowMs: clock()) }) == .flush else { return }
        let (hot, cameraBacklog, missing) = table.withLock { t in
            (t.hotBucketCount, t.cameraBacklogEvents, t.sequenceMissingEvents)
        }
        hotGauge.record(hot)
        cameraBacklogGauge.record(cameraBacklog)
        sequenceGapGauge.record(missing)
        backlogGauge.record(storeBacklog.load(ordering: .relaxed))
        inBackground { [self] in
            do {
                try runClaimedFlush()
            } catch {
                logger.error("Store commit failed; will retry", metadata: ["error": "\(error)"])
                return
            }
            maintenance(nowMs: clock())
        } cancelled: { [self] in
            // The service is stopping: give the claim back; its final flush commits everything.
            _ = flush.withLock { $0.flushEnded(succeeded: false) }
            flushDone.signal()
        }
    }

    /// Commits everything changed, now, on the calling thread (after any background flush in flight, and
    /// keeping new ones from starting meanwhile, so "everything" really is in the store on return).
    public func flushSynchronously() throws {
        while true {
            switch flush.withLock({ $0.flushNow() }) {
            case .flush: return try runClaimedFlush()
            case .wait: flushDone.wait()
            case .none: return
            }
        }
    }

    /// Losing the source (a Kafka partition revoked): one last flush, after which this aggregator never writes
    /// again — not even a retry of a commit that failed (see `FlushMachine.relinquish`).
    public func relinquish() throws {
        flush.withLock { $0.relinquish() }
        try flushSynchronously()
    }

    /// Runs the flush this caller claimed: snapshot, commit (failed deltas first, verbatim), evict; the state
    /// machine decides what a failure means.
    private func runClaimedFlush() throws {
        var succeeded = false
        defer {
            let ended = flush.withLock { $0.flushEnded(succeeded: succeeded) }
            if ended == .evict {
                let now = clock()
                table.withLock {
                    $0.evict(
                        nowMs: now, idleMs: configuration.hotIdleMs, maxIdentities: configuration.maxHotIdentities,
                        workingSetMs: configuration.flushIntervalMs)
                }
            }
            flushDone.signal()
        }
        let fresh = table.withLock { $0.takeSnapshot(nowMs: clock()) }
        let commits = flush.withLock { $0.commits(fresh: fresh) }
        for (i, snapshot) in commits.enumerated() {
            do {
                try commit(snapshot)
            } catch {
                switch flush.withLock({ $0.commitFailed(remaining: Array(commits[i...])) }) {
                case .markDirty(let failed): table.withLock { $0.failed(failed) }
                case .retryVerbatim: break
                }
                throw error
            }
        }
        succeeded = true
    }

    private func commit(_ snapshot: BucketTable.Snapshot) throws {
        guard table.withLock({ $0.needsCommit(snapshot) }) else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        var c = StoreCommit(logOffset: snapshot.logOffset, timeMs: snapshot.timeMs)
        c.cameras = snapshot.cameras
        c.sequences = snapshot.sequences.map {
            StoreCommit.Sequence(camera: $0.camera, chunks: $0.chunks, report: $0.report, reportArrivalMs: $0.reportArrivalMs)
        }
        c.rejections = snapshot.rejections.map { StoreCommit.Rejections(key: $0.key, counts: $0.counts) }
        c.buckets = snapshot.buckets.map {
            StoreCommit.Bucket(
                key: $0.key, state: $0.state, addedIds: $0.addedIds, replacesIds: $0.replacesIds,
                delta: $0.delta, events: $0.events)
        }
        commitCount.withLock { $0.started &+= 1 }
        defer { commitCount.withLock { $0.ended &+= 1 } }
        try store.commit(c)
        let backlog = table.withLock { t in
            t.persisted(snapshot)
            return t.unflushedEvents
        }
        storeBacklog.store(backlog, ordering: .relaxed)
        flushTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
    }

    /// Hourly: drop dedup identities (and the role's log segments) past the acceptance horizon, store retention,
    /// and the store's integrity check.
    private func maintenance(nowMs: Int64) {
        let due = lastMaintenanceMs.withLock { last -> Bool in
            guard nowMs - last >= 3_600_000 else { return false }
            last = nowMs
            return true
        }
        guard due else { return }
        let policy = configuration.policy
        let cutoff = nowMs - policy.acceptanceHorizonMs - policy.maxClockSkewMs
        do {
            let segments = try retention?(try store.logOffset(), cutoff) ?? 0
            let pruned = try store.pruneIdentities(before: Bucket.index(ofTimestamp: cutoff) - 1)
            if segments > 0 || pruned > 0 {
                logger.info("Retention", metadata: ["log.segments.removed": "\(segments)", "dedup.buckets.pruned": "\(pruned)"])
            }
            if let done = try store.maintain(nowMs: nowMs) {
                logger.info("Store retention", metadata: ["store.retention": "\(done)"])
            }
        } catch {
            logger.error("Retention failed", metadata: ["error": "\(error)"])
        }
        checkStoreInBackground(why: "hourly")
    }

    // MARK: - Introspection

    /// The source position after the last applied record (where the next record is expected).
    public var appliedOffset: UInt64 { table.withLock { $0.appliedOffset } }

    /// The store's position: everything before it is in the store (the offset to resume a source from).
    public var storedOffset: UInt64 { table.withLock { $0.committedOffset } }

    /// Events counted in memory whose flush has not landed in the store yet.
    public var storeBacklogEvents: Int { storeBacklog.load(ordering: .relaxed) }

    /// When the next flush falls due (the group commit sleeps no longer than this).
    public var nextFlushDueMs: Int64 { flush.withLock { $0.lastFlushMs } + configuration.flushIntervalMs }

    /// Identities held in memory.
    public var hotIdentities: Int { table.withLock { $0.hotIdentities } }

    public var hotBuckets: Int { table.withLock { $0.hotBucketCount } }
}
