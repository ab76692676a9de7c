#if Kafka
import SpeedflowEngine
import SpeedflowKafka
import Synchronization

/// The engines of the partitions an aggregator owns, one per partition (each with the partition's own store
/// state and offset).
public final class PartitionEngines: Sendable {
    private let map = Mutex<[KafkaPartition: Engine]>([:])

    public init() {}

    public subscript(_ p: KafkaPartition) -> Engine? { map.withLock { $0[p] } }
    public func set(_ p: KafkaPartition, _ e: Engine) { map.withLock { $0[p] = e } }
    public func remove(_ p: KafkaPartition) -> Engine? { map.withLock { $0.removeValue(forKey: p) } }
    public var all: [Engine] { map.withLock { Array($0.values) } }
    public var entries: [(KafkaPartition, Engine)] { map.withLock { $0.map { ($0.key, $0.value) } } }
    public var partitions: [KafkaPartition] { map.withLock { $0.keys.sorted() } }
}
#endif
