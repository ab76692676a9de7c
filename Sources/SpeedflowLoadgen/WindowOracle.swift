/// The expected content of one 5-minute window, computed the naive way, independently of the server's
/// aggregation code: an independent oracle is the stronger check.
struct ExpectedWindow: Sendable, Equatable {
    var count: Int = 0
    /// Σv in tenths of km/h: exact, whatever the order of arrival.
    var sumTenths: Int64 = 0
    /// Σ1/v for the harmonic (space-mean) speed.
    var sumInverse: Double = 0
    var minTenths: Int32 = .max
    var maxTenths: Int32 = .min
    /// Events that surely arrived late (more than the grace period after the end of their bucket).
    var lateSure = 0
    /// Events whose lateness the load generator cannot decide: the grace deadline fell inside the span in which
    /// their request reached the server (first send … acknowledgement, widened by the clock tolerance).
    var lateAmbiguous = 0
    /// Bounds of `revised_at` (the latest arrival of a late event): at least the latest sure-late event's earliest
    /// arrival, at most the latest possible arrival of any late or maybe-late event. 0: none.
    var revisedFromMs: Int64 = 0
    var revisedToMs: Int64 = 0

    mutating func add(speedTenths: Int32) {
        count += 1
        sumTenths += Int64(speedTenths)
        sumInverse += 1 / (Double(speedTenths) / 10)
        minTenths = Swift.min(minTenths, speedTenths)
        maxTenths = Swift.max(maxTenths, speedTenths)
    }

    /// Classifies the event's lateness from the span its request could have reached the server in.
    mutating func noteArrival(_ lateness: Lateness, arrivalFromMs: Int64, arrivalToMs: Int64) {
        switch lateness {
        case .onTime: break
        case .late:
            lateSure += 1
            revisedFromMs = Swift.max(revisedFromMs, arrivalFromMs)
            revisedToMs = Swift.max(revisedToMs, arrivalToMs)
        case .ambiguous:
            lateAmbiguous += 1
            revisedToMs = Swift.max(revisedToMs, arrivalToMs)
        }
    }

    var averageSpeed: Double { Double(sumTenths) / 10 / Double(count) }
    var harmonicMeanSpeed: Double { Double(count) / sumInverse }
    var minSpeed: Double { Double(minTenths) / 10 }
    var maxSpeed: Double { Double(maxTenths) / 10 }
}

/// Whether an event arrived late: more than `graceMs` after the end of its own 5-minute bucket, by the server's
/// clock when the request arrived. The load generator knows that arrival only within the span from the request's
/// first send to its first acknowledgement, and the server's clock only within `toleranceMs` of its own.
enum Lateness: Sendable, Equatable {
    case onTime, late, ambiguous

    /// `arrivalFromMs`/`arrivalToMs` are already widened by the clock tolerance.
    static func of(eventMs: Int64, arrivalFromMs: Int64, arrivalToMs: Int64, graceMs: Int64) -> Lateness {
        let deadline = (UTCTime.bucket(ofMillis: eventMs) + 1) * UTCTime.millisPerBucket + graceMs
        if arrivalFromMs > deadline { return .late }
        if arrivalToMs <= deadline { return .onTime }
        return .ambiguous
    }
}

/// Expected windows of one camera: bucket index (epoch ms / 300,000) → aggregate.
/// Memory is bounded by the buckets inside the 7-day horizon, not by the number of events.
struct WindowOracle: Sendable {
    private(set) var windows: [Int64: ExpectedWindow] = [:]
    private(set) var events = 0
    /// The server's grace period for late events. Default: 5 min (the server's).
    var graceMs: Int64 = 300_000
    /// How far the server's clock may be off this one's. Default: 1 s.
    var toleranceMs: Int64 = 1000

    /// Adds one event at its first acknowledgement (never for a resend of an acked identity); its request was
    /// first sent at `sentMs` and first acknowledged at `ackedMs` (wall clock).
    mutating func add(_ event: SimulatedEvent, sentMs: Int64, ackedMs: Int64) {
        let from = sentMs - toleranceMs, to = ackedMs + toleranceMs
        let lateness = Lateness.of(eventMs: event.millis, arrivalFromMs: from, arrivalToMs: to, graceMs: graceMs)
        let bucket = UTCTime.bucket(ofMillis: event.millis)
        windows[bucket, default: ExpectedWindow()].add(speedTenths: event.speedTenths)
        windows[bucket]!.noteArrival(lateness, arrivalFromMs: from, arrivalToMs: to)
        events += 1
    }

    func count(inBucket bucket: Int64) -> Int { windows[bucket]?.count ?? 0 }
}
