import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

extension Engine {
    /// Merged state of each window for one camera, reading memory (the freshest, including every acked event)
    /// and the store. Returns `nil` for a camera never seen.
    ///
    /// Memory is read first, under the lock; a bucket not in memory then is persisted (only persisted buckets
    /// are evicted), so the store read that follows sees it.
    public func windowStates(kvfvId: String, windows: [Window]) async throws -> [BucketState]? {
        guard let first = windows.first, let last = windows.last else { return [] }
        let range = first.buckets.lowerBound..<max(first.buckets.lowerBound, last.buckets.upperBound)
        if configuration.followsStore && table.withLock({ $0.kvfvIds[kvfvId] == nil }) {
            refreshIfFollowing(unknownCamera: true)
        }
        let hot: (camera: Int64, states: [Int64: BucketState])? = table.withLock { t in
            guard let camera = t.kvfvIds[kvfvId] else { return nil }
            return (camera, t.hotStates(camera: camera, buckets: range))
        }
        guard let hot else { return nil }
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

    /// Every camera with its health and recent figures.
    public func cameraStatuses() async throws -> [CameraStatus] {
        refreshIfFollowing()
        let now = clock()
        let currentBucket = Bucket.index(ofTimestamp: now)
        let dayStart = Bucket.index(ofTimestamp: now - now.floorDivMod(86_400_000).1)
        let hourStart = Bucket.index(ofTimestamp: now - 3_600_000) + 1
        let lowest = min(dayStart, hourStart)
        // Counts are all the day needs; the full state (histogram and all) only for the current bucket.
        struct Row { var live: BucketTable.Camera; var hotCounts: [Int64: Int64]; var hotCurrent: BucketState? }
        let rows: [Int64: Row] = table.withLock { t in
            var rows: [Int64: Row] = [:]
            for (id, camera) in t.cameras {
                var counts: [Int64: Int64] = [:]
                for (bucket, e) in camera.buckets where bucket >= lowest { counts[bucket] = e.state.count }
                // Without its buckets: the copy would keep every hot bucket's storage alive past the lock.
                var live = camera
                live.dropBuckets()
                rows[id] = Row(live: live, hotCounts: counts, hotCurrent: camera.buckets[currentBucket]?.state)
            }
            return rows
        }
        let storedCounts = try await store.countsByCamera(buckets: lowest..<(currentBucket + 1))
        let storedCurrent = try await store.statesByCamera(buckets: currentBucket..<(currentBucket + 1))
        return rows.map { id, row in
            var today: Int64 = 0, lastHour: Int64 = 0
            var counts = storedCounts[id] ?? [:]
            for (b, n) in row.hotCounts { counts[b] = n }
            for (b, n) in counts {
                if b >= dayStart { today += n }
                if b >= hourStart { lastHour += n }
            }
            let live = row.live
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

    /// Counts rejections against their camera (for health: clock skew) when the camera is known.
    public func noteRejections(_ rejections: [(kvfvId: String, reason: RejectionReason)]) {
        guard !rejections.isEmpty else { return }
        let now = clock()
        table.withLock { t in
            for r in rejections { t.noteRejection(kvfvId: r.kvfvId, reason: r.reason, nowMs: now) }
        }
    }

    public var hotBuckets: Int { table.withLock { $0.hotBucketCount } }
    public var now: Int64 { clock() }
}
