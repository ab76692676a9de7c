#if Kafka
/// One partition of one topic.
public struct KafkaPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: KafkaPartition, b: KafkaPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A message read from Kafka.
public struct KafkaConsumerMessage: Sendable {
    public var topic: String
    public var partition: Int32
    /// The message's offset; the next one to read from this partition is `offset + 1`.
    public var offset: Int64
    public var key: [UInt8]
    public var value: [UInt8]

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8], value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }

    public var topicPartition: KafkaPartition { KafkaPartition(topic: topic, partition: partition) }
}

/// A message to produce. The partition is chosen from the key (murmur2, as Java clients do), so one key,
/// e.g. one camera, always lands in one partition.
public struct KafkaProducerMessage: Sendable {
    public var topic: String
    public var key: [UInt8]
    public var value: [UInt8]

    public init(topic: String, key: [UInt8], value: [UInt8]) {
        self.topic = topic
        self.key = key
        self.value = value
    }
}
#endif
