import SpeedflowAggregation
import SpeedflowModel

/// One atomic flush: bucket states, the identities added to them, camera metadata, and the log offset they reflect.
public struct StoreCommit: Sendable {
    /// A changed bucket: its whole new aggregate, and only the identities added since its previous commit, so a
    /// flush writes in proportion to new events, not to bucket size.
    public struct Bucket: Sendable {
        public var key: BucketKey
        public var state: BucketState
        public var addedIds: [UInt64]
        /// When set, `addedIds` is the bucket's complete identity set and replaces its chunks (compaction).
        public var replacesIds: Bool
        /// Only for stores that record deltas (`CommitPolicy.appendDeltas`): the aggregate of just the events added
        /// since the bucket's previous commit, and those events themselves.
        public var delta: BucketState
        public var events: [CameraEvent]

        public init(
            key: BucketKey, state: BucketState, addedIds: [UInt64], replacesIds: Bool = false,
            delta: BucketState = BucketState(), events: [CameraEvent] = []
        ) {
            self.key = key
            self.state = state
            self.addedIds = addedIds
            self.replacesIds = replacesIds
            self.delta = delta
            self.events = events
        }
    }

    /// A camera's changed sequence-ledger chunks (each whole: it replaces the stored one) and its newest report.
    public struct Sequence: Sendable {
        public var camera: Int64
        public var chunks: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])]
        public var report: CameraReport?
        public var reportArrivalMs: Int64?

        public init(
            camera: Int64, chunks: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])], report: CameraReport? = nil,
            reportArrivalMs: Int64? = nil
        ) {
            self.camera = camera
            self.chunks = chunks
            self.report = report
            self.reportArrivalMs = reportArrivalMs
        }
    }

    /// Rejections counted since the previous commit, per camera and 5-minute bucket of arrival time: added to
    /// the stored counts (not replacing them), in the same atomic commit as the log offset, so a replay from that
    /// offset counts each record's rejections exactly once.
    public struct Rejections: Sendable, Hashable {
        public var key: BucketKey
        public var counts: [RejectionReason: Int64]

        public init(key: BucketKey, counts: [RejectionReason: Int64]) {
            self.key = key
            self.counts = counts
        }
    }

    public var buckets: [Bucket] = []
    public var cameras: [CameraRecord] = []
    /// In (camera, bucket) order, for cameras that are in `cameras` (or already stored).
    public var rejections: [Rejections] = []
    /// Sequence state changed by this commit, for cameras that are in `cameras` (or already stored).
    public var sequences: [Sequence] = []
    /// Everything in the log before this offset is reflected by the store after this commit.
    public var logOffset: UInt64
    /// When the engine cut this commit (ms): part of its content, so a retried commit is byte-identical.
    public var timeMs: Int64

    public init(logOffset: UInt64, timeMs: Int64 = 0) {
        self.logOffset = logOffset
        self.timeMs = timeMs
    }
}

/// What reads aggregated state: queries (memory first, then here) and API nodes, which hold nothing else.
///
/// GRDB's `DatabaseReader` / `DatabaseWriter` split is the model: a role that only answers queries gets a
/// reader and cannot write by construction.
public protocol StoreReader: Sendable {
    func cameras() throws -> [CameraRecord]
    /// The sequence state (ledger and newest report) of the given cameras, or of every camera that has one when
    /// `cameras` is `nil`; cameras without any are absent.
    func sequences(cameras: [Int64]?) throws -> [Int64: CameraSequence]
    /// Aggregates of `camera` for bucket numbers in `range`, ascending; absent buckets are omitted. With
    /// `lanes: false` the per-lane states are not decoded (`BucketState.lanesOmitted`): a query of the camera's
    /// figures reads each bucket at the cost it had before lanes were kept.
    func readStates(camera: Int64, buckets range: Range<Int64>, lanes: Bool) async throws -> [(bucket: Int64, state: BucketState)]
    /// Aggregates of every camera for bucket numbers in `range` (for the fleet view: the current window).
    func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]]
    /// Event counts of every camera per bucket in `range` (for the fleet view: last hour, today), without
    /// decoding whole aggregates.
    func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]]
    /// `statesByCamera` for the given cameras only (a page of the fleet view): work in proportion to them.
    func statesByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]]
    /// `countsByCamera` for the given cameras only (a page of the fleet view): work in proportion to them.
    func countsByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]]
    /// Rejection counts of `camera` per 5-minute bucket of arrival time in `range`, by reason; buckets without
    /// any are absent.
    func rejections(camera: Int64, buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]]
    /// Rejection counts of every camera summed over the arrival buckets in `range`, by reason; cameras without
    /// any are absent.
    func rejectionsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]]
    /// Bytes on disk.
    func sizeInBytes() -> Int64
    /// Checks the whole store for damage (SQLite: `PRAGMA quick_check`, and with `summaries` every camera-day
    /// against its summary); returns what is wrong, empty when sound. Reads only; runs beside writes.
    func checkIntegrity(summaries: Bool) throws -> [String]
    /// Called with every corruption the store detects (on reads, loads, commits, checks), for logs and metrics.
    func onCorruption(_ handler: @escaping @Sendable (StoreError) -> Void)
}

/// Where aggregated state is written. Every commit is atomic: state, dedup identities and offset move
/// together, which together with idempotent identities is what makes replay after a crash exact.
public protocol StoreWriter: StoreReader {
    /// How the store takes a commit: SQLite overwrites whole states (`.overwrite`, the default); an append-only
    /// store such as ClickHouse adds each bucket's delta and new events (`.appendDeltas`). Read once, where a
    /// pipeline is put together.
    var commitPolicy: CommitPolicy { get }
    /// The log offset the stored state reflects (0 for a new store).
    func logOffset() throws -> UInt64
    func loadBucket(_ key: BucketKey) throws -> StoredBucket?
    /// `loadBucket` for many keys at once (a group commit's late events): a store where each read is a round
    /// trip answers them in one. Keys the store does not have are absent from the answer.
    func loadBuckets(_ keys: [BucketKey]) throws -> [BucketKey: StoredBucket]
    func commit(_ commit: StoreCommit) throws
    /// For a store whose parts can stand at different log offsets (ClickHouse: each shard its own marker; a
    /// commit may land on one shard and not the other), the offset up to which a camera's additive rows
    /// (rejection counts, which have no identities to deduplicate a replay by) are stored, as of the last
    /// `logOffset()`; `nil` (the default): `logOffset()` for every camera. A replay does not count again the
    /// rejections of records a camera's part already holds.
    func rejectionsStoredUpTo() throws -> (@Sendable (_ kvfvId: String) -> UInt64)?
    /// Forgets buckets numbered `fromBucket` or later and sets the offset, atomically (for `rebuild`).
    func reset(fromBucket: Int64, logOffset: UInt64) throws
    /// Drops dedup identities of buckets before `bucket`: events that old are rejected as too late anyway.
    func pruneIdentities(before bucket: Int64) throws -> Int
    /// Periodic housekeeping at `nowMs` (retention); returns a short description of what it did, if anything.
    func maintain(nowMs: Int64) throws -> String?
    /// Moves the store's files aside (kept, never deleted) and continues with an empty store in their place.
    /// Returns where the damaged copy went, or `nil` when this store cannot (it has no files of its own).
    func quarantine(reason: String) throws -> String?
}

extension StoreReader {
    /// The fleet's read, filtered: correct for any store (wrappers in tests), not bounded by the page.
    public func statesByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        let wanted = Set(cameras)
        return try await statesByCamera(buckets: range).filter { wanted.contains($0.key) }
    }

    /// The fleet's read, filtered: correct for any store (wrappers in tests), not bounded by the page.
    public func countsByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        let wanted = Set(cameras)
        return try await countsByCamera(buckets: range).filter { wanted.contains($0.key) }
    }

    public func checkIntegrity(summaries: Bool) throws -> [String] { [] }
    public func onCorruption(_ handler: @escaping @Sendable (StoreError) -> Void) {}
}

extension StoreWriter {
    public var commitPolicy: CommitPolicy { .overwrite }

    /// One `loadBucket` per key: right for a local store, where a read costs microseconds.
    public func loadBuckets(_ keys: [BucketKey]) throws -> [BucketKey: StoredBucket] {
        var found: [BucketKey: StoredBucket] = [:]
        for key in keys {
            if let stored = try loadBucket(key) { found[key] = stored }
        }
        return found
    }
    public func rejectionsStoredUpTo() throws -> (@Sendable (_ kvfvId: String) -> UInt64)? { nil }
    public func maintain(nowMs: Int64) throws -> String? { nil }
    public func quarantine(reason: String) throws -> String? { nil }
}

/// A store failure with a stable code, like `LogError` and `IngestError`.
///
/// `corrupt` means stored data failed an integrity check (a day's rows disagree with its summary, a state does
/// not decode, a bucket's identities do not match its count, SQLite reports a malformed file): the number
/// it would have given cannot be trusted, so none is given. The HTTP layer answers it as `store_corrupt`.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// Stored data is damaged; the log (`speedflow rebuild`) or a backup repairs it.
        public static let corrupt = Code(raw: "corrupt")
        /// The store was written by a newer Speedflow: opening it here would leave its newer parts unmaintained.
        public static let newer = Code(raw: "newer")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String
    /// The camera (store id) and UTC day (days since 1970-01-01) the damage was found in, when known.
    public var camera: Int64?
    public var day: Int64?

    public init(_ code: Code, _ message: String, camera: Int64? = nil, day: Int64? = nil) {
        self.code = code
        self.message = message
        self.camera = camera
        self.day = day
    }

    /// The stable machine-readable reason for an API answer: `store_corrupt`.
    public var reason: String { "store_\(code.raw)" }

    /// How an operator repairs it, for messages and logs.
    public static let repairHint =
        "stop the server and run `speedflow rebuild` (it moves the damaged store aside, recomputes every bucket the log still covers and keeps the older days that still verify), or restore store.sqlite from a backup"

    public var description: String { "\(reason): \(message)" }
}

extension StoreReader {
    /// Aggregates of `camera` for bucket numbers in `range` with their lanes.
    public func readStates(camera: Int64, buckets range: Range<Int64>) async throws -> [(bucket: Int64, state: BucketState)] {
        try await readStates(camera: camera, buckets: range, lanes: true)
    }
}
