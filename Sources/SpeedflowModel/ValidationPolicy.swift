/// The rules an event must pass to be accepted.
public struct ValidationPolicy: Sendable, Hashable {
    /// Highest plausible speed in km/h. Default: 300.
    public var maxSpeed: Double
    /// How far ahead of the server clock an event time may be. Default: 5 minutes.
    public var maxClockSkewMs: Int64
    /// How old an event may be; older buckets are closed for good and dedup state may be dropped.
    /// Default: 7 days.
    public var acceptanceHorizonMs: Int64

    public init(maxSpeed: Double = 300, maxClockSkewMs: Int64 = 300_000, acceptanceHorizonMs: Int64 = 7 * 86_400_000) {
        self.maxSpeed = maxSpeed
        self.maxClockSkewMs = maxClockSkewMs
        self.acceptanceHorizonMs = acceptanceHorizonMs
    }

    /// Checks a decoded element; on success returns the typed event.
    public func validate(_ raw: RawEvent, nowMs: Int64) -> Result<CameraEvent, EventRejection> {
        guard raw.isObject else { return .failure(.init(.notAnObject)) }

        let kvfvId: String
        switch raw.kvfvId {
        case .absent, .null: return .failure(.init(.missingField, "kvfv_id"))
        case .wrongType: return .failure(.init(.invalidKvfvId, "kvfv_id"))
        case .value(let v):
            guard Self.isValidKvfvId(v) else { return .failure(.init(.invalidKvfvId, "kvfv_id")) }
            kvfvId = v
        }

        let timestampMs: Int64
        switch raw.timestamp {
        case .absent, .null: return .failure(.init(.missingField, "timestamp"))
        case .wrongType: return .failure(.init(.invalidTimestamp, "timestamp"))
        case .value(let v):
            guard let ms = Timestamp.parse(v) else { return .failure(.init(.invalidTimestamp, "timestamp")) }
            timestampMs = ms
        }

        let speed: Double
        switch raw.speed {
        case .absent, .null: return .failure(.init(.missingField, "vehicle_speed"))
        case .wrongType: return .failure(.init(.invalidSpeed, "vehicle_speed"))
        case .value(let v):
            guard v.isFinite, v > 0, v <= maxSpeed else {
                return .failure(.init(.speedOutOfRange, "vehicle_speed"))
            }
            speed = v
        }

        var eventId: String?
        switch raw.eventId {
        case .absent, .null: eventId = nil
        case .wrongType: return .failure(.init(.invalidEventId, "event_id"))
        case .value(let v):
            guard !v.isEmpty, v.utf8.count <= 128 else { return .failure(.init(.invalidEventId, "event_id")) }
            eventId = v
        }

        var lane: Int?
        switch raw.lane {
        case .absent, .null: lane = nil
        case .wrongType: return .failure(.init(.invalidLane, "lane"))
        case .value(let v):
            guard (0...255).contains(v) else { return .failure(.init(.invalidLane, "lane")) }
            lane = v
        }

        var plate: String?
        switch raw.plate {
        case .absent, .null: plate = nil
        case .wrongType: return .failure(.init(.invalidPlate, "plate_number"))
        case .value(let v):
            guard v.utf8.count <= 64 else { return .failure(.init(.invalidPlate, "plate_number")) }
            plate = v
        }

        if timestampMs > nowMs + maxClockSkewMs { return .failure(.init(.inFuture, "timestamp")) }
        if timestampMs < nowMs - acceptanceHorizonMs { return .failure(.init(.tooLate, "timestamp")) }

        return .success(
            CameraEvent(
                kvfvId: kvfvId, timestampMs: timestampMs, speed: speed, eventId: eventId,
                lane: lane, plate: plate, extra: raw.extra))
    }

    /// 1–64 chars of `[A-Za-z0-9._-]`.
    public static func isValidKvfvId(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count) else { return false }
        for c in u {
            switch c {
            case 48...57, 65...90, 97...122, 46, 95, 45: continue
            default: return false
            }
        }
        return true
    }
}

/// A reason code plus the field to blame.
public struct EventRejection: Error, Sendable, Hashable {
    public var reason: RejectionReason
    public var field: String?

    public init(_ reason: RejectionReason, _ field: String? = nil) {
        self.reason = reason
        self.field = field
    }
}
