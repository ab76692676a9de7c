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

/// The embedded pipeline of `serve`: segment log + group commit + `Aggregator` (bucket table, flusher) + queries.
///
/// One commit thread owns the order of everything: it takes every request waiting, appends them to the log
/// in one write + one fsync, applies them in log order, then answers them. Replay after a crash applies the
/// same records in the same order, so the "first copy wins" decisions are the same. The aggregator commits
/// changed buckets, identities and the log offset to the store in one transaction at a time.
public final class Engine: EventSink {
    public let configuration: EngineConfiguration
    public let log: any Log
    public let aggregator: Aggregator
    public let stats: IngestStats
    /// The free-space guard of the data directory (`configuration.freeSpace`), shared by every intake.
    public let freeSpace: FreeSpaceGuard?
    let logger: Logger
    let clock: @Sendable () -> Int64

    struct Pending {
        var record: EventRecord
        var payload: [UInt8]
        var continuation: CheckedContinuation<Result<IngestOutcome, IngestError>, Never>
    }

    struct Queue {
        var pending: [Pending] = []
        var pendingEvents = 0
        var closing = false
    }

    let queue = Mutex(Queue())
    let wake = DispatchSemaphore(value: 0)
    let stoppedSignal = DispatchSemaphore(value: 0)

    private let queueGauge = Gauge(label: "speedflow_ingest_queue_events")

    /// Opens the pipeline over `log` and `store` (the store is checked first; a damaged one is rebuilt from the
    /// log when the log still holds every event). Call `recover()`, then `start()`.
    public init(
        log: any Log, store: any StoreWriter, configuration: EngineConfiguration = .init(),
        logger: Logger = Logger(label: "speedflow.engine"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) throws {
        self.log = log
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.stats = IngestStats(nowMs: clock())
        self.freeSpace = configuration.freeSpace.flatMap { c in
            guard !c.threshold.isOff else { return nil }
            return FreeSpaceGuard(c) { refusing, avail, required in
                if refusing {
                    logger.error(
                        "Free space below --min-free-space: ingest is refused (503 insufficient_storage) until space returns; queries go on",
                        metadata: ["disk.avail.bytes": "\(avail)", "disk.required.bytes": "\(required)", "disk.path": "\(c.path)"])
                } else {
                    logger.notice(
                        "Free space is back above --min-free-space: ingest resumes",
                        metadata: ["disk.avail.bytes": "\(avail)", "disk.required.bytes": "\(required)"])
                }
            }
        }
        self.aggregator = try Aggregator(
            store: store, configuration: configuration, completeLog: log,
            retention: { consumed, cutoffMs in
                try log.removeSegments(consumedUpTo: LogOffset(consumed), lastWrittenBeforeMs: cutoffMs)
            },
            logger: logger, clock: clock)
    }

    public var store: any StoreWriter { aggregator.store }

    /// `POST /events` and the PostgreSQL source: into this engine, rejections counted against its cameras.
    public var intake: Intake {
        Intake(sink: self, stats: stats, policy: configuration.policy, cameras: aggregator, freeSpace: freeSpace, clock: clock)
    }

    /// Memory first, then the store.
    public var queries: CameraQueries {
        CameraQueries(view: aggregator, store: aggregator.store, configuration: configuration, clock: clock)
    }

    /// What `/stats` reports beyond ingest statistics.
    public var status: NodeStatus {
        NodeStatus(
            queueDepth: { [self] in queueDepth }, hotBuckets: { [aggregator] in aggregator.hotBuckets },
            logBytes: { [log] in log.sizeInBytes }, storeBytes: { [aggregator] in aggregator.store.sizeInBytes() })
    }

    // MARK: - Recovery

    /// Replays the log from the store's offset so memory and store reflect every durable event.
    ///
    /// `filter` skips events (used by `rebuild`); `progress` is called about once a second with bytes done
    /// and bytes total.
    /// - Parameter excludingWriters: records written with these credentials are replayed as empty (their events
    ///   are not counted; the offset still advances). Returns how many events were excluded so.
    /// - Parameter rejectionsFrom: rejection tallies of records that arrived before this 5-minute bucket are not
    ///   counted (`rebuild` keeps the stored counts before its cut and recounts those from it).
    @discardableResult
    public func recover(
        filter: (@Sendable (CameraEvent) -> Bool)? = nil, excludingWriters: Set<String> = [], rejectionsFrom: Int64 = .min,
        progress: ((_ done: UInt64, _ total: UInt64, _ events: Int) -> Void)? = nil
    ) throws -> Int {
        let start = aggregator.appliedOffset
        // The store's checkpoint must lie within the log, and nothing it has not counted may be damaged.
        try log.reconcile(countedUpTo: start)
        let end = log.endOffset.value
        guard start < end else { return 0 }
        logger.info("Replaying log", metadata: ["log.offset.from": "\(start)", "log.offset.to": "\(end)"])
        var events = 0
        var excluded = 0
        var lastFlush = clock()
        var lastReport = DispatchTime.now().uptimeNanoseconds
        try log.read(from: LogOffset(start)) { payload, endOffset in
            var record = try EventRecord.decode(payload)
            if let writer = record.writer, excludingWriters.contains(writer) {
                excluded += record.events.count
                record.events = []
                record.rejections = []
            }
            if Bucket.index(ofTimestamp: record.arrivalMs) < rejectionsFrom { record.rejections = [] }
            if let filter { record.events.removeAll { !filter($0) } }
            events += record.events.count
            _ = try aggregator.apply(record, endOffset: endOffset.value)
            // Over the memory budget: commit (so buckets become evictable), at most once per flush interval.
            let now = clock()
            if now - lastFlush >= configuration.flushIntervalMs, aggregator.hotIdentities > configuration.maxHotIdentities {
                try aggregator.flushSynchronously()
                lastFlush = now
            }
            let t = DispatchTime.now().uptimeNanoseconds
            if t - lastReport > 1_000_000_000 {
                lastReport = t
                progress?(endOffset.value - start, end - start, events)
            }
        }
        try aggregator.flushSynchronously()
        progress?(end - start, end - start, events)
        logger.info("Replay done", metadata: ["replay.events": "\(events)"])
        return excluded
    }

    /// Commits everything changed, now (see `Aggregator.flushSynchronously`).
    public func flushSynchronously() throws { try aggregator.flushSynchronously() }

    // MARK: - Running

    /// Starts the commit thread (it runs until `shutdown()`); background flushes and checks go to `background`,
    /// the pool of the service running the engine (NIO's shared pool when not given). Call after `recover()`.
    public func start(background: NIOThreadPool? = nil) {
        if let background { aggregator.start(background: background) }
        let commitThread = Thread { [self] in commitLoop() }
        commitThread.name = "speedflow-commit"
        commitThread.qualityOfService = .userInitiated
        commitThread.start()
        aggregator.checkStoreAfterStart()
    }

    /// Makes `events` durable and counted; returns once they are (or throws, having stored nothing).
    public func ingest(
        _ events: [CameraEvent], reports: [CameraReport], rejections: [RejectionTally], arrivalMs: Int64, writer: String? = nil
    ) async throws(IngestError) -> IngestOutcome {
        guard !events.isEmpty || !reports.isEmpty || !rejections.isEmpty else { return IngestOutcome() }
        let record = EventRecord(arrivalMs: arrivalMs, events: events, writer: writer, reports: reports, rejections: rejections)
        let payload = record.encoded()
        let result = await withCheckedContinuation { (c: CheckedContinuation<Result<IngestOutcome, IngestError>, Never>) in
            let refused: IngestError? = queue.withLock { s in
                if s.closing { return IngestError(.shuttingDown, "the server is shutting down") }
                if s.pendingEvents > 0 && s.pendingEvents + events.count > configuration.maxPendingEvents {
                    return IngestError(.overloaded, "\(s.pendingEvents) events are waiting for the log")
                }
                let backlog = aggregator.storeBacklogEvents
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
        return try result.get()
    }

    /// Stops intake, answers everything already queued, commits the store and closes the log.
    public func shutdown() {
        let alreadyStopped = queue.withLock { s -> Bool in
            let was = s.closing
            s.closing = true
            return was
        }
        if alreadyStopped { return }
        wake.signal()
        stoppedSignal.wait()
        do {
            try aggregator.flushSynchronously()
            try log.close()
            logger.info("Engine stopped cleanly")
        } catch {
            logger.error("Engine shutdown failed", metadata: ["error": "\(error)"])
        }
    }

    private func commitLoop() {
        while true {
            let waitMs = max(1, aggregator.nextFlushDueMs - clock())
            _ = wake.wait(timeout: .now() + .milliseconds(Int(min(waitMs, 1000))))
            let (batch, queued, closing) = queue.withLock { s -> ([Pending], Int, Bool) in
                let b = s.pending
                let n = s.pendingEvents
                s.pending.removeAll(keepingCapacity: true)
                s.pendingEvents = 0
                return (b, n, s.closing)
            }
            // Events that waited for this group commit: the queue depth as the log sees it.
            queueGauge.record(queued)
            if !batch.isEmpty { commitBatch(batch) }
            aggregator.tick()
            if closing && queue.withLock({ $0.pending.isEmpty }) { break }
        }
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
        let results = aggregator.apply(zip(batch, ends).map { ($0.record, $1.value) })
        for (p, result) in zip(batch, results) {
            switch result {
            case .success(let outcome):
                p.continuation.resume(returning: .success(outcome))
            case .failure(let error):
                // The events are durable in the log; the store could not be read. Replay will count them.
                logger.error("Apply failed: the store could not be read; the client is asked to resend", metadata: ["error": "\(error)"])
                p.continuation.resume(returning: .failure(IngestError(.storeUnavailable, "the store could not be read; retry: \(error)")))
            }
        }
    }

    // MARK: - Introspection

    public var queueDepth: Int { queue.withLock { $0.pendingEvents } }

    /// Log offset after the last record applied to memory (the store catches up to it on the next flush).
    public var appliedLogOffset: UInt64 { aggregator.appliedOffset }

    public var hotBuckets: Int { aggregator.hotBuckets }
    public var now: Int64 { clock() }

    public func windowStates(kvfvId: String, windows: [Window]) async throws -> [BucketState]? {
        try await queries.windowStates(kvfvId: kvfvId, windows: windows)
    }

    public func cameraStatuses() async throws -> [CameraStatus] { try await queries.cameraStatuses() }
}
