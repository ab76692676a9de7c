#if Kafka
import Crdkafka
import Foundation
import Logging

/// Settings of a `KafkaConsumer`.
public struct KafkaConsumerConfiguration: Sendable {
    /// `host:port[,host:port...]` of any brokers of the cluster.
    public var bootstrapServers: String
    /// The consumer group (`group.id`): the group's members split the topics' partitions.
    public var groupID: String
    /// The topics to subscribe to.
    public var topics: [String]
    /// How long the group waits for a silent member before giving its partitions to others
    /// (`session.timeout.ms`). Default: 10 seconds.
    public var sessionTimeout: Duration = .seconds(10)
    /// Most messages in one `.messages` event. Default: 1000.
    public var maxBatchSize: Int = 1000
    /// `client.id`. Default: speedflow.
    public var clientID: String = "speedflow"
    /// More librdkafka properties (CONFIGURATION.md), applied last. Offsets are never auto-committed and the
    /// assignor stays eager (`range` or `roundrobin`); cooperative assignors are rejected.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: String, groupID: String, topics: [String]) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
        self.topics = topics
    }
}

/// What a `KafkaConsumer` hands its caller, in order.
public enum KafkaConsumerEvent: Sendable {
    /// Partitions were assigned to this member; consumption starts at these offsets (the ones the start-offset
    /// function returned; a partition it left out starts at Kafka's committed offset, else the earliest).
    case assigned([KafkaPartition: Int64?])
    /// A non-empty batch of messages, each partition's in offset order.
    case messages([KafkaConsumerMessage])
    /// These partitions are taken away. Every message of them was handed out before this event; finish with
    /// them (flush state and offsets) *before* asking for the next event: the consumer gives the partitions up
    /// (`rd_kafka_assign(NULL)`), letting another member start on them, only when the next event is requested.
    case revoked([KafkaPartition])
}

/// A consumer-group member whose caller owns the offsets: on assignment it chooses where each partition starts
/// (typically the offset stored atomically with its state), and on revocation it flushes before letting go.
///
/// `enable.auto.commit=false`, `enable.auto.offset.store=false`, `auto.offset.reset=earliest`, eager assignor
/// (`partition.assignment.strategy=range`), so a rebalance is "revoke everything, then assign".
///
/// Surface: `events` is an AsyncSequence of `KafkaConsumerEvent` driven by demand. A dedicated thread
/// ("speedflow-kafka-consumer") owns the `rd_kafka_t` and calls `rd_kafka_consumer_poll` only while the caller
/// waits in `next()`; it hands over one event per `next()` and blocks (off the cooperative pool) until the next
/// request. The rebalance callback runs on that thread: on assignment it hands the partitions to `next()`, which
/// calls `startOffsets` in the caller's task and hands the answer back for `rd_kafka_assign`; on revocation it
/// hands out `.revoked` and waits for the following `next()` before `rd_kafka_assign(NULL)`. Iterate from one
/// task at a time. A caller that stops iterating for longer than `max.poll.interval.ms` (5 min) leaves the group.
public final class KafkaConsumer: Sendable {
    /// Returns the offset to start at for each newly assigned partition (the next offset to read).
    public typealias StartOffsets = @Sendable ([KafkaPartition]) async throws -> [KafkaPartition: Int64]

    private let channel: ConsumerChannel
    private let startOffsets: StartOffsets

    /// Joins `configuration.groupID` and subscribes to `configuration.topics`.
    public init(configuration: KafkaConsumerConfiguration, logger: Logger,
                startOffsets: @escaping StartOffsets = { _ in [:] }) throws {
        if let strategy = configuration.properties["partition.assignment.strategy"], strategy.contains("cooperative") {
            throw KafkaError(code: .configuration, message: "cooperative assignors are not supported: \(strategy)")
        }
        var properties: [(String, String)] = [
            ("bootstrap.servers", configuration.bootstrapServers),
            ("group.id", configuration.groupID),
            ("client.id", configuration.clientID),
            ("session.timeout.ms", "\(configuration.sessionTimeout.milliseconds)"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "range"),
        ]
        properties += configuration.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        properties += [("enable.auto.commit", "false"), ("enable.auto.offset.store", "false")]
        let channel = ConsumerChannel(maxBatchSize: max(1, configuration.maxBatchSize), logger: logger)
        let client = try RDKafkaClient(type: RD_KAFKA_CONSUMER, properties: properties, logger: logger,
                                       attachment: channel) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
                guard let rk, let partitions,
                      let channel = RDKafkaContext.from(opaque)?.attachment as? ConsumerChannel else { return }
                channel.rebalance(rk, err, partitions)
            }
        }
        rd_kafka_poll_set_consumer(client.pointer)
        let list = rd_kafka_topic_partition_list_new(Int32(configuration.topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in configuration.topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(client.pointer, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code: .consumer, "subscribe to \(configuration.topics)", err)
        }
        self.channel = channel
        self.startOffsets = startOffsets
        channel.start(client)
    }

    /// The consumer's events; iterate from one task. Ends after `close()`; throws when the consumer failed
    /// (fatal error, or `startOffsets` threw: the consumer then leaves the group).
    public var events: Events { Events(consumer: self) }

    /// Tells the group which offsets this member has processed up to (the next offset to read, per partition),
    /// for lag monitoring and tools. Asynchronous and best effort: the authoritative offsets are the caller's.
    public func commit(_ offsets: [KafkaPartition: Int64]) {
        channel.commit(offsets)
    }

    /// Leaves the group (its partitions go to the other members at once) and destroys the client on the
    /// consumer's thread. No `.revoked` is handed out for this: flush before closing. Iteration then ends.
    public func close() async {
        await channel.close()
    }

    deinit {
        channel.requestClose()
    }

    public struct Events: AsyncSequence, Sendable {
        public typealias Element = KafkaConsumerEvent
        let consumer: KafkaConsumer

        public func makeAsyncIterator() -> Iterator { Iterator(consumer: consumer) }

        public struct Iterator: AsyncIteratorProtocol {
            let consumer: KafkaConsumer

            public mutating func next() async throws -> KafkaConsumerEvent? {
                let step = try await consumer.channel.next()
                switch step {
                case .event(let event):
                    return event
                case .end:
                    return nil
                case .needOffsets(let partitions):
                    do {
                        let offsets = try await consumer.startOffsets(partitions)
                        consumer.channel.reply(.success(offsets))
                        return .assigned(Dictionary(uniqueKeysWithValues: partitions.map { ($0, offsets[$0]) }))
                    } catch {
                        consumer.channel.reply(.failure(error))
                        throw error
                    }
                }
            }
        }
    }
}
#endif
