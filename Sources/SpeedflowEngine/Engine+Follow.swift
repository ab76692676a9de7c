import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

/// The engine's roles beyond `serve`, when the log is somewhere else (Kafka):
/// - an **aggregator** applies records already durable in a Kafka partition (`applyDurable`), flushing to the
///   store with the partition's offsets;
/// - an **API node** only reads: the store is written by other processes, so cameras are refreshed from it.
extension Engine {
    /// Applies a record that is already durable elsewhere; `endOffset` is the source position after it (a
    /// Kafka offset + 1). Starts a flush when one is due. Throws when a late event's bucket cannot be read from
    /// the store: retry the same record (nothing of it was counted, so a retry is exact).
    public func applyDurable(_ record: EventRecord, endOffset: UInt64) throws -> IngestOutcome {
        let outcome = try apply(record, endOffset: endOffset, nowMs: clock())
        maybeStartFlush()
        return outcome
    }

    /// An aggregator losing its partition: one last flush, after which this engine never writes again — not
    /// even a retry of a commit that failed (see `FlushMachine.relinquish`).
    public func relinquish() throws {
        flush.withLock { $0.relinquish() }
        try flushSynchronously()
    }

    /// Starts a flush if one is due (call periodically when records stop arriving, so the last ones land).
    public func tick() { maybeStartFlush() }

    /// The source position after the last applied record (where the next record is expected).
    public var appliedOffset: UInt64 { table.withLock { $0.appliedOffset } }

    /// The store's position: everything before it is in the store (the offset to resume a source from).
    public var storedOffset: UInt64 { table.withLock { $0.committedOffset } }

    /// Events counted in memory whose flush has not landed in the store yet.
    public var storeBacklogEvents: Int { storeBacklog.load(ordering: .relaxed) }

    /// Learns cameras other processes wrote to the store, and their newest times (API nodes).
    public func refreshCamerasFromStore() throws {
        let records = try store.cameras()
        table.withLock { $0.learn(records) }
    }

    /// API nodes: refresh the camera list at most once a second, or every 200 ms when asked for an unknown
    /// camera (which may just have been written by an aggregator).
    func refreshIfFollowing(unknownCamera: Bool = false) {
        guard configuration.followsStore else { return }
        let now = clock()
        let due = timers.withLock { s -> Bool in
            guard now - s.lastCameraRefreshMs >= (unknownCamera ? 200 : 1000) else { return false }
            s.lastCameraRefreshMs = now
            return true
        }
        guard due else { return }
        do {
            try refreshCamerasFromStore()
        } catch {
            logger.warning("Camera refresh from the store failed", metadata: ["error": "\(error)"])
        }
    }
}
