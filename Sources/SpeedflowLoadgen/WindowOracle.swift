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

    mutating func add(speedTenths: Int32) {
        count += 1
        sumTenths += Int64(speedTenths)
        sumInverse += 1 / (Double(speedTenths) / 10)
        minTenths = Swift.min(minTenths, speedTenths)
        maxTenths = Swift.max(maxTenths, speedTenths)
    }

    var averageSpeed: Double { Double(sumTenths) / 10 / Double(count) }
    var harmonicMeanSpeed: Double { Double(count) / sumInverse }
    var minSpeed: Double { Double(minTenths) / 10 }
    var maxSpeed: Double { Double(maxTenths) / 10 }
}

/// Expected windows of one camera: bucket index (epoch ms / 300,000) → aggregate.
/// Memory is bounded by the buckets inside the 7-day horizon, not by the number of events.
struct WindowOracle: Sendable {
    private(set) var windows: [Int64: ExpectedWindow] = [:]
    private(set) var events = 0

    /// Adds one event at its first acknowledgement (never for a resend of an acked identity).
    mutating func add(_ event: SimulatedEvent) {
        windows[UTCTime.bucket(ofMillis: event.millis), default: ExpectedWindow()].add(speedTenths: event.speedTenths)
        events += 1
    }

    func count(inBucket bucket: Int64) -> Int { windows[bucket]?.count ?? 0 }
}
