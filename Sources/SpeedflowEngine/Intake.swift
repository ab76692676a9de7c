import Foundation
import SpeedflowModel

/// The one way decoded events enter, for `POST /events` and the PostgreSQL source alike: hands the valid
/// events to the sink and, once they are taken, records the outcome, the lateness and the rejections — in the
/// statistics behind `/stats` and the metrics, and against their cameras (health) where cameras are known.
public struct Intake: Sendable {
    public let sink: any EventSink
    public let stats: IngestStats
    /// Validation rules every source decodes with.
    public let policy: ValidationPolicy
    /// Counts rejections against known cameras (`nil` on a node that knows no cameras: an ingest node).
    let cameras: (any RejectionRecorder)?
    let clock: @Sendable () -> Int64
    /// Refuses everything (`insufficient_storage`) while the data directory's disk is nearly full; `nil`: no guard.
    public let freeSpace: FreeSpaceGuard?

    public init(
        sink: any EventSink, stats: IngestStats, policy: ValidationPolicy, cameras: (any RejectionRecorder)?,
        freeSpace: FreeSpaceGuard? = nil,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.freeSpace = freeSpace
        self.sink = sink
        self.stats = stats
        self.policy = policy
        self.cameras = cameras
        self.clock = clock
    }

    public var now: Int64 { clock() }

    /// Makes the batch's valid events durable through the sink, then records everything about the batch.
    /// Throws (recording nothing: the client retries, and is counted then) when the sink does not take them.
    /// `writer`: the credential id the request presented (recorded with the events in the log).
    public func ingest(_ batch: EventBatch, arrivalMs: Int64, writer: String? = nil) async throws(IngestError) -> IngestOutcome {
        // Rejections naming a camera go into the log with the events (alone, when every element was rejected).
        let tallies = batch.rejectionTallies
        // Before anything is queued: a refused batch is neither stored nor counted (the client resends it).
        if !batch.events.isEmpty || !tallies.isEmpty { try freeSpace?.check() }
        let outcome =
            batch.events.isEmpty && tallies.isEmpty
            ? IngestOutcome()
            : try await sink.ingest(batch.events, reports: [], rejections: tallies, arrivalMs: arrivalMs, writer: writer)
        // Statistics are kept by the requesting task, in parallel, not on the sink's thread.
        stats.record(outcome: outcome, latenessMs: batch.events.map { arrivalMs - $0.timestampMs }, nowMs: clock())
        record(rejectionsOf: batch, nowMs: arrivalMs)
        return outcome
    }

    /// Makes a camera's report of what it has recorded durable (in the log, with events; counted downstream).
    public func report(_ report: CameraReport, arrivalMs: Int64, writer: String? = nil) async throws(IngestError) {
        try freeSpace?.check()
        _ = try await sink.ingest([], reports: [report], arrivalMs: arrivalMs, writer: writer)
    }

    /// Rejections, from the batch's counts (bounded whatever the body held), handed over in bounded slices.
    private func record(rejectionsOf batch: EventBatch, nowMs: Int64) {
        let slice = 4096
        for (reason, count) in batch.rejectedByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            var left = count
            while left > 0 {
                let n = Swift.min(left, slice)
                stats.record(rejections: Array(repeating: Rejection(index: 0, reason: reason), count: n), nowMs: nowMs)
                left -= n
            }
        }
        guard let cameras else { return }
        var pairs: [(kvfvId: String, reason: RejectionReason)] = []
        for (camera, reasons) in batch.rejectedByCamera {
            for (reason, count) in reasons {
                for _ in 0..<count {
                    pairs.append((camera, reason))
                    if pairs.count == slice {
                        cameras.noteRejections(pairs)
                        pairs.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        cameras.noteRejections(pairs)
    }
}

/// Counts rejected events against their camera (for health: clock skew).
public protocol RejectionRecorder: Sendable {
    func noteRejections(_ rejections: [(kvfvId: String, reason: RejectionReason)])
}

extension Aggregator: RejectionRecorder {}

/// What `/stats` reports about a node beyond its ingest statistics; a role gives what it has (0 otherwise).
public struct NodeStatus: Sendable {
    public var queueDepth: @Sendable () -> Int
    public var hotBuckets: @Sendable () -> Int
    public var logBytes: @Sendable () -> Int64
    public var storeBytes: @Sendable () -> Int64

    public init(
        queueDepth: @escaping @Sendable () -> Int = { 0 }, hotBuckets: @escaping @Sendable () -> Int = { 0 },
        logBytes: @escaping @Sendable () -> Int64 = { 0 }, storeBytes: @escaping @Sendable () -> Int64 = { 0 }
    ) {
        self.queueDepth = queueDepth
        self.hotBuckets = hotBuckets
        self.logBytes = logBytes
        self.storeBytes = storeBytes
    }
}
