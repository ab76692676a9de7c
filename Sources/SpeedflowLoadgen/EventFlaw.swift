/// A deliberate defect that must make the server reject an event, one per rejection reason of the contract.
enum EventFlaw: UInt8, CaseIterable, Sendable {
    case missingField
    case invalidSpeed
    case invalidKvfvId
    case invalidTimestamp
    case invalidEventId
    case speedOutOfRange
    case inFuture
    case tooLate
    case notAnObject
    /// A negative `seq`, a string `seq`, or a `seq_epoch` out of range (only sent by numbering fleets).
    case invalidSeq

    /// The reason code the server must answer with (DESIGN.md, "Contract").
    var reason: String {
        switch self {
        case .missingField: "missing_field"
        case .invalidSpeed: "invalid_speed"
        case .invalidKvfvId: "invalid_kvfv_id"
        case .invalidTimestamp: "invalid_timestamp"
        case .invalidEventId: "invalid_event_id"
        case .speedOutOfRange: "speed_out_of_range"
        case .inFuture: "in_future"
        case .tooLate: "too_late"
        case .notAnObject: "not_an_object"
        case .invalidSeq: "invalid_seq"
        }
    }
}
