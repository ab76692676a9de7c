import SpeedflowAggregation

/// Identifies a bucket: the camera's numeric id (assigned by the store on first sight) and the bucket number.
public struct BucketKey: Hashable, Sendable, Comparable {
    public var camera: Int64
    public var bucket: Int64

    public init(camera: Int64, bucket: Int64) {
        self.camera = camera
        self.bucket = bucket
    }

    public static func < (a: BucketKey, b: BucketKey) -> Bool { (a.camera, a.bucket) < (b.camera, b.bucket) }
}

/// A camera as the store knows it.
public struct CameraRecord: Sendable, Hashable {
    public var id: Int64
    public var kvfvId: String
    /// Newest event time seen, ms.
    public var lastEventMs: Int64?
    /// Arrival time of the newest request carrying an event of this camera, ms.
    public var lastArrivalMs: Int64?

    public init(id: Int64, kvfvId: String, lastEventMs: Int64? = nil, lastArrivalMs: Int64? = nil) {
        self.id = id
        self.kvfvId = kvfvId
        self.lastEventMs = lastEventMs
        self.lastArrivalMs = lastArrivalMs
    }
}

/// A bucket's full persisted state: the aggregate and the identities already counted in it.
public struct StoredBucket: Sendable {
    public var state: BucketState
    /// Distinct identity hashes of the events counted in `state`, in no particular order (they become a `Set`
    /// again when loaded; sorting them on every flush cost a tenth of the ingest CPU).
    public var ids: [UInt64]

    public init(state: BucketState, ids: [UInt64]) {
        self.state = state
        self.ids = ids
    }
}

/// One atomic flush: bucket states and dedup sets, camera metadata, and the log offset they reflect.
public struct StoreCommit: Sendable {
    public var buckets: [(key: BucketKey, bucket: StoredBucket)] = []
    public var cameras: [CameraRecord] = []
    /// Everything in the log before this offset is reflected by the store after this commit.
    public var logOffset: UInt64

    public init(logOffset: UInt64) { self.logOffset = logOffset }
}

/// Where aggregated state lives. Every commit is atomic: state, dedup identities and offset move together,
/// which together with idempotent identities is what makes replay after a crash exact.
public protocol Store: Sendable {
    /// The log offset the stored state reflects (0 for a new store).
    func logOffset() throws -> UInt64
    func cameras() throws -> [CameraRecord]
    func loadBucket(_ key: BucketKey) throws -> StoredBucket?
    func commit(_ commit: StoreCommit) throws
    /// Aggregates of `camera` for bucket numbers in `range`, ascending; absent buckets are omitted.
    func readStates(camera: Int64, buckets range: Range<Int64>) async throws -> [(bucket: Int64, state: BucketState)]
    /// Aggregates of every camera for bucket numbers in `range` (for the fleet view: last hour, today).
    func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]]
    /// Forgets buckets numbered `fromBucket` or later and sets the offset, atomically (for `rebuild`).
    func reset(fromBucket: Int64, logOffset: UInt64) throws
    /// Drops dedup identities of buckets before `bucket`: events that old are rejected as too late anyway.
    func pruneIdentities(before bucket: Int64) throws -> Int
    /// Bytes on disk.
    func sizeInBytes() -> Int64
}
