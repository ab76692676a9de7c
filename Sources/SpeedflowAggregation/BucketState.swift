import SpeedflowModel

/// The mergeable summary of the speeds in one camera's 5-minute bucket (or any union of buckets).
///
/// Every field merges exactly or stably: counts and sums add, min/max compare, mean+M2 merge by Chan's
/// formula (numerically stable stddev; Σv² would cancel catastrophically), and the 1 km/h histogram adds
/// bin-wise, which gives exact V15/V50/V85 at the instrument's resolution.
public struct BucketState: Sendable, Hashable {
    public private(set) var count: Int64 = 0
    /// Σv, for the arithmetic (time-mean) speed.
    public private(set) var sum: Double = 0
    /// Σ1/v, for the harmonic (space-mean) speed `count / sumInverse`.
    public private(set) var sumInverse: Double = 0
    public private(set) var min: Double = .infinity
    public private(set) var max: Double = -.infinity
    /// Running mean and sum of squared deviations (Welford / Chan).
    public private(set) var mean: Double = 0
    public private(set) var m2: Double = 0
    public private(set) var histogram = SpeedHistogram()
    /// Events counted by their sequence number (`seq`) rather than an identity hash: the bucket's stored
    /// identities number `count − sequenced`.
    public private(set) var sequenced: Int64 = 0
    /// Events that arrived more than the grace period after their bucket ended (`EngineConfiguration.lateGraceMs`).
    public private(set) var lateCount: Int64 = 0
    /// When the latest late event arrived, ms (0: none): when a late arrival last changed these figures.
    public private(set) var revisedAtMs: Int64 = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Whether a speed can enter the statistics without making one of them non-finite: a positive normal
    /// number whose reciprocal is finite, below 10⁶ km/h. Validation (`ValidationPolicy`) admits only such speeds;
    /// this guard also holds for events from logs written before it did.
    @inline(__always)
    public static func isRepresentable(_ speed: Double) -> Bool {
        speed.isNormal && speed > 0 && (1 / speed).isFinite && speed <= 1e6
    }

    /// Adds one speed (km/h). A speed that is not `isRepresentable` is not added and `false` is returned: every
    /// statistic stays finite by construction (a subnormal speed would make Σ1/v infinite and the harmonic mean
    /// 0 for good). Validation never passes such a speed; only a log written before it was enforced holds one.
    @discardableResult
    public mutating func add(_ speed: Double) -> Bool {
        guard Self.isRepresentable(speed) else { return false }
        count += 1
        sum += speed
        sumInverse += 1 / speed
        if speed < min { min = speed }
        if speed > max { max = speed }
        let delta = speed - mean
        mean += delta / Double(count)
        m2 += delta * (speed - mean)
        histogram.add(bin: SpeedHistogram.bin(for: speed))
        return true
    }

    /// Records how the event just `add`ed arrived: by sequence number, and late (arrived at `lateArrivalMs`).
    public mutating func note(sequenced isSequenced: Bool, lateArrivalMs: Int64?) {
        if isSequenced { sequenced += 1 }
        if let arrival = lateArrivalMs {
            lateCount += 1
            revisedAtMs = Swift.max(revisedAtMs, arrival)
        }
    }

    /// Merges another state into this one (Chan et al. for mean and M2).
    public mutating func merge(_ other: BucketState) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        sequenced += other.sequenced
        lateCount += other.lateCount
        revisedAtMs = Swift.max(revisedAtMs, other.revisedAtMs)
        let n1 = Double(count), n2 = Double(other.count), n = n1 + n2
        let delta = other.mean - mean
        mean += delta * n2 / n
        m2 += other.m2 + delta * delta * n1 * n2 / n
        count += other.count
        sum += other.sum
        sumInverse += other.sumInverse
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        histogram.merge(other.histogram)
    }

    public func merging(_ other: BucketState) -> BucketState {
        var s = self
        s.merge(other)
        return s
    }

    /// Arithmetic mean speed Σv/n.
    public var averageSpeed: Double? { count > 0 ? sum / Double(count) : nil }
    /// Harmonic mean speed n/Σ(1/v), the space-mean speed.
    public var harmonicMeanSpeed: Double? { count > 0 ? Double(count) / sumInverse : nil }
    public var minSpeed: Double? { count > 0 ? min : nil }
    public var maxSpeed: Double? { count > 0 ? max : nil }
    /// Sample standard deviation (n − 1); `nil` below two events.
    public var standardDeviation: Double? { count > 1 ? (Swift.max(m2, 0) / Double(count - 1)).squareRoot() : nil }

    /// Nearest-rank percentile of the 1 km/h bins: the bin (floor of the speed, km/h) holding the
    /// ⌈p·n⌉-th smallest speed. `percent` in 1...100.
    public func percentile(_ percent: Int) -> Int? {
        histogram.percentile(percent, count: count)
    }
}

extension BucketState {
    /// Persisted form: fixed doubles then the sparse histogram (see `SpeedHistogram.encode`); version 2 adds
    /// `sequenced`, `lateCount` and `revisedAtMs` and is written only when one of them is set, so a state without
    /// them keeps the bytes (and the day digests) it always had.
    public func encode(into out: inout [UInt8]) {
        let extended = sequenced != 0 || lateCount != 0 || revisedAtMs != 0
        out.append(extended ? 2 : 1)  // format version
        out.appendVarint(UInt64(count))
        for d in [sum, sumInverse, min, max, mean, m2] {
            withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
        histogram.encode(into: &out)
        guard extended else { return }
        out.appendVarint(UInt64(sequenced))
        out.appendVarint(UInt64(lateCount))
        out.appendVarint(zigzag: revisedAtMs)
    }

    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(64 + histogram.binCount * 3)
        encode(into: &out)
        return out
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(EventRecord.FormatError) -> BucketState {
        var r = ByteReader(bytes)
        var s = BucketState()
        let version = bytes.first
        s.count = try readHeader(&r)
        s.sum = try r.double()
        s.sumInverse = try r.double()
        s.min = try r.double()
        s.max = try r.double()
        s.mean = try r.double()
        s.m2 = try r.double()
        s.histogram = try SpeedHistogram.decode(&r)
        if version == 2 {
            s.sequenced = try r.nonNegative()
            s.lateCount = try r.nonNegative()
            s.revisedAtMs = try r.zigzag()
        }
        guard s.isWellFormed else { throw EventRecord.FormatError() }
        return s
    }

    /// Every statistic finite and consistent: what `add` and `merge` produce. A decoded state that is not is
    /// damaged (or was written before speeds were bounded) and must not be served as a number.
    public var isWellFormed: Bool {
        guard sum.isFinite, sumInverse.isFinite, mean.isFinite, m2.isFinite, count >= 0 else { return false }
        guard (0...count).contains(sequenced), (0...count).contains(lateCount) else { return false }
        if count == 0 { return sum == 0 && sumInverse == 0 }
        return min.isFinite && max.isFinite && min > 0 && min <= max && sum > 0 && sumInverse > 0
    }

    /// Just the event count of an encoded state (it leads the encoding), without decoding the histogram.
    public static func decodeCount(_ bytes: UnsafeRawBufferPointer) throws(EventRecord.FormatError) -> Int64 {
        var r = ByteReader(bytes)
        return try readHeader(&r)
    }

    /// Format version and count: the leading fields of every encoded state.
    private static func readHeader(_ r: inout ByteReader) throws(EventRecord.FormatError) -> Int64 {
        guard (1...2).contains(try r.byte()) else { throw EventRecord.FormatError() }
        let count = try r.varint()
        guard count <= UInt64(Int64.max) else { throw EventRecord.FormatError() }
        return Int64(count)
    }

    public static func decode(_ bytes: [UInt8]) throws(EventRecord.FormatError) -> BucketState {
        do {
            return try bytes.withUnsafeBytes { try decode($0) }
        } catch let e as EventRecord.FormatError {
            throw e
        } catch {
            throw EventRecord.FormatError()
        }
    }
}
