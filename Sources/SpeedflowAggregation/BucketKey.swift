/// The values the bucket table, the flush and every store share: a bucket's key, a camera's record, a bucket as
/// stored. Pure values; they live beside the bucket math so the table needs no store module.

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
    /// Distinct identity hashes of the events counted in `state`, in no particular order.
    public var ids: [UInt64]
    /// How many flushes the identities are spread over (rows to read); many means "compact on next write".
    public var chunkCount: Int

    public init(state: BucketState, ids: [UInt64], chunkCount: Int = 1) {
        self.state = state
        self.ids = ids
        self.chunkCount = chunkCount
    }
}
