/// The rules an event must pass to be accepted.
public struct ValidationPolicy: Sendable, Hashable {
    /// Lowest accepted speed in km/h. Default: 1.
    ///
    /// A pass below walking pace is a stopped or crawling vehicle, not a speed measurement: traffic radars and
    /// laser gates do not resolve speeds near zero (their specified ranges start at a few km/h), and a reading of
    /// 0.001 km/h would weigh 10^5 times a 100 km/h pass in the harmonic (space-mean) speed Σ1/v. 1 km/h keeps
    /// every real queue crawl while making 1/v ≤ 1 for every accepted event, so Σ1/v, and with it
    /// `harmonic_mean_speed`, is finite for any number of events (a subnormal such as 1e-320 made it overflow).
    public var minSpeed: Double
    /// Highest plausible speed in km/h. Default: 300.
    public var maxSpeed: Double
    /// How far ahead of the server clock an event time may be. Default: 5 minutes.
    public var maxClockSkewMs: Int64
    /// How old an event may be; older buckets are closed for good and dedup state may be dropped.
    /// Default: 7 days.
    public var acceptanceHorizonMs: Int64

    /// Bounds on the configurable speed limits that keep every bucket statistic finite by construction:
    /// with `minSpeed ≥ 10⁻³` and `maxSpeed ≤ 10⁶` km/h, Σv, Σ1/v and M2 stay below 10³⁰ even for 2⁶³ events.
    public static let speedLimitRange: ClosedRange<Double> = 1e-3...1e6

    public init(
        minSpeed: Double = 1, maxSpeed: Double = 300, maxClockSkewMs: Int64 = 300_000,
        acceptanceHorizonMs: Int64 = 7 * 86_400_000
    ) {
        self.minSpeed = minSpeed
        self.maxSpeed = maxSpeed
        self.maxClockSkewMs = maxClockSkewMs
        self.acceptanceHorizonMs = acceptanceHorizonMs
    }

    /// Why a configured speed range is unusable, or `nil`: both limits within `speedLimitRange`, min ≤ max.
    public static func checkSpeedLimits(min: Double, max: Double) -> String? {
        guard speedLimitRange.contains(min) else {
            return "min_speed must be between \(speedLimitRange.lowerBound) and \(speedLimitRange.upperBound) km/h, not \(min)"
        }
        guard speedLimitRange.contains(max) else {
            return "max_speed must be between \(speedLimitRange.lowerBound) and \(speedLimitRange.upperBound) km/h, not \(max)"
        }
        guard min <= max else { return "min_speed (\(min)) must not exceed max_speed (\(max))" }
        return nil
    }

    /// The highest `seq_epoch`: a counter may restart this many times (stores pack the epoch beside the chunk).
    public static let maxSeqEpoch: Int64 = 32_767

    /// Whether `v` may enter the statistics: finite, normal, `minSpeed ≤ v ≤ maxSpeed`, with a finite reciprocal.
    /// The explicit normal/reciprocal checks hold even for a policy built in code with out-of-range limits.
    @inline(__always)
    public func isAcceptedSpeed(_ v: Double) -> Bool {
        v.isNormal && v > 0 && (1 / v).isFinite && v >= minSpeed && v <= maxSpeed
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
            guard isAcceptedSpeed(v) else {
                return .failure(.init(.speedOutOfRange, "vehicle_speed"))
            }
            speed = v
        }

        var eventId: String?
        switch raw.eventId {
        case .absent, .null: eventId = nil
        case .wrongType: return .failure(.init(.invalidEventId, "event_id"))
        case .value(let v):
            guard !v.isEmpty, Self.isPrintable(v, maxScalars: 128) else { return .failure(.init(.invalidEventId, "event_id")) }
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
            guard Self.isPrintable(v, maxScalars: 64) else { return .failure(.init(.invalidPlate, "plate_number")) }
            plate = v
        }

        var seq: Int64?
        switch raw.seq {
        case .absent, .null: seq = nil
        case .wrongType: return .failure(.init(.invalidSeq, "seq"))
        case .value(let v):
            guard v >= 0 else { return .failure(.init(.invalidSeq, "seq")) }
            seq = Int64(v)
        }

        var seqEpoch: Int64?
        switch raw.seqEpoch {
        case .absent, .null: seqEpoch = nil
        case .wrongType: return .failure(.init(.invalidSeq, "seq_epoch"))
        case .value(let v):
            guard v >= 0, v <= Self.maxSeqEpoch else { return .failure(.init(.invalidSeq, "seq_epoch")) }
            // An epoch without a seq names nothing: refused rather than silently ignored.
            guard seq != nil else { return .failure(.init(.invalidSeq, "seq_epoch")) }
            seqEpoch = v == 0 ? nil : Int64(v)
        }

        if timestampMs > nowMs + maxClockSkewMs { return .failure(.init(.inFuture, "timestamp")) }
        if timestampMs < nowMs - acceptanceHorizonMs { return .failure(.init(.tooLate, "timestamp")) }

        return .success(
            CameraEvent(
                kvfvId: kvfvId, timestampMs: timestampMs, speed: speed, eventId: eventId,
                lane: lane, plate: plate, extra: raw.extra, seq: seq, seqEpoch: seqEpoch))
    }

    /// At most `maxScalars` Unicode scalars, none a control character (U+0000–U+001F, U+007F).
    ///
    /// Lengths are counted in Unicode scalars, not bytes (a 33-letter Cyrillic plate is 66 bytes) and not grapheme
    /// clusters, whose boundaries change with Unicode versions: a stored decision must not flip on an upgrade.
    public static func isPrintable(_ s: String, maxScalars: Int) -> Bool {
        var n = 0
        for scalar in s.unicodeScalars {
            n += 1
            if n > maxScalars || scalar.value < 0x20 || scalar.value == 0x7F { return false }
        }
        return true
    }

    /// 1–64 chars of `[A-Za-z0-9._-]`, and not `.` or `..` (path segments that cannot be queried as a camera).
    public static func isValidKvfvId(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count), s != ".", s != ".." else { return false }
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
