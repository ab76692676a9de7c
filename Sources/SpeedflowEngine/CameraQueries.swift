import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

/// What queries read from memory: the cameras known and the buckets held (fresher than the store, or not yet
/// in it). A counting role's `Aggregator` is one; an API node's `StoreFollower` (cameras only) is the other.
public protocol CameraView: Sendable {
    /// The camera's store id and its in-memory states for bucket numbers in `range`; `nil` for a camera never
    /// seen.
    func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])?
    /// Every camera, with its in-memory event counts from bucket `lowest` on and its state in bucket `current`.
    func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow]
}

/// A camera as `CameraView` gives it to queries.
public struct CameraRow: Sendable {
    /// Record and counters (without its buckets).
    public var camera: BucketTable.Camera
    public var hotCounts: [Int64: Int64]
    public var hotCurrent: BucketState?
}

extension BucketTable {
    func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])? {
        guard let camera = kvfvIds[kvfvId] else { return nil }
        return (camera, hotStates(camera: camera, buckets: range))
    }

    func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow] {
        cameras.values.map { camera in
            var counts: [Int64: Int64] = [:]
            for (bucket, e) in camera.buckets where bucket >= lowest { counts[bucket] = e.state.count }
            // Without its buckets: the copy would keep every hot bucket's storage alive past the lock.
            var bare = camera
            bare.dropBuckets()
            return CameraRow(camera: bare, hotCounts: counts, hotCurrent: camera.buckets[current]?.state)
        }
    }
}

/// A camera's row in `GET /kvfv`.
public struct CameraStatus: Sendable {
    public enum Health: String, Sendable { case live, silent, lagging, clockSkew = "clock_skew", stuck }
    public var kvfvId: String
    public var health: Health
    public var lastEventMs: Int64?
    public var lastArrivalMs: Int64?
    public var lagMs: Int64
    public var eventsLastHour: Int64
    public var eventsToday: Int64
    public var currentWindowStartMs: Int64
    public var current: BucketState
    public var accepted: Int64
    public var duplicates: Int64
    public var rejected: Int64
}

/// The read side of every role that answers queries: memory first (`CameraView`), then the store.
public struct CameraQueries: Sendable {
    public let view: any CameraView
    public let store: any StoreReader
    let configuration: EngineConfiguration
    let clock: @Sendable () -> Int64

    public init(
        view: any CameraView, store: any StoreReader, configuration: EngineConfiguration,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.view = view
        self.store = store
        self.configuration = configuration
        self.clock = clock
    }

    public var now: Int64 { clock() }

    /// Merged state of each window for one camera, reading memory (the freshest, including every acked event)
    /// and the store. Returns `nil` for a camera never seen.
    ///
    /// Memory is read first; a bucket not in memory then is persisted (only persisted buckets are evicted), so
    /// the store read that follows sees it.
    public func windowStates(kvfvId: String, windows: [Window]) async throws -> [BucketState]? {
        guard let first = windows.first, let last = windows.last else { return [] }
        let range = first.buckets.lowerBound..<max(first.buckets.lowerBound, last.buckets.upperBound)
        guard let hot = view.hotStates(kvfvId: kvfvId, buckets: range) else { return nil }
        var byBucket = hot.states
        for (bucket, state) in try await store.readStates(camera: hot.camera, buckets: range) where byBucket[bucket] == nil {
            byBucket[bucket] = state
        }
        let sorted = byBucket.sorted { $0.key < $1.key }
        var result = [BucketState](repeating: BucketState(), count: windows.count)
        var w = 0
        for (bucket, state) in sorted {
            while w < windows.count && bucket >= windows[w].buckets.upperBound { w += 1 }
            guard w < windows.count else { break }
            if windows[w].buckets.contains(bucket) { result[w].merge(state) }
        }
        return result
    }

    /// Every camera with its health and recent figures.
    public func cameraStatuses() async throws -> [CameraStatus] {
        let now = clock()
        let currentBucket = Bucket.index(ofTimestamp: now)
        let dayStart = Bucket.index(ofTimestamp: now - now.floorDivMod(86_400_000).1)
        let hourStart = Bucket.index(ofTimestamp: now - 3_600_000) + 1
        let lowest = min(dayStart, hourStart)
        // Counts are all the day needs; the full state (histogram and all) only for the current bucket.
        let rows = view.cameraRows(countsFrom: lowest, current: currentBucket)
        let storedCounts = try await store.countsByCamera(buckets: lowest..<(currentBucket + 1))
        let storedCurrent = try await store.statesByCamera(buckets: currentBucket..<(currentBucket + 1))
        return rows.map { row in
            let live = row.camera
            let id = live.record.id
            var today: Int64 = 0, lastHour: Int64 = 0
            var counts = storedCounts[id] ?? [:]
            for (b, n) in row.hotCounts { counts[b] = n }
            for (b, n) in counts {
                if b >= dayStart { today += n }
                if b >= hourStart { lastHour += n }
            }
            return CameraStatus(
                kvfvId: live.record.kvfvId, health: health(live, nowMs: now),
                lastEventMs: live.record.lastEventMs, lastArrivalMs: live.record.lastArrivalMs, lagMs: live.lagMs,
                eventsLastHour: lastHour, eventsToday: today,
                currentWindowStartMs: Bucket.start(ofIndex: currentBucket),
                current: row.hotCurrent ?? storedCurrent[id]?[currentBucket] ?? BucketState(),
                accepted: live.accepted, duplicates: live.duplicates, rejected: live.rejected)
        }.sorted { $0.kvfvId < $1.kvfvId }
    }

    func health(_ c: BucketTable.Camera, nowMs: Int64) -> CameraStatus.Health {
        if let arrival = c.record.lastArrivalMs, nowMs - arrival > configuration.silentAfterMs { return .silent }
        if c.record.lastArrivalMs == nil { return .silent }
        if let f = c.lastInFutureMs, nowMs - f < 3_600_000 { return .clockSkew }
        if c.looksStuck { return .stuck }
        if c.lagMs > configuration.laggingAfterMs { return .lagging }
        return .live
    }
}

extension Aggregator: CameraView {
    public func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])? {
        table.withLock { $0.hotStates(kvfvId: kvfvId, buckets: range) }
    }

    public func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow] {
        table.withLock { $0.cameraRows(countsFrom: lowest, current: current) }
    }
}
