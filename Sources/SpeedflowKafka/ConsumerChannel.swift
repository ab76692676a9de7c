#if Kafka
import Crdkafka
import Foundation
import Logging

/// One step of the consumer's hand-over from its thread to `next()`.
enum ConsumerStep: Sendable {
    case event(KafkaConsumerEvent)
    /// Partitions are being assigned: `next()` asks the caller for start offsets and `reply`s.
    case needOffsets([KafkaPartition])
    case end
}

/// The consumer's thread and its hand-over to the async side: the thread polls only while a `next()` waits
/// (`demand`), hands it exactly one step, and blocks on `condition` (never on the cooperative pool) otherwise.
///
/// `@unchecked Sendable`: every field above the "thread-confined" mark is read and written only with
/// `condition` locked; the fields below it are touched only by the consumer's own thread (the rebalance
/// callback runs on it too, inside `rd_kafka_consumer_poll` / `rd_kafka_consumer_close`).
final class ConsumerChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var demand: CheckedContinuation<ConsumerStep, any Error>?
    private var offsetsReply: Result<[KafkaPartition: Int64], any Error>?
    private var closing = false
    private var ended: Result<Void, KafkaError>?
    private var closers: [CheckedContinuation<Void, Never>] = []
    private var commits: [[KafkaPartition: Int64]] = []

    // Thread-confined.
    private var pending: [KafkaConsumerMessage] = []
    private var failure: KafkaError?
    private var topicNames: [OpaquePointer: String] = [:]
    private let maxBatchSize: Int
    private let logger: Logger

    init(maxBatchSize: Int, logger: Logger) {
        self.maxBatchSize = maxBatchSize
        self.logger = logger
    }

    func start(_ client: RDKafkaClient) {
        let box = ClientBox(client)
        let thread = Thread { [self] in run(box.take()) }
        thread.name = "speedflow-kafka-consumer"
        thread.start()
    }

    // MARK: async side

    func next() async throws -> ConsumerStep {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ConsumerStep, any Error>) in
                condition.lock()
                if let ended {
                    condition.unlock()
                    switch ended {
                    case .success: continuation.resume(returning: .end)
                    case .failure(let error): continuation.resume(throwing: error)
                    }
                    return
                }
                if Task.isCancelled {
                    condition.unlock()
                    return continuation.resume(throwing: CancellationError())
                }
                precondition(demand == nil, "KafkaConsumer.events must be iterated from one task at a time")
                demand = continuation
                condition.broadcast()
                condition.unlock()
            }
        } onCancel: {
            condition.lock()
            let waiting = demand
            demand = nil
            condition.unlock()
            waiting?.resume(throwing: CancellationError())
        }
    }

    func reply(_ result: Result<[KafkaPartition: Int64], any Error>) {
        condition.lock()
        offsetsReply = result
        condition.broadcast()
        condition.unlock()
    }

    func commit(_ offsets: [KafkaPartition: Int64]) {
        condition.lock()
        commits.append(offsets)
        condition.unlock()
    }

    func close() async {
        await withCheckedContinuation { continuation in
            condition.lock()
            closing = true
            if ended != nil {
                condition.unlock()
                return continuation.resume()
            }
            closers.append(continuation)
            condition.broadcast()
            condition.unlock()
        }
    }

    func requestClose() {
        condition.lock()
        closing = true
        condition.broadcast()
        condition.unlock()
    }

    // MARK: the consumer's thread

    /// Blocks until a `next()` waits; false once closing.
    private func awaitDemand() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while demand == nil, !closing { condition.wait() }
        return !closing
    }

    /// Hands `step` to the waiting `next()` (blocking until there is one); false once closing.
    private func deliver(_ step: ConsumerStep) -> Bool {
        condition.lock()
        while demand == nil, !closing { condition.wait() }
        guard !closing, let continuation = demand else {
            condition.unlock()
            return false
        }
        demand = nil
        condition.unlock()
        continuation.resume(returning: step)
        return true
    }

    private func deliverPending() -> Bool {
        guard !pending.isEmpty else { return true }
        let batch = pending
        pending = []
        return deliver(.event(.messages(batch)))
    }

    private func run(_ client: RDKafkaClient) {
        let rk = client.pointer
        while failure == nil, awaitDemand() {
            sendCommits(rk)
            guard let message = rd_kafka_consumer_poll(rk, 100) else { continue }
            take(message, client)
            while failure == nil, pending.count < maxBatchSize, let message = rd_kafka_consumer_poll(rk, 0) {
                take(message, client)
            }
            if failure == nil, !deliverPending() { break }
        }
        condition.lock()
        closing = true  // from here the rebalance callback gives partitions up without handing out events
        condition.unlock()
        sendCommits(rk)
        let err = rd_kafka_consumer_close(rk)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("kafka consumer close", metadata: ["kafka.error": "\(String(cString: rd_kafka_err2str(err)))"])
        }
        condition.lock()
        let result: Result<Void, KafkaError> = failure.map { .failure($0) } ?? .success(())
        ended = result
        let waiting = demand
        demand = nil
        let closers = self.closers
        self.closers = []
        condition.unlock()
        switch result {
        case .success: waiting?.resume(returning: .end)
        case .failure(let error): waiting?.resume(throwing: error)
        }
        withExtendedLifetime(client) {}  // the last reference: rd_kafka_destroy runs here, on this thread
        for closer in closers { closer.resume() }
    }

    private func take(_ message: UnsafeMutablePointer<rd_kafka_message_t>, _ client: RDKafkaClient) {
        defer { rd_kafka_message_destroy(message) }
        let m = message.pointee
        guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            let error = KafkaError(code: .consumer, "consume", m.err)
            if m.err == RD_KAFKA_RESP_ERR__FATAL {
                failure = client.context.fatalError.withLock { $0 } ?? error
            } else {
                logger.warning("kafka consumer error", metadata: ["kafka.error": "\(error.message)"])
            }
            return
        }
        let topic: String
        if let rkt = m.rkt {
            if let name = topicNames[rkt] {
                topic = name
            } else {
                topic = String(cString: rd_kafka_topic_name(rkt))
                topicNames[rkt] = topic
            }
        } else {
            topic = ""
        }
        pending.append(KafkaConsumerMessage(
            topic: topic, partition: m.partition, offset: m.offset,
            key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) } ?? [],
            value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []))
    }

    private func sendCommits(_ rk: OpaquePointer) {
        condition.lock()
        let commits = self.commits
        self.commits = []
        condition.unlock()
        guard !commits.isEmpty else { return }
        let merged = commits.reduce(into: [KafkaPartition: Int64]()) { $0.merge($1) { _, new in new } }
        let list = rd_kafka_topic_partition_list_new(Int32(merged.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (partition, offset) in merged {
            rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition).pointee.offset = offset
        }
        let err = rd_kafka_commit(rk, list, 1)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("kafka commit", metadata: ["kafka.error": "\(String(cString: rd_kafka_err2str(err)))"])
        }
    }

    /// librdkafka's rebalance callback, on the consumer's thread.
    func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t,
                   _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let elements = UnsafeMutableBufferPointer(start: list.pointee.elems, count: Int(list.pointee.cnt))
        let partitions = elements.map { KafkaPartition(topic: String(cString: $0.topic), partition: $0.partition) }
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            logger.info("kafka partitions assigned", metadata: ["kafka.partitions": "\(partitions.sorted())"])
            guard failure == nil, deliverPending(), deliver(.needOffsets(partitions)) else {
                rd_kafka_assign(rk, nil)
                return
            }
            condition.lock()
            while offsetsReply == nil, !closing { condition.wait() }
            let reply = offsetsReply
            offsetsReply = nil
            condition.unlock()
            switch reply {
            case .success(let offsets):
                for i in elements.indices {
                    // RD_KAFKA_OFFSET_STORED: Kafka's committed offset, else auto.offset.reset (earliest).
                    elements[i].offset = offsets[partitions[i]] ?? -1000
                }
                let err = rd_kafka_assign(rk, list)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    failure = KafkaError(code: .consumer, "assign \(partitions)", err)
                    rd_kafka_assign(rk, nil)
                }
            case .failure(let error):
                failure = KafkaError(code: .consumer, message: "start offsets for \(partitions): \(error)")
                rd_kafka_assign(rk, nil)
            case nil:
                rd_kafka_assign(rk, nil)
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            logger.info("kafka partitions revoked", metadata: ["kafka.partitions": "\(partitions.sorted())"])
            // Hand out every fetched message of the old assignment, then the revocation, and give the partitions
            // up only once the caller asks for more (it has flushed them by then).
            if failure == nil, deliverPending(), deliver(.event(.revoked(partitions))) {
                _ = awaitDemand()
            }
            pending = []
            rd_kafka_assign(rk, nil)
        default:
            logger.warning("kafka rebalance error", metadata: ["kafka.error": "\(String(cString: rd_kafka_err2str(err)))"])
            rd_kafka_assign(rk, nil)
        }
    }
}

/// Moves the client into the consumer's thread, which then holds the only reference.
private final class ClientBox: @unchecked Sendable {  // written once before the thread starts, read once by it
    private var client: RDKafkaClient?
    init(_ client: RDKafkaClient) { self.client = client }
    func take() -> RDKafkaClient { defer { client = nil }; return client! }
}
#endif
