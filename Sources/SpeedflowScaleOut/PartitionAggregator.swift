#if Kafka
import Dispatch
import Logging
import NIOPosix
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
import Synchronization

/// What a consumer-group member does with its consumer's events: open a partition's `Aggregator` when it is
/// assigned, apply its records in partition order, relinquish it (one last flush) when it is revoked.
///
/// Every method but `stop()` may block (store reads, flushes, retry backoff): `AggregatorService` calls them
/// on its thread pool, one at a time, in the order the consumer hands out events; tests call them directly.
public final class PartitionAggregator: Sendable {
    /// Opens a partition's aggregator on its store state (offsets and dedup identities): the store choice
    /// lives with the caller.
    public typealias OpenPartition = @Sendable (KafkaPartition) throws -> Aggregator

    /// The aggregators of the partitions owned now.
    public let owned = PartitionAggregators()
    let openPartition: OpenPartition
    let logger: Logger
    let retryDelay: ClosedRange<Duration>

    private struct State {
        /// Where the partitions' background flushes run (the service's pool); NIO's shared pool until set.
        var background: NIOThreadPool?
        var stopping = false
        /// A record was given up on (stopping while its store was unreadable): nothing after it may be
        /// applied, or its partition would skip it.
        var abandoned = false
        var offsetGaps = 0
    }
    private let state = Mutex(State())
    /// Wakes a retry backoff early when stopping.
    private let wake = DispatchSemaphore(value: 0)

    /// - Parameter retryDelay: backoff between attempts at a record whose store cannot be read, doubling from
    ///   the lower bound to the upper. Default: 50 ms ... 2 s.
    public init(
        logger: Logger, retryDelay: ClosedRange<Duration> = .milliseconds(50) ... .seconds(2),
        openPartition: @escaping OpenPartition
    ) {
        self.logger = logger
        self.retryDelay = retryDelay
        self.openPartition = openPartition
    }

    /// Background flushes of the partitions opened from now on run on `pool` (owned by the running service).
    public func startBackground(on pool: NIOThreadPool) {
        state.withLock { $0.background = pool }
    }

    /// Opens the aggregator of each newly assigned partition; returns where each continues: the offset its store
    /// holds, so what the store has is never read again and what it lacks is replayed.
    public func assign(_ partitions: [KafkaPartition]) throws -> [KafkaPartition: Int64] {
        var offsets: [KafkaPartition: Int64] = [:]
        for p in partitions {
            let aggregator = try openPartition(p)
            if let pool = state.withLock({ $0.background }) { aggregator.start(background: pool) }
            owned.set(p, aggregator)
            offsets[p] = Int64(aggregator.storedOffset)
        }
        logger.info("Partitions assigned", metadata: ["offsets": "\(offsets.sorted { $0.key < $1.key })"])
        return offsets
    }

    /// Applies in partition order; a record whose late bucket cannot be read from the store is retried (the
    /// aggregator applies a record all or nothing, so a retry is exact) until the store answers or `stop()`.
    /// Messages of partitions not owned (revoked) are skipped.
    public func apply(_ messages: [KafkaConsumerMessage]) {
        guard !state.withLock({ $0.abandoned }) else { return }
        var next: [KafkaPartition: UInt64] = [:]  // the offset each partition should continue at
        let decoded = messages.map { m -> (partition: KafkaPartition, record: Result<EventRecord, any Error>) in
            (KafkaPartition(topic: m.topic, partition: m.partition), Result { try m.value.withUnsafeBytes { try EventRecord.decode($0) } })
        }
        // Each partition's records of this poll: when one needs late buckets from the store, those its successors
        // need are read with them (one read per poll, not one per record).
        let polled = Dictionary(grouping: decoded.compactMap { d in (try? d.record.get()).map { (d.partition, $0) } }, by: \.0)
            .mapValues { $0.map(\.1) }
        var position: [KafkaPartition: Int] = [:]
        for (m, d) in zip(messages, decoded) {
            let partition = d.partition
            guard let aggregator = owned[partition] else { continue }
            let record: EventRecord
            do {
                record = try d.record.get()
            } catch {
                logger.error("Skipping a message that is not an event record", metadata: ["partition": "\(partition)", "offset": "\(m.offset)", "error": "\(error)"])
                continue
            }
            let index = position[partition, default: 0]
            position[partition] = index + 1
            let upcoming = polled[partition, default: []][(index + 1)...]
            // Offsets of a partition are contiguous here (no compaction, no transactions): anything else means
            // records were skipped or re-read, which the store's exactness does not cover for skips.
            let expected = next[partition] ?? aggregator.appliedOffset
            next[partition] = UInt64(m.offset + 1)
            if UInt64(m.offset) != expected {
                state.withLock { $0.offsetGaps += 1 }
                logger.warning("Kafka offsets not contiguous", metadata: [
                    "partition": "\(partition)", "expected": "\(expected)", "offset": "\(m.offset)"])
            }
            var delay = retryDelay.lowerBound
            while true {
                do {
                    _ = try aggregator.apply(record, endOffset: UInt64(m.offset + 1), upcoming: upcoming)
                    aggregator.tick()
                    break
                } catch {
                    logger.warning("Apply failed; retrying", metadata: ["partition": "\(partition)", "offset": "\(m.offset)", "error": "\(error)"])
                    if pause(delay) {
                        // Not applied, so not in what the store will hold: the partition's next owner reads
                        // it again from the stored offset.
                        state.withLock { $0.abandoned = true }
                        logger.warning("Stopping; the record is left to the partition's next owner", metadata: ["partition": "\(partition)", "offset": "\(m.offset)"])
                        return
                    }
                    delay = min(delay * 2, retryDelay.upperBound)
                }
            }
        }
    }

    /// Waits `delay` or until `stop()`; returns whether stopping.
    private func pause(_ delay: Duration) -> Bool {
        if state.withLock({ $0.stopping }) { return true }
        let (seconds, attoseconds) = delay.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        _ = wake.wait(timeout: .now() + .nanoseconds(nanoseconds))
        return state.withLock { $0.stopping }
    }

    /// Flushes each partition before letting go: the next owner starts from what is stored (a failed flush
    /// only means it replays more). Its aggregator never writes again.
    public func revoke(_ partitions: [KafkaPartition]) {
        for p in partitions {
            guard let aggregator = owned.remove(p) else { continue }
            do {
                try aggregator.relinquish()
            } catch {
                logger.warning("Flush on revoke failed; the next owner replays", metadata: ["partition": "\(p)", "error": "\(error)"])
            }
        }
        logger.info("Partitions revoked", metadata: ["partitions": "\(partitions.sorted())"])
    }

    /// Leaving: commits what every owned partition has and lets go of them all (best effort: the next owner
    /// replays the rest); messages for them that still arrive are skipped.
    public func relinquishAll() {
        for aggregator in owned.removeAll() { try? aggregator.relinquish() }
    }

    /// Starts the flushes that are due (records arriving start them too; this lands the last ones when the
    /// topic goes quiet). Does not block.
    public func tick() {
        for aggregator in owned.all { aggregator.tick() }
    }

    /// Where each owned partition is: `topic[p]: applied/stored` offsets.
    public var progress: String {
        owned.entries.sorted { $0.0 < $1.0 }
            .map { "\($0.0): \($0.1.appliedOffset)/\($0.1.storedOffset)" }.joined(separator: ", ")
    }

    /// How many times a partition's offsets were not contiguous (each also logged as a warning).
    public var offsetGaps: Int { state.withLock { $0.offsetGaps } }

    /// Ends any retry backoff now and stops retrying: a record the store cannot take is left, with everything
    /// after it, to the partition's next owner. Records that apply are still applied.
    public func stop() {
        state.withLock { $0.stopping = true }
        wake.signal()
    }
}
#endif
