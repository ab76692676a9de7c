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
    /// Unknown fields of the original object as JSON text (`{"k":v,...}`), or `nil`.
    public var extra: String?

    public init(
        kvfvId: String, timestampMs: Int64, speed: Double, eventId: String? = nil,
        lane: Int? = nil, plate: String? = nil, extra: String? = nil
    ) {
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
