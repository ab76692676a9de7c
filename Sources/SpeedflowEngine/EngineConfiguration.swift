import SpeedflowModel

/// Tuning of the ingest → aggregate → store pipeline.
public struct EngineConfiguration: Sendable {
    /// Validation rules (max speed, clock skew, acceptance horizon).
    public var policy: ValidationPolicy
    /// How often changed buckets, dedup identities and the log offset are committed to the store.
    /// Longer means fewer, bigger transactions and more log to replay after a crash. Default: 1 s.
    public var flushIntervalMs: Int64
    /// Events waiting for the log beyond which requests are refused with 503 + Retry-After. Default: 500,000.
    public var maxPendingEvents: Int
    /// Delta stores (ClickHouse) only: events counted in memory but not yet in the store beyond which requests
    /// are refused with 503 + Retry-After, so a store outage cannot grow memory without bound. Default: 5,000,000.
    public var maxStoreBacklogEvents: Int = 5_000_000
    /// Buckets untouched this long are dropped from memory once persisted. Default: 10 minutes.
    public var hotIdleMs: Int64
    /// Event identities kept in memory (~12 bytes each) before persisted, idle buckets are evicted early.
    /// The buckets being written stay regardless. Default: 8,000,000 (~100 MB; 1 B events/day is 3.5 M per 5 min).
    public var maxHotIdentities: Int
    /// A camera with no arrival for this long is `silent`. Default: 15 minutes.
    public var silentAfterMs: Int64
    /// A camera whose newest events arrive this late is `lagging`. Default: 5 minutes.
    public var laggingAfterMs: Int64
    /// An event is late when it arrives more than this after the end of its 5-minute bucket (windows count them
    /// in `late_count` and say when one last arrived in `revised_at`). Fixed when the event is counted. Default: 5 minutes.
    public var lateGraceMs: Int64 = 300_000
    /// Ingest is refused (`503 insufficient_storage`) while the data directory's file system has less free space
    /// than this (see `FreeSpaceGuard`). `nil`: no guard (a role without a data directory). Default: nil; `serve`
    /// sets it to its data directory with `FreeSpaceGuard.Threshold.default` unless told otherwise.
    public var freeSpace: FreeSpaceGuard.Configuration? = nil

    /// An aggregator's defaults: flushes every 250 ms (each partition's offset in the store is how far a
    /// takeover replays, and the API nodes read only the store).
    public static let aggregator: EngineConfiguration = {
        var c = EngineConfiguration()
        c.flushIntervalMs = 250
        return c
    }()

    public init(
        policy: ValidationPolicy = .init(), flushIntervalMs: Int64 = 1000, maxPendingEvents: Int = 500_000,
        hotIdleMs: Int64 = 600_000, maxHotIdentities: Int = 8_000_000, silentAfterMs: Int64 = 900_000,
        laggingAfterMs: Int64 = 300_000
    ) {
        self.policy = policy
        self.flushIntervalMs = flushIntervalMs
        self.maxPendingEvents = maxPendingEvents
        self.hotIdleMs = hotIdleMs
        self.maxHotIdentities = maxHotIdentities
        self.silentAfterMs = silentAfterMs
        self.laggingAfterMs = laggingAfterMs
    }
}
