import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

// Rejections per camera (issue #13): how many elements naming a camera were rejected, for each reason, per
// 5-minute bucket of *arrival* time. They travel in the log with the request's events (`RejectionTally`), are
// counted when a record is applied (`BucketTable`), and are added to the store's counts by each flush, in the
// same atomic commit as the log offset: durable, exact across replays and in both stores. They count
// submissions: a request resent after it was made durable but before its answer arrived counts again.

extension CameraView {
    /// A view that counts nothing (an API node's `StoreFollower`): no memory, every count is in the store.
    public func unflushedRejections<Stored: Sendable>(
        camera: Int64?, buckets range: Range<Int64>, withStored read: () async throws -> Stored
    ) async throws -> (unflushed: [Int64: [Int64: [RejectionReason: Int64]]], stored: Stored) {
        ([:], try await read())
    }
}

extension Aggregator {
    /// Memory and store read with no commit running or starting in between (retried until so): a commit lands
    /// in the store before its counts leave memory, so a read across it would count them twice (or, read in the
    /// other order, not at all). After about two seconds of back-to-back commits it answers anyway.
    public func unflushedRejections<Stored: Sendable>(
        camera: Int64?, buckets range: Range<Int64>, withStored read: () async throws -> Stored
    ) async throws -> (unflushed: [Int64: [Int64: [RejectionReason: Int64]]], stored: Stored) {
        for _ in 0..<400 {
            let before = commitCount.withLock { $0 }
            guard before.started == before.ended else {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            let memory = table.withLock { $0.unflushedRejections(camera: camera, buckets: range) }
            let stored = try await read()
            if commitCount.withLock({ $0.started }) == before.started { return (memory, stored) }
        }
        let memory = table.withLock { $0.unflushedRejections(camera: camera, buckets: range) }
        return (memory, try await read())
    }
}

extension CameraQueries {
    /// A camera's rejections per 5-minute bucket of arrival time in `buckets` (bucket numbers as
    /// `Bucket.index(ofTimestamp:)`), by reason: memory (counted, not flushed yet) merged with the store. Buckets
    /// without rejections are absent; `nil` for a camera never seen.
    public func rejections(kvfvId: String, buckets: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]]? {
        guard let camera = view.hotStates(kvfvId: kvfvId, buckets: 0..<0)?.camera else { return nil }
        return try await rejections(camera: camera, buckets: buckets)
    }

    /// The same by the camera's store id.
    func rejections(camera: Int64, buckets: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        guard !buckets.isEmpty else { return [:] }
        let store = self.store
        let (memory, stored) = try await view.unflushedRejections(camera: camera, buckets: buckets) {
            try await store.rejections(camera: camera, buckets: buckets)
        }
        var result = stored
        for (bucket, counts) in memory[camera] ?? [:] {
            result[bucket, default: [:]].merge(counts, uniquingKeysWith: +)
        }
        return result
    }

    /// Every camera's rejections summed over the arrival buckets in `buckets`, by reason, keyed by `kvfv_id`:
    /// memory merged with the store. Cameras without rejections in the range are absent.
    public func rejectionsByCamera(buckets: Range<Int64>) async throws -> [String: [RejectionReason: Int64]] {
        guard !buckets.isEmpty else { return [:] }
        let store = self.store
        let (memory, stored) = try await view.unflushedRejections(camera: nil, buckets: buckets) {
            try await store.rejectionsByCamera(buckets: buckets)
        }
        var byId = stored
        for (camera, perBucket) in memory {
            for counts in perBucket.values { byId[camera, default: [:]].merge(counts, uniquingKeysWith: +) }
        }
        guard !byId.isEmpty else { return [:] }
        // No bucket qualifies (`countsFrom: .max`): just the cameras, to name them.
        var names: [Int64: String] = [:]
        for row in view.cameraRows(countsFrom: .max, current: .max) { names[row.camera.record.id] = row.camera.record.kvfvId }
        var result: [String: [RejectionReason: Int64]] = [:]
        for (camera, counts) in byId {
            guard let name = names[camera] else { continue }
            result[name, default: [:]].merge(counts, uniquingKeysWith: +)
        }
        return result
    }
}
