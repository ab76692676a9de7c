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
    /// The same figures per lane (`LaneStates`): every statistic of a window exists per lane too.
    public private(set) var lanes = LaneStates()
    /// A state whose per-lane figures were left out (`decode(_:lanes: false)`, `mergeFigures`): its camera figures
    /// are whole, its lanes unknown. Only query paths that answer the camera's figures make such states; they are
    /// never stored.
    public private(set) var lanesOmitted = false

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Whether a speed can enter the statistics without making one of them non-finite: a positive normal
    /// number whose reciprocal is finite, below 10⁶ km/h. Validation (`ValidationPolicy`) admits only such speeds;
    /// this guard also holds for events from logs written before it did.
    @inline(__always)
    public static func isRepresentable(_ speed: Double) -> Bool {
        speed.isNormal && speed > 0 && (1 / speed).isFinite && speed <= 1e6
    }

    /// Adds one pass (speed in km/h, in `lane`, numbered or not, late or not) to the figures and to its lane's.
    /// A speed that is not `isRepresentable` is not added and `false` is returned: every statistic stays finite
    /// by construction (a subnormal speed would make Σ1/v infinite and the harmonic mean 0 for good). Validation
    /// never passes such a speed; only a log written before it was enforced holds one.
    @discardableResult
    public mutating func add(_ speed: Double, lane: Int? = nil, sequenced isSequenced: Bool = false, lateArrivalMs: Int64? = nil) -> Bool {
        guard Self.isRepresentable(speed) else { return false }
        let key = LaneStates.key(lane)
        if !lanesOmitted && (key != 0 || !lanes.keys.isEmpty) {
            // Out of `self` while it changes (the owner's figures seed the first lane of a split).
            var l = lanes
            lanes = LaneStates()
            if let i = l.index(adding: key, to: self) {
                l.states[i].addFigures(speed, sequenced: isSequenced, lateArrivalMs: lateArrivalMs)
            }
            lanes = l
        }
        addFigures(speed, sequenced: isSequenced, lateArrivalMs: lateArrivalMs)
        return true
    }

    /// The figures of one pass, without lanes.
    @inline(__always)
    private mutating func addFigures(_ speed: Double, sequenced isSequenced: Bool, lateArrivalMs: Int64?) {
        count += 1
        sum += speed
        sumInverse += 1 / speed
        if speed < min { min = speed }
        if speed > max { max = speed }
        let delta = speed - mean
        mean += delta / Double(count)
        m2 += delta * (speed - mean)
        histogram.add(speed: speed)
        if isSequenced { sequenced += 1 }
        if let arrival = lateArrivalMs {
            lateCount += 1
            revisedAtMs = Swift.max(revisedAtMs, arrival)
        }
    }

    private mutating func omitLanes() {
        lanes = LaneStates()
        lanesOmitted = true
    }

    /// These figures without the per-lane ones (what a lane's own state is).
    var withoutLanes: BucketState {
        var s = self
        s.lanes = LaneStates()
        return s
    }

    /// The figures of one lane group (`LaneStates.key`: 1…16, or 0 for the passes without a known lane).
    public func lane(_ key: UInt8) -> BucketState {
        assert(!lanesOmitted, "the lanes of this state were not decoded")
        if let sole = lanes.soleKey { return sole == key && count > 0 ? withoutLanes : BucketState() }
        guard let i = lanes.keys.firstIndex(of: key) else { return BucketState() }
        return lanes.states[i]
    }

    /// The lane groups holding passes, ascending (0: without a known lane).
    public var laneKeys: [UInt8] {
        guard count > 0 else { return [] }
        return lanes.keys.isEmpty ? [0] : lanes.keys
    }

    /// Merges another state into this one (Chan et al. for mean and M2), lanes lane by lane.
    public mutating func merge(_ other: BucketState) {
        merge(other, lanes: !lanesOmitted && !other.lanesOmitted)
    }

    /// Merges another state's figures into this one and leaves the lanes out (`lanesOmitted`): for a query that
    /// answers the camera's figures, where merging every lane would be wasted work.
    public mutating func mergeFigures(_ other: BucketState) {
        merge(other, lanes: false)
    }

    private mutating func merge(_ other: BucketState, lanes withLanes: Bool) {
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            if !withLanes { omitLanes() }
            return
        }
        if withLanes {
            lanes = LaneStates.merged(self, other)
        } else {
            omitLanes()
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
    /// Persisted form: fixed doubles then the sparse histogram (see `SpeedHistogram.encode`). Version 2 added
    /// `sequenced`, `lateCount` and `revisedAtMs`; version 3, written for every state whose whole counts are known,
    /// adds a flags byte (bit 0: whole counts known), the histogram's whole counts and the lanes (`LaneStates`:
    /// the lane keys, then with two or more lanes the byte length of the lanes' states and each lane's state, itself
    /// version 3 without lanes). A state
    /// decoded from version 1 or 2 keeps that encoding until a pass with a lane joins it (its whole counts and
    /// lanes are unknown, not zero).
    public func encode(into out: inout [UInt8]) {
        encode(into: &out, asLane: false)
    }

    private func encode(into out: inout [UInt8], asLane: Bool) {
        let extended = sequenced != 0 || lateCount != 0 || revisedAtMs != 0
        let version: UInt8 = asLane || histogram.wholeKnown || !lanes.keys.isEmpty ? 3 : (extended ? 2 : 1)
        out.append(version)
        out.appendVarint(UInt64(count))
        for d in [sum, sumInverse, min, max, mean, m2] {
            withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
        histogram.encode(into: &out)
        guard version >= 2 else { return }
        out.appendVarint(UInt64(sequenced))
        out.appendVarint(UInt64(lateCount))
        out.appendVarint(zigzag: revisedAtMs)
        guard version >= 3 else { return }
        out.append(histogram.wholeKnown ? 1 : 0)  // flags: bit 0, whole counts known
        histogram.encodeWholeCounts(into: &out)
        assert(!lanesOmitted, "a state without its lanes is never stored")
        out.appendVarint(UInt64(lanes.keys.count))
        out.append(contentsOf: lanes.keys)
        guard !lanes.states.isEmpty else { return }
        // The lanes' states, after their length: a reader that needs only the camera's figures skips them.
        var nested: [UInt8] = []
        nested.reserveCapacity(lanes.states.count * 160)
        for lane in lanes.states { lane.encode(into: &nested, asLane: true) }
        out.appendVarint(UInt64(nested.count))
        out.append(contentsOf: nested)
    }

    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(64 + histogram.binCount * 3)
        encode(into: &out)
        return out
    }

    /// Decodes a stored state; with `lanes: false` the per-lane states are skipped (`lanesOmitted`): for queries
    /// of the camera's figures only, which then read a bucket at the cost of a state without lanes.
    public static func decode(_ bytes: UnsafeRawBufferPointer, lanes: Bool = true) throws(EventRecord.FormatError) -> BucketState {
        var r = ByteReader(bytes)
        let s = try decode(&r, nested: false, lanes: lanes)
        guard r.isAtEnd, s.isWellFormed else { throw EventRecord.FormatError() }
        return s
    }

    private static func decode(_ r: inout ByteReader, nested: Bool, lanes withLanes: Bool = true) throws(EventRecord.FormatError) -> BucketState {
        var s = BucketState()
        let version = try r.peekByte()
        s.count = try readHeader(&r)
        s.sum = try r.double()
        s.sumInverse = try r.double()
        s.min = try r.double()
        s.max = try r.double()
        s.mean = try r.double()
        s.m2 = try r.double()
        s.histogram = try SpeedHistogram.decode(&r)
        if version >= 2 {
            s.sequenced = try r.nonNegative()
            s.lateCount = try r.nonNegative()
            s.revisedAtMs = try r.zigzag()
        }
        guard version >= 3 else {
            // Written before whole speeds and lanes were kept: both unknown (every pass in the unknown lane).
            if s.count > 0 { s.histogram.forgetWholeCounts() }
            guard !nested else { throw EventRecord.FormatError() }
            return s
        }
        switch try r.byte() {
        case 1: try s.histogram.decodeWholeCounts(&r)
        case 0:
            guard try r.varint() == 0 else { throw EventRecord.FormatError() }
            s.histogram.forgetWholeCounts()
        default: throw EventRecord.FormatError()
        }
        let laneCount = try r.varint()
        guard laneCount <= UInt64(LaneStates.maxKey) + 1, !nested || laneCount == 0 else { throw EventRecord.FormatError() }
        for _ in 0..<laneCount { s.lanes.keys.append(try r.byte()) }
        if laneCount >= 2 {
            let length = try r.varint()
            guard length <= UInt64(r.remaining) else { throw EventRecord.FormatError() }
            let end = r.position + Int(length)
            if withLanes {
                for _ in 0..<laneCount { s.lanes.states.append(try decode(&r, nested: true)) }
                guard r.position == end else { throw EventRecord.FormatError() }
            } else {
                try r.skip(Int(length))
                s.omitLanes()
            }
        }
        return s
    }

    /// Every statistic finite and consistent: what `add` and `merge` produce. A decoded state that is not is
    /// damaged (or was written before speeds were bounded) and must not be served as a number.
    public var isWellFormed: Bool {
        guard sum.isFinite, sumInverse.isFinite, mean.isFinite, m2.isFinite, count >= 0 else { return false }
        guard (0...count).contains(sequenced), (0...count).contains(lateCount) else { return false }
        guard histogram.wholeCountsConsistent, lanesOmitted || lanes.isWellFormed(total: count) else { return false }
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
        guard (1...3).contains(try r.byte()) else { throw EventRecord.FormatError() }
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

/// A state's figures per lane group. Lanes 1…16 (the most a camera can register) are kept apart; passes without a
/// lane, with lane 0 or above 16 share key 0, the unknown lane (a query folds lanes beyond a camera's registered
/// count into it too).
///
/// Stored compactly: no keys means every pass is in the unknown lane; one key means every pass is in that lane
/// (its state is the owner's, not stored twice); from two keys on, `states` holds each lane's figures. A camera
/// without lanes, or with one, pays nothing.
public struct LaneStates: Sendable, Hashable {
    public static let maxKey: UInt8 = 16
    /// Lane keys, ascending; never `[0]` alone (that is the empty form).
    public internal(set) var keys: [UInt8] = []
    /// Each lane's state, parallel to `keys`, when there are two or more.
    public internal(set) var states: [BucketState] = []

    public init() {}

    /// The group of an event's `lane`.
    @inline(__always)
    public static func key(_ lane: Int?) -> UInt8 {
        guard let lane, lane >= 1, lane <= Int(maxKey) else { return 0 }
        return UInt8(lane)
    }

    /// The one lane every pass is in, when there is one (0 for no keys).
    var soleKey: UInt8? { keys.isEmpty ? 0 : (keys.count == 1 ? keys[0] : nil) }

    /// Makes room for a pass in lane `key` of `owner` (these lanes' owner, without them; the pass not yet added):
    /// `nil` when the owner's own figures are that lane's, else the index of the lane's state to add it to.
    @inline(__always)
    mutating func index(adding key: UInt8, to owner: BucketState) -> Int? {
        if owner.count == 0 {
            keys = key == 0 ? [] : [key]
            states = []
            return nil
        }
        if let sole = soleKey {
            if sole == key { return nil }
            keys = [sole]
            states = [owner]
        }
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        if lo == keys.count || keys[lo] != key {
            keys.insert(key, at: lo)
            states.insert(BucketState(), at: lo)
        }
        return lo
    }

    /// The lanes of two non-empty states merged.
    static func merged(_ a: BucketState, _ b: BucketState) -> LaneStates {
        if let sole = a.lanes.soleKey, sole == b.lanes.soleKey { return a.lanes }
        func expanded(_ s: BucketState) -> (keys: [UInt8], states: [BucketState]) {
            if let sole = s.lanes.soleKey { return ([sole], [s.withoutLanes]) }
            return (s.lanes.keys, s.lanes.states)
        }
        let l = expanded(a), r = expanded(b)
        var out = LaneStates()
        var i = 0, j = 0
        while i < l.keys.count || j < r.keys.count {
            if j == r.keys.count || (i < l.keys.count && l.keys[i] < r.keys[j]) {
                out.keys.append(l.keys[i]); out.states.append(l.states[i]); i += 1
            } else if i == l.keys.count || r.keys[j] < l.keys[i] {
                out.keys.append(r.keys[j]); out.states.append(r.states[j]); j += 1
            } else {
                out.keys.append(l.keys[i]); out.states.append(l.states[i].merging(r.states[j])); i += 1; j += 1
            }
        }
        return out
    }

    func isWellFormed(total: Int64) -> Bool {
        guard zip(keys, keys.dropFirst()).allSatisfy({ $0 < $1 }), keys.allSatisfy({ $0 <= Self.maxKey }) else { return false }
        if total == 0 { return keys.isEmpty && states.isEmpty }
        if keys.count < 2 { return states.isEmpty && keys != [0] }
        guard states.count == keys.count else { return false }
        var sum: Int64 = 0
        for s in states {
            guard s.count > 0, s.lanes.keys.isEmpty, s.isWellFormed else { return false }
            sum += s.count
        }
        return sum == total
    }
}
