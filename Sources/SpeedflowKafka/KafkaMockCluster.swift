#if Kafka
import Crdkafka
import Logging
import Synchronization

/// librdkafka's built-in mock cluster: brokers speaking the real Kafka protocol on loopback, inside this
/// process. The one stand-in for Kafka that tests and demos use (no broker can be installed here).
///
/// It supports producing (idempotent too), consumer groups with offset commits, and topic auto-creation; not
/// the Admin API (create topics with `createTopic`). Broker ids are 1...brokers. It runs on librdkafka's own
/// threads until `stop()` or until it is released.
public final class KafkaMockCluster: Sendable {
    /// The brokers' `host:port` list, for `bootstrap.servers`.
    public let bootstrapServers: String
    public let brokerCount: Int

    private struct Handles: ~Copyable {
        var cluster: OpaquePointer?
        var client: RDKafkaClient?
    }
    private let handles: Mutex<Handles>

    /// Starts `brokers` brokers on ephemeral loopback ports.
    public init(brokers: Int = 3, logger: Logger) throws {
        guard brokers >= 1 else { throw KafkaError(code: .mockCluster, message: "brokers must be at least 1") }
        // The cluster needs an rd_kafka_t for its bookkeeping; a producer with no brokers of its own.
        let client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: [("client.id", "speedflow-mock")],
                                       logger: logger)
        guard let cluster = rd_kafka_mock_cluster_new(client.pointer, Int32(brokers)) else {
            throw KafkaError(code: .mockCluster, message: "rd_kafka_mock_cluster_new failed")
        }
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerCount = brokers
        self.handles = Mutex(Handles(cluster: cluster, client: client))
    }

    /// Creates `name` with `partitions` partitions; partition p is led by broker `p % brokers + 1`.
    ///
    /// The mock places replicas from a random first broker, so a broker may lead none of a topic's partitions
    /// (then taking it down changes nothing for producers: seen as a flaky outage test). Leaders are set
    /// round-robin instead, so every broker leads some partition whenever partitions >= brokers.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        try call("create topic \(name)") { rd_kafka_mock_topic_create($0, name, Int32(partitions), Int32(replicationFactor)) }
        for partition in 0..<Int32(partitions) {
            try setPartitionLeader(topic: name, partition: partition, broker: partition % Int32(brokerCount) + 1)
        }
    }

    /// Disconnects broker `id` and refuses new connections (partition leadership does not move).
    public func setBrokerDown(_ id: Int32) throws {
        try call("broker \(id) down") { rd_kafka_mock_broker_set_down($0, id) }
    }

    /// Lets broker `id` accept connections again.
    public func setBrokerUp(_ id: Int32) throws {
        try call("broker \(id) up") { rd_kafka_mock_broker_set_up($0, id) }
    }

    /// Makes `broker` the leader of `topic`'s `partition`.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws {
        try call("leader of \(topic)[\(partition)]") { rd_kafka_mock_partition_set_leader($0, topic, partition, broker) }
    }

    /// Shuts the brokers down (their connections close). Idempotent; also done when released.
    public func stop() {
        let (cluster, client) = handles.withLock { handles in
            defer { handles.cluster = nil; handles.client = nil }
            return (handles.cluster, handles.client)
        }
        if let cluster { rd_kafka_mock_cluster_destroy(cluster) }
        withExtendedLifetime(client) {}
    }

    deinit { stop() }

    private func call(_ what: String, _ body: (OpaquePointer) -> rd_kafka_resp_err_t) throws(KafkaError) {
        let err: rd_kafka_resp_err_t = handles.withLock { handles in
            guard let cluster = handles.cluster else { return RD_KAFKA_RESP_ERR__DESTROY }
            return body(cluster)
        }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code: .mockCluster, what, err) }
    }
}
#endif
