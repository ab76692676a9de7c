/// A validated vehicle pass, as the aggregation and the log see it.
///
/// Only the fields aggregation needs are typed; anything else the camera sent travels in `extra`
/// (a JSON object's text) so the log stays a faithful raw archive.
public struct CameraEvent: Sendable, Hashable {
    public var kvfvId: String
    /// Event time in milliseconds since the Unix epoch (UTC).
    public var timestampMs: Int64
    /// km/h, `0 < v ≤ max_speed`.
    public var speed: Double
    /// The camera's idempotency key; `nil` means identity falls back to a content hash.
    public var eventId: String?
    public var lane: Int?
    public var plate: String?
    /// The camera's sequence number for this pass (`seq`, 0 ≤ seq < 2⁶³), counted up by one per recorded pass.
    /// When present it is the event's identity, `(kvfv_id, seq_epoch, seq)`, instead of `event_id`.
    public var seq: Int64?
    /// Which run of the camera's counter `seq` belongs to (`seq_epoch`, default 0): a camera whose counter
    /// restarted (lost its storage) sends a higher epoch, so its new passes are never taken for old ones.
    public var seqEpoch: Int64?
    /// Unknown fields of the original object as JSON text (`{"k":v,...}`), or `nil`.
    public var extra: String?

    public init(
        kvfvId: String, timestampMs: Int64, speed: Double, eventId: String? = nil,
        lane: Int? = nil, plate: String? = nil, extra: String? = nil, seq: Int64? = nil, seqEpoch: Int64? = nil
    ) {
        self.seq = seq
        self.seqEpoch = seqEpoch
        self.kvfvId = kvfvId
        self.timestampMs = timestampMs
        self.speed = speed
        self.eventId = eventId
        self.lane = lane
        self.plate = plate
        self.extra = extra
    }

    /// The event's identity within its camera: the first copy wins, later copies are duplicates.
    public var identity: UInt64 { EventIdentity.hash(of: self) }
}
