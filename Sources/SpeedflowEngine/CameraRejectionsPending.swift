import SpeedflowAggregation
import SpeedflowModel

// TEMPORARY: stands in for the durable per-camera rejection counts until that branch is merged (then removed).
extension CameraQueries {
    public func rejections(kvfvId: String, buckets: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]]? { [:] }
    public func rejectionsByCamera(buckets: Range<Int64>) async throws -> [String: [RejectionReason: Int64]] { [:] }
}
