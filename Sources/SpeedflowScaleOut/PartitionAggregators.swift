#if Kafka
import SpeedflowEngine
import SpeedflowKafka
import Synchronization

/// The aggregators of the partitions a consumer-group member owns, one per partition (each over the
/// partition's own store state and offset).
public final class PartitionAggregators: Sendable {
    private let map = Mutex<[KafkaPartition: Aggregator]>([:])

    public init() {}

    public subscript(_ p: KafkaPartition) -> Aggregator? { map.withLock { $0[p] } }
    public func set(_ p: KafkaPartition, _ a: Aggregator) { map.withLock { $0[p] = a } }
    public func remove(_ p: KafkaPartition) -> Aggregator? { map.withLock { $0.removeValue(forKey: p) } }
    public func removeAll() -> [Aggregator] { map.withLock { m in defer { m = [:] }; return Array(m.values) } }
    public var all: [Aggregator] { map.withLock { Array($0.values) } }
    public var entries: [(KafkaPartition, Aggregator)] { map.withLock { $0.map { ($0.key, $0.value) } } }
    public var partitions: [KafkaPartition] { map.withLock { $0.keys.sorted() } }
}
#endif
