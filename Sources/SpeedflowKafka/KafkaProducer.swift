#if Kafka
import Crdkafka
import Foundation
import Logging
import Synchronization

/// Settings of a `KafkaProducer`.
public struct KafkaProducerConfiguration: Sendable {
    /// `host:port[,host:port...]` of any brokers of the cluster.
    public var bootstrapServers: String
    /// How long a message may wait for the broker's acknowledgement (queueing and retries included) before its
    /// send throws `deliveryTimedOut` (`message.timeout.ms`). Default: 30 seconds.
    public var messageTimeout: Duration = .seconds(30)
    /// How long messages wait to be batched (`linger.ms`). Default: 5 ms.
    public var linger: Duration = .milliseconds(5)
    /// `client.id`. Default: speedflow.
    public var clientID: String = "speedflow"
    /// More librdkafka properties (CONFIGURATION.md), applied last. The idempotence settings cannot be overridden.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: String) { self.bootstrapServers = bootstrapServers }
}

/// An idempotent Kafka producer whose `send` returns only once the broker has acknowledged every message.
///
/// `enable.idempotence=true` and `acks=all`: a message acknowledged here is on all in-sync replicas, and
/// librdkafka's retries never duplicate or reorder it within its partition. The partition is chosen from the key
/// with murmur2 (`partitioner=murmur2_random`, Java's default), so one key always maps to one partition.
///
/// Threading: `rd_kafka_produce` only enqueues and never blocks; a dedicated thread ("speedflow-kafka-poll")
/// runs `rd_kafka_poll`, which serves the delivery reports and resumes the waiting `send`s. Each message carries
/// a retained pointer to its batch as librdkafka's per-message opaque. The `rd_kafka_t` is destroyed on that
/// thread after `close()` or when the producer is released.
public final class KafkaProducer: Sendable {
    // Owned by the poll thread, which keeps it alive until `deinit` has called `poller.stop()`: this producer
    // never outlives its client, so the unowned reference cannot dangle (and destroy never runs on the caller).
    private unowned(unsafe) let client: RDKafkaClient
    private let poller: PollThread
    private let messageTimeout: Duration
    private let logger: Logger

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws {
        var properties: [(String, String)] = [
            ("bootstrap.servers", configuration.bootstrapServers),
            ("client.id", configuration.clientID),
            ("message.timeout.ms", "\(configuration.messageTimeout.milliseconds)"),
            // A request the broker has not answered within the delivery deadline is abandoned with it: with the
            // default (60 s) an idempotent producer waits for in-flight requests to a dead broker that long before
            // it reports their messages timed out, and later sends queue behind them (seen with a broker down).
            ("socket.timeout.ms", "\(min(max(configuration.messageTimeout.milliseconds, 10), 60_000))"),
            ("linger.ms", "\(configuration.linger.milliseconds)"),
            ("partitioner", "murmur2_random"),
        ]
        properties += configuration.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        properties += [("enable.idempotence", "true"), ("acks", "all")]
        let client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: properties, logger: logger) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                let batch = Unmanaged<DeliveryBatch>.fromOpaque(opaque).takeRetainedValue()
                let err = message.pointee.err
                guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return batch.reported(nil) }
                let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
                let persisted = rd_kafka_message_status(message) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
                    ? " (possibly persisted)" : ""
                let code: KafkaError.Code = err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? .deliveryTimedOut : .deliveryFailed
                batch.reported(KafkaError(code: code, "delivery to \(topic)[\(message.pointee.partition)]\(persisted)", err))
            }
        }
        self.messageTimeout = configuration.messageTimeout
        self.logger = logger
        self.poller = PollThread(client: client)
        self.client = client
    }

    /// Produces one message and returns once it is in Kafka; throws when its delivery failed or timed out.
    public func send(topic: String, key: [UInt8], value: [UInt8]) async throws {
        try await send([KafkaProducerMessage(topic: topic, key: key, value: value)])
    }

    /// Produces `messages` and returns once every one of them is in Kafka.
    ///
    /// Throws the first failure after every message's delivery report has arrived (so nothing of this batch is
    /// still in flight when it throws). Messages of a failed batch may or may not be in Kafka: the caller retries
    /// the whole batch, which is safe when consumers deduplicate by identity.
    public func send(_ messages: some Sequence<KafkaProducerMessage>) async throws {
        if let fatal = client.context.fatalError.withLock({ $0 }) { throw fatal }
        if poller.isClosed { throw KafkaError(code: .closed, message: "producer is closed") }
        let batch = DeliveryBatch()
        var enqueueError: KafkaError?
        let clock = ContinuousClock()
        var queueFullSince: ContinuousClock.Instant?
        outer: for message in messages {
            let topic: OpaquePointer
            do { topic = try client.topic(message.topic) } catch { enqueueError = error; break }
            while true {
                batch.add()
                let opaque = Unmanaged.passRetained(batch).toOpaque()
                let rc = message.key.withUnsafeBytes { key in
                    message.value.withUnsafeBytes { value in
                        rd_kafka_produce(topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                         UnsafeMutableRawPointer(mutating: value.baseAddress), value.count,
                                         key.baseAddress, key.count, opaque)
                    }
                }
                if rc == 0 { queueFullSince = nil; continue outer }
                let err = rd_kafka_last_error()
                Unmanaged<DeliveryBatch>.fromOpaque(opaque).release()
                batch.remove()
                if err == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // Backpressure: the poll thread drains the queue as reports arrive; give up after the message
                    // timeout, as a delivery would.
                    let since = queueFullSince ?? clock.now
                    queueFullSince = since
                    if since.duration(to: clock.now) < messageTimeout {
                        try? await Task.sleep(for: .milliseconds(5))
                        continue
                    }
                    enqueueError = KafkaError(code: .queueFull, "produce to \(message.topic)", err)
                } else {
                    enqueueError = KafkaError(code: .deliveryFailed, "produce to \(message.topic)", err)
                }
                break outer
            }
        }
        let failure: KafkaError? = await withCheckedContinuation { continuation in
            batch.seal(continuation, enqueueError: enqueueError)
        }
        if let failure {
            logger.debug("kafka send failed", metadata: ["kafka.error": "\(failure)"])
            throw failure
        }
    }

    /// Waits up to `timeout` for queued messages to be delivered, then stops the poll thread and destroys the
    /// client on it; sends still queued after `timeout` fail. Later sends throw `closed`.
    public func close(timeout: Duration = .seconds(30)) async {
        await poller.close(flushTimeout: timeout)
    }

    deinit {
        poller.stop()
    }
}

/// The delivery state of one `send`: how many reports are outstanding, the first failure, and the waiter.
final class DeliveryBatch: Sendable {
    private struct State {
        var outstanding = 0
        var firstError: KafkaError?
        var continuation: CheckedContinuation<KafkaError?, Never>?
        var sealed = false
    }
    private let state = Mutex(State())

    func add() { state.withLock { $0.outstanding += 1 } }
    func remove() { state.withLock { $0.outstanding -= 1 } }

    /// Every message is enqueued (or `enqueueError` stopped it): resume `continuation` once all reports are in.
    func seal(_ continuation: CheckedContinuation<KafkaError?, Never>, enqueueError: KafkaError?) {
        let resume: (CheckedContinuation<KafkaError?, Never>, KafkaError?)? = state.withLock { state in
            state.sealed = true
            if state.firstError == nil { state.firstError = enqueueError }
            if state.outstanding == 0 { return (continuation, state.firstError) }
            state.continuation = continuation
            return nil
        }
        if let (continuation, error) = resume { continuation.resume(returning: error) }
    }

    /// One delivery report arrived (on the poll thread).
    func reported(_ error: KafkaError?) {
        let resume: (CheckedContinuation<KafkaError?, Never>, KafkaError?)? = state.withLock { state in
            state.outstanding -= 1
            if state.firstError == nil { state.firstError = error }
            guard state.sealed, state.outstanding == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            return (continuation, state.firstError)
        }
        if let (continuation, error) = resume { continuation.resume(returning: error) }
    }
}

/// The producer's dedicated thread. It owns the client: it runs `rd_kafka_poll` (serving delivery reports),
/// flushes on `close`, and when stopped purges what is left (every waiting send gets its report), then drops
/// the client, so `rd_kafka_destroy` runs on this thread.
final class PollThread: Sendable {
    private struct State {
        var client: RDKafkaClient?
        var closed = false
        var stopping = false
        var flushes: [(Duration, CheckedContinuation<Void, Never>)] = []
    }
    private let state: Mutex<State>

    init(client: RDKafkaClient) {
        state = Mutex(State(client: client))
        let thread = Thread { [self] in run() }
        thread.name = "speedflow-kafka-poll"
        thread.start()
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    private func run() {
        let client = state.withLock { $0.client.take()! }
        let rk = client.pointer
        while true {
            rd_kafka_poll(rk, 100)
            let (flushes, stopping) = state.withLock { state in
                defer { state.flushes = [] }
                return (state.flushes, state.stopping)
            }
            if stopping { break }
            for (timeout, continuation) in flushes {
                rd_kafka_flush(rk, Int32(clamping: timeout.milliseconds))
                Self.purge(rk)
                continuation.resume()
            }
        }
        Self.purge(rk)
        let flushes = state.withLock { state in
            defer { state.flushes = [] }
            return state.flushes
        }
        withExtendedLifetime(client) {}  // the last reference: rd_kafka_destroy runs here, on this thread
        for (_, continuation) in flushes { continuation.resume() }
    }

    /// Fails whatever is still queued or in flight and serves the reports, so no send waits forever.
    private static func purge(_ rk: OpaquePointer) {
        rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        rd_kafka_poll(rk, 0)
        // Purged in-flight messages report at once; other requests (metadata) may linger: bounded wait.
        for _ in 0..<100 where rd_kafka_outq_len(rk) > 0 { rd_kafka_poll(rk, 50) }
    }

    func close(flushTimeout: Duration) async {
        await withCheckedContinuation { continuation in
            state.withLock { state in
                state.closed = true
                state.flushes.append((flushTimeout, continuation))
            }
        }
    }

    /// Called from the producer's `deinit`, after which nothing touches the client.
    func stop() {
        state.withLock { state in
            state.closed = true
            state.stopping = true
        }
    }
}
#endif
