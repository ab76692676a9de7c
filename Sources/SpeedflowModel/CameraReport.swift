/// What a camera says it has recorded, whether or not it could deliver it yet (`POST /kvfv/{id}/status`):
/// its newest sequence number and when that pass happened. Against what arrived, it tells how many events are
/// still on the camera (its backlog) and since when.
public struct CameraReport: Sendable, Hashable {
    public var kvfvId: String
    /// The counter run `seq` belongs to (`seq_epoch`, 0 unless the camera's counter restarted).
    public var epoch: Int64
    /// The newest sequence number the camera has recorded.
    public var seq: Int64
    /// Event time of that pass, ms since the epoch.
    public var timeMs: Int64

    public init(kvfvId: String, epoch: Int64 = 0, seq: Int64, timeMs: Int64) {
        self.kvfvId = kvfvId
        self.epoch = epoch
        self.seq = seq
        self.timeMs = timeMs
    }
}
