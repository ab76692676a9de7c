import SpeedflowAggregation

/// A store that keeps nothing: for stateless ingest nodes, whose engine only makes events durable in the log
/// (Kafka) and never aggregates.
public final class NullStore: Store {
    public init() {}
    public func logOffset() throws -> UInt64 { 0 }
    public func cameras() throws -> [CameraRecord] { [] }
    public func loadBucket(_ key: BucketKey) throws -> StoredBucket? { nil }
    public func commit(_ commit: StoreCommit) throws {}
    public func readStates(camera: Int64, buckets range: Range<Int64>) async throws -> [(bucket: Int64, state: BucketState)] { [] }
    public func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] { [:] }
    public func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] { [:] }
    public func reset(fromBucket: Int64, logOffset: UInt64) throws {}
    public func pruneIdentities(before bucket: Int64) throws -> Int { 0 }
    public func sizeInBytes() -> Int64 { 0 }
}
