import Dispatch
import Foundation
import Logging
import Metrics
import SpeedflowAggregation
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import Synchronization

/// The embedded pipeline: log append with group commit → dedup + bucket merge → periodic store commit.
///
/// One commit thread owns the order of everything: it takes every request waiting, appends them to the log
/// in one write + one fsync, applies them in log order, then answers them. Replay after a crash applies the
/// same records in the same order, so the "first copy wins" decisions are the same. A flusher thread commits
/// changed buckets, identities and the log offset to the store in one transaction at a time.
public final class Engine: Sendable {
    public let configuration: EngineConfiguration
    public let log: any Log
    public let store: any Store
    public let stats: IngestStats
    let logger: Logger
    let clock: @Sendable () -> Int64

    struct Pending {
        var record: EventRecord
        var payload: [UInt8]
        var continuation: CheckedContinuation<Result<IngestOutcome, IngestError>, Never>
    }

    struct Intake {
        var pending: [Pending] = []
        var pendingEvents = 0
        var closing = false
        var stopped = false
    }

    /// Housekeeping clocks, apart from the flush protocol.
    struct Timers {
        var lastMaintenanceMs: Int64 = 0
        var lastCameraRefreshMs: Int64 = 0
    }

    let intake = Mutex(Intake())
    /// `.appendDeltas`: events counted in memory whose snapshot has not landed in the store yet (the table's
    /// count, mirrored here so every request can read it without the table's lock).
    let storeBacklog = Atomic<Int>(0)
    let wake = DispatchSemaphore(value: 0)
    let table: Mutex<BucketTable>
    let flush: Mutex<FlushMachine<BucketTable.Snapshot>>
    let timers = Mutex(Timers())
    let flushDone = DispatchSemaphore(value: 0)
    let stoppedSignal = DispatchSemaphore(value: 0)

    private let queueGauge = Gauge(label: "speedflow_ingest_queue_events")
    private let hotGauge = Gauge(label: "speedflow_hot_buckets")
    private let backlogGauge = Gauge(label: "speedflow_store_backlog_events")
    private let flushTimer = Timer(label: "speedflow_store_flush_seconds")

    public init(
        log: any Log, store: any Store, configuration: EngineConfiguration = .init(),
        logger: Logger = Logger(label: "speedflow.engine"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.log = log
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.stats = IngestStats(nowMs: clock())
        try Self.checkStoreAtOpen(store, log: log, logger: logger)
        // The one place the store's commit policy is read: the table and the flush protocol carry it.
        let policy = store.commitPolicy
        self.table = Mutex(BucketTable(policy: policy, logOffset: try store.logOffset(), cameras: try store.cameras()))
        self.flush = Mutex(FlushMachine(policy: policy, intervalMs: configuration.flushIntervalMs))
    }

    // MARK: - Recovery

    /// Replays the log from the store's offset so memory and store reflect every durable event.
    ///
    /// `filter` skips events (used by `rebuild`); `progress` is called about once a second with bytes done
    /// and bytes total.
    public func recover(
        filter: (@Sendable (CameraEvent) -> Bool)? = nil,
        progress: ((_ done: UInt64, _ total: UInt64, _ events: Int) -> Void)? = nil
    ) throws {
        let start = table.withLock { $0.appliedOffset }
        // The store's checkpoint must lie within the log, and nothing it has not counted may be damaged.
        try log.reconcile(countedUpTo: start)
        let end = log.endOffset.value
        guard start < end else { return }
        logger.info("Replaying log", metadata: ["log.offset.from": "\(start)", "log.offset.to": "\(end)"])
        var events = 0
        var lastFlush = clock()
        var lastReport = DispatchTime.now().uptimeNanoseconds
        try log.read(from: LogOffset(start)) { payload, endOffset in
            var record = try EventRecord.decode(payload)
            if let filter { record.events.removeAll { !filter($0) } }
            events += record.events.count
            let now = clock()
            _ = try apply(record, endOffset: endOffset.value, nowMs: now)
            // Over the memory budget: commit (so buckets become evictable), at most once per flush interval.
            if now - lastFlush >= configuration.flushIntervalMs,
                table.withLock({ $0.hotIdentities > configuration.maxHotIdentities })
            {
                try flushSynchronously()
                lastFlush = now
            }
            let t = DispatchTime.now().uptimeNanoseconds
            if t - lastReport > 1_000_000_000 {
                lastReport = t
                progress?(endOffset.value - start, end - start, events)
            }
        }
        try flushSynchronously()
        progress?(end - start, end - start, events)
        logger.info("Replay done", metadata: ["replay.events": "\(events)"])
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

    /// Counts a durable record in the table. A late event for a bucket no longer in memory needs it from the
    /// store: read here, outside the table's lock, then the record is applied again with it (all or nothing).
    /// Throws when the store cannot be read; the record is then untouched and can be applied again.
    func apply(_ record: EventRecord, endOffset: UInt64, nowMs: Int64) throws -> IngestOutcome {
        var loaded: [BucketTable.LoadedBucket] = []
        while true {
            let (applied, backlog) = table.withLock { t in
                (t.apply(record, endOffset: endOffset, nowMs: nowMs, loaded: loaded), t.unflushedEvents)
            }
            switch applied {
            case .counted(let outcome):
                storeBacklog.store(backlog, ordering: .relaxed)
                return outcome
            case .needs(let keys):
                for key in keys { loaded.append(.init(key: key, stored: try store.loadBucket(key))) }
            }
        }
    }

    // MARK: - Running

    /// Starts the commit and flusher threads. Call after `recover()`.
    public func start() {
        let commitThread = Thread { [self] in commitLoop() }
        commitThread.name = "speedflow-commit"
        commitThread.qualityOfService = .userInitiated
        commitThread.start()
        checkStoreAfterStart()
    }

    /// Makes `events` durable and counted; returns once they are (or throws, having stored nothing).
    public func ingest(_ events: [CameraEvent], arrivalMs: Int64) async throws(IngestError) -> IngestOutcome {
        guard !events.isEmpty else { return IngestOutcome() }
        let record = EventRecord(arrivalMs: arrivalMs, events: events)
        let payload = record.encoded()
        if !configuration.aggregates, let log = log as? any ConcurrentAppendLog {
            return try await ingestDirectly(payload, count: events.count, into: log, arrivalMs: arrivalMs)
        }
        let result = await withCheckedContinuation { (c: CheckedContinuation<Result<IngestOutcome, IngestError>, Never>) in
            let refused: IngestError? = intake.withLock { s in
                if s.closing { return IngestError(.shuttingDown, "the server is shutting down") }
                if s.pendingEvents > 0 && s.pendingEvents + events.count > configuration.maxPendingEvents {
                    return IngestError(.overloaded, "\(s.pendingEvents) events are waiting for the log")
                }
                let backlog = storeBacklog.load(ordering: .relaxed)
                if backlog > configuration.maxStoreBacklogEvents {
                    return IngestError(.overloaded, "the store is \(backlog) events behind (unreachable or slow)")
                }
                s.pending.append(Pending(record: record, payload: payload, continuation: c))
                s.pendingEvents += events.count
                return nil
            }
            if let refused {
                c.resume(returning: .failure(refused))
            } else {
                wake.signal()
            }
        }
        let outcome = try result.get()
        // Statistics are kept by the requesting task, in parallel, not on the commit thread.
        stats.record(outcome: outcome, latenessMs: events.map { arrivalMs - $0.timestampMs }, nowMs: clock())
        return outcome
    }

    /// A stateless ingest node: each request waits for its own records only (the log pipelines them).
    private func ingestDirectly(
        _ payload: [UInt8], count: Int, into log: any ConcurrentAppendLog, arrivalMs: Int64
    ) async throws(IngestError) -> IngestOutcome {
        let refused: IngestError? = intake.withLock { s in
            if s.closing { return IngestError(.shuttingDown, "the server is shutting down") }
            if s.pendingEvents > 0 && s.pendingEvents + count > configuration.maxPendingEvents {
                return IngestError(.overloaded, "\(s.pendingEvents) events are waiting for the log")
            }
            s.pendingEvents += count
            return nil
        }
        if let refused { throw refused }
        defer { intake.withLock { $0.pendingEvents -= count } }
        do {
            try await log.appendConcurrently(payload)
        } catch {
            throw IngestError(.logFailure, "\(error)")
        }
        let outcome = IngestOutcome(accepted: count)
        stats.record(outcome: outcome, latenessMs: [], nowMs: clock())
        return outcome
    }

    /// Stops intake, answers everything already queued, commits the store and closes the log.
    public func shutdown() {
        let alreadyStopped = intake.withLock { s -> Bool in
            let was = s.closing
            s.closing = true
            return was
        }
        if alreadyStopped { return }
        wake.signal()
        stoppedSignal.wait()
        do {
            try flushSynchronously()
            try log.close()
            logger.info("Engine stopped cleanly")
        } catch {
            logger.error("Engine shutdown failed", metadata: ["error": "\(error)"])
        }
    }

    private func commitLoop() {
        while true {
            let nextFlush = flush.withLock { $0.lastFlushMs } + configuration.flushIntervalMs
            let waitMs = max(1, nextFlush - clock())
            _ = wake.wait(timeout: .now() + .milliseconds(Int(min(waitMs, 1000))))
            let (batch, queued, closing) = intake.withLock { s -> ([Pending], Int, Bool) in
                let b = s.pending
                let n = s.pendingEvents
                s.pending.removeAll(keepingCapacity: true)
                s.pendingEvents = 0
                return (b, n, s.closing)
            }
            // Events that waited for this group commit: the queue depth as the log sees it.
            queueGauge.record(queued)
            if !batch.isEmpty { commitBatch(batch) }
            maybeStartFlush()
            if closing && intake.withLock({ $0.pending.isEmpty }) { break }
        }
        intake.withLock { $0.stopped = true }
        stoppedSignal.signal()
    }

    private func commitBatch(_ batch: [Pending]) {
        let ends: [LogOffset]
        do {
            ends = try log.append(batch.map(\.payload))
        } catch {
            logger.error("Log append failed; requests answered 503", metadata: ["error": "\(error)"])
            for p in batch { p.continuation.resume(returning: .failure(IngestError(.logFailure, "\(error)"))) }
            return
        }
        let now = clock()
        var outcomes: [Result<IngestOutcome, IngestError>] = []
        outcomes.reserveCapacity(batch.count)
        for (p, end) in zip(batch, ends) {
            guard configuration.aggregates else {
                // An ingest node: the log (Kafka) is the product; aggregators downstream dedup and count.
                outcomes.append(.success(IngestOutcome(accepted: p.record.events.count)))
                continue
            }
            do {
                outcomes.append(.success(try apply(p.record, endOffset: end.value, nowMs: now)))
            } catch {
                // The events are durable in the log; the store could not be read. Replay will count them.
                logger.error("Apply failed: the store could not be read; the client is asked to resend", metadata: ["error": "\(error)"])
                outcomes.append(.failure(IngestError(.storeUnavailable, "the store could not be read; retry: \(error)")))
            }
        }
        for (p, outcome) in zip(batch, outcomes) {
            p.continuation.resume(returning: outcome)
        }
    }

    // MARK: - Flushing

    /// Starts a flush on its own thread when one is due (`FlushMachine.tick`: due and none running, in one step).
    func maybeStartFlush() {
        guard flush.withLock({ $0.tick(nowMs: clock()) }) == .flush else { return }
        hotGauge.record(table.withLock { $0.hotBucketCount })
        backlogGauge.record(storeBacklog.load(ordering: .relaxed))
        let thread = Thread { [self] in
            do {
                try runClaimedFlush()
            } catch {
                logger.error("Store commit failed; will retry", metadata: ["error": "\(error)"])
                return
            }
            maintenance(nowMs: clock())
        }
        thread.name = "speedflow-flush"
        thread.start()
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
        c.buckets = snapshot.buckets.map {
            StoreCommit.Bucket(
                key: $0.key, state: $0.state, addedIds: $0.addedIds, replacesIds: $0.replacesIds,
                delta: $0.delta, events: $0.events)
        }
        try store.commit(c)
        let backlog = table.withLock { t in
            t.persisted(snapshot)
            return t.unflushedEvents
        }
        storeBacklog.store(backlog, ordering: .relaxed)
        flushTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
    }

    /// Hourly: drop log segments and dedup identities past the acceptance horizon.
    private func maintenance(nowMs: Int64) {
        let due = timers.withLock { s -> Bool in
            guard nowMs - s.lastMaintenanceMs >= 3_600_000 else { return false }
            s.lastMaintenanceMs = nowMs
            return true
        }
        guard due else { return }
        let policy = configuration.policy
        let cutoff = nowMs - policy.acceptanceHorizonMs - policy.maxClockSkewMs
        do {
            let consumed = LogOffset(try store.logOffset())
            let segments = try log.removeSegments(consumedUpTo: consumed, lastWrittenBeforeMs: cutoff)
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

    public var queueDepth: Int { intake.withLock { $0.pendingEvents } }

    /// Log offset after the last record applied to memory (the store catches up to it on the next flush).
    public var appliedLogOffset: UInt64 { table.withLock { $0.appliedOffset } }
}
