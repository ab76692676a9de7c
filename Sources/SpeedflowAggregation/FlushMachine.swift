/// The flush protocol as a pure state machine: when a flush may start, which snapshots it commits and in what
/// order, what a failed commit means, and what letting go of a partition means. Events in, actions out; the
/// caller does the IO (postgres-nio's `ConnectionStateMachine` is the model).
///
/// The caller keeps it under one lock, so "is a flush due?" and "claim it" are a single step: one flush at a
/// time, ever. (They were once two lock acquisitions; an aggregator's apply thread and its ticker then both
/// started a flush, a later, emptier snapshot landed its log-offset marker while the earlier one's deltas were
/// in flight, and a crash lost those deltas behind the marker — fixed in 88f8809, impossible here by
/// construction; `FlushMachineTests` replays that interleaving.)
///
/// A flush, as the caller runs it:
/// 1. `tick(nowMs:)` or `flushNow()` answers `.flush`: this caller owns the flush (others get `.none`/`.wait`).
/// 2. It cuts a snapshot of the bucket table and commits `commits(fresh:)` in order.
/// 3. On a failed commit it calls `commitFailed(remaining:)` and does what that answers.
/// 4. It calls `flushEnded(succeeded:)` and does what that answers (evict after success).
public struct FlushMachine<Snapshot: Sendable>: Sendable {
    public let policy: CommitPolicy
    public let intervalMs: Int64
    /// A flush is claimed and has not ended.
    public private(set) var flushing = false
    /// Set by `relinquish()`: no flush starts any more except the final one.
    public private(set) var relinquished = false
    /// The flush in flight is the final one (claimed after `relinquish()`).
    private var finalFlush = false
    /// The final flush after `relinquish()` has run.
    public private(set) var finished = false
    public private(set) var lastFlushMs: Int64 = 0
    /// `.appendDeltas` only: commits that failed, retried verbatim (same content, same offset) before any newer one.
    public private(set) var retryQueue: [Snapshot] = []

    public init(policy: CommitPolicy, intervalMs: Int64) {
        self.policy = policy
        self.intervalMs = intervalMs
    }

    public enum Claim: Sendable, Hashable {
        /// The caller owns a flush: cut a snapshot, commit, then `flushEnded`.
        case flush
        /// Nothing to do (not due, one is running, or relinquished).
        case none
        /// A flush is running: wait for it to end, then ask again.
        case wait
    }

    /// A periodic chance to flush (after applying records, and from a timer when they stop arriving). Claims a
    /// flush when one is due and none is running.
    public mutating func tick(nowMs: Int64) -> Claim {
        guard !flushing, !relinquished, nowMs - lastFlushMs >= intervalMs else { return .none }
        flushing = true
        lastFlushMs = nowMs
        return .flush
    }

    /// A flush the caller needs now, whatever the time (replay over its memory budget, shutdown, the final flush
    /// after `relinquish`): `.wait` while another runs; `.none` once a relinquished machine has had its final flush.
    public mutating func flushNow() -> Claim {
        guard !finished else { return .none }
        guard !flushing else { return .wait }
        flushing = true
        finalFlush = relinquished
        return .flush
    }

    /// Stop flushing on a timer: the partition goes to another owner. The caller then flushes once more with
    /// `flushNow()` (waiting for one in flight); after that this machine never commits again — not even a retry
    /// of a failed commit: the next owner replays from the store's position, and a late retry landing after it
    /// started would be a second writer of the same offsets.
    public mutating func relinquish() {
        relinquished = true
    }

    /// The snapshots the claimed flush commits, in order.
    public func commits(fresh: Snapshot) -> [Snapshot] {
        switch policy {
        case .overwrite: [fresh]
        case .appendDeltas: retryQueue + [fresh]
        }
    }

    public enum Failure<S: Sendable>: Sendable {
        /// `.overwrite`: nothing of it landed; mark its buckets dirty again so the next flush writes them.
        case markDirty(S)
        /// `.appendDeltas`: it may have landed in part; its buckets stay unpersisted (never evicted) until the
        /// verbatim retry, which the next flush commits first.
        case retryVerbatim
    }

    /// The commit of `remaining[0]` failed; `remaining` are it and the snapshots after it, not committed.
    public mutating func commitFailed(remaining: [Snapshot]) -> Failure<Snapshot> {
        switch policy {
        case .overwrite:
            return .markDirty(remaining[0])
        case .appendDeltas:
            retryQueue = remaining
            return .retryVerbatim
        }
    }

    public enum Ended: Sendable, Hashable {
        /// Drop idle and over-budget clean buckets from memory.
        case evict
        case none
    }

    /// The claimed flush is over; every snapshot of `commits(fresh:)` landed when `succeeded`.
    public mutating func flushEnded(succeeded: Bool) -> Ended {
        precondition(flushing, "flushEnded without a claimed flush")
        flushing = false
        if succeeded { retryQueue = [] }
        if finalFlush {
            finished = true
            retryQueue = []
        }
        return succeeded ? .evict : .none
    }
}
