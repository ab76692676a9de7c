/// Why an event was not accepted. The raw value is the stable `reason` code of the HTTP contract.
public enum RejectionReason: String, Error, Sendable, CaseIterable, Codable, Hashable {
    /// A required field (`kvfv_id`, `timestamp`, `vehicle_speed`) is absent or null.
    case missingField = "missing_field"
    /// `kvfv_id` is not 1–64 chars of `[A-Za-z0-9._-]`, or is `.` or `..`.
    case invalidKvfvId = "invalid_kvfv_id"
    /// `timestamp` is not an RFC 3339 date-time with `Z` or an offset.
    case invalidTimestamp = "invalid_timestamp"
    /// `vehicle_speed` is not a JSON number.
    case invalidSpeed = "invalid_speed"
    /// `vehicle_speed` is not in `min_speed ≤ v ≤ max_speed` (subnormals and values whose reciprocal overflows never are).
    case speedOutOfRange = "speed_out_of_range"
    /// `event_id` is not a string of 1–128 Unicode scalars without control characters.
    case invalidEventId = "invalid_event_id"
    /// `lane` is present but not an integer.
    case invalidLane = "invalid_lane"
    /// `plate_number` is present but not a string of at most 64 Unicode scalars without control characters.
    case invalidPlate = "invalid_plate"
    /// The event time is more than `max_clock_skew` ahead of the server clock.
    case inFuture = "in_future"
    /// The event time is older than `acceptance_horizon`: its bucket is closed for good.
    case tooLate = "too_late"
    /// `seq` is present but not an integer from 0 to 2⁶³ − 1, or `seq_epoch` not one from 0 to 32,767 (or it comes
    /// without `seq`).
    case invalidSeq = "invalid_seq"
    /// The batch element is not a JSON object.
    case notAnObject = "not_an_object"
    /// An NDJSON line is not valid JSON (RFC 8259) (the other lines are still processed).
    case malformedJSON = "malformed_json"
    /// An NDJSON line nests arrays/objects deeper than `EventBatch.maxElementDepth` levels (the other lines are
    /// still processed; in an array or single-object body this is the whole-request `400 nesting_too_deep`).
    case nestingTooDeep = "nesting_too_deep"
    /// The writer's camera credential does not cover the event's `kvfv_id` (auth required; the rest of the
    /// batch is unaffected).
    case forbiddenKvfvId = "forbidden_kvfv_id"
    /// MQTT: the event's `kvfv_id` is not the camera of the topic it was published on
    /// (`speedflow/v1/events/{kvfv_id}`); the rest of the payload is unaffected.
    case topicMismatch = "topic_mismatch"
}

/// One rejected element of a batch: its position and why.
public struct Rejection: Sendable, Hashable {
    /// Position of the element in the request (0-based; NDJSON: line number among non-empty lines).
    public var index: Int
    public var reason: RejectionReason
    /// The offending field, when one field is to blame.
    public var field: String?
    /// The element's camera, when it named a valid one (for per-camera health; not part of the response).
    public var kvfvId: String?

    public init(index: Int, reason: RejectionReason, field: String? = nil, kvfvId: String? = nil) {
        self.index = index
        self.reason = reason
        self.field = field
        self.kvfvId = kvfvId
    }
}
