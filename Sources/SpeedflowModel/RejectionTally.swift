/// How many elements of one request that named `kvfvId` were rejected for `reason`.
///
/// Rejections are not events (nothing of them is counted in a bucket), but per-camera health needs them durably,
/// on every node: so a request's tallies travel in its log record (`EventRecord.rejections`, record version 5)
/// and are counted per camera and 5-minute bucket of the record's *arrival* time when the record is applied —
/// once per submission: a resent request is a new submission and its rejections count again.
public struct RejectionTally: Sendable, Hashable {
    public var kvfvId: String
    public var reason: RejectionReason
    public var count: Int64

    public init(kvfvId: String, reason: RejectionReason, count: Int64) {
        self.kvfvId = kvfvId
        self.reason = reason
        self.count = count
    }
}

extension EventBatch {
    /// The batch's rejections of elements that named a valid camera, as tallies in a stable order (camera, then
    /// reason code), so the same request always encodes to the same record. Bounded like `rejectedByCamera`
    /// (at most `maxTrackedCameras` cameras per body; rejections beyond are counted by reason only).
    public var rejectionTallies: [RejectionTally] {
        var tallies: [RejectionTally] = []
        for (camera, reasons) in rejectedByCamera.sorted(by: { $0.key < $1.key }) {
            for (reason, count) in reasons.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where count > 0 {
                tallies.append(RejectionTally(kvfvId: camera, reason: reason, count: Int64(count)))
            }
        }
        return tallies
    }
}
