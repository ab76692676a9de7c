import SpeedflowModel

/// Sparse histogram of speeds in 1 km/h bins (bin `k` holds `k ≤ v < k+1`).
///
/// Kept as two parallel sorted arrays: a 5-minute bucket touches a few dozen bins, so a sorted array beats a
/// dictionary on both memory and merge speed.
///
/// Beside each bin it counts the speeds that are exactly the bin's whole number (`v == k`). The bins alone cannot
/// tell 60.0 from 60.4 at a limit of 60; with the whole counts `v > L` is exact for every whole `L`
/// (`count(above:)`), so a window's over-the-limit figures need no limit baked into the stored state.
public struct SpeedHistogram: Sendable, Hashable {
    public private(set) var bins: [UInt16] = []
    public private(set) var counts: [UInt32] = []
    /// Bins holding whole speeds, ascending, and how many of the bin's speeds are exactly its number. Sparse:
    /// cameras measuring to 0.1 km/h or finer report few whole speeds.
    public private(set) var wholeBins: [UInt16] = []
    public private(set) var wholeCounts: [UInt32] = []
    /// `false` for a histogram written before whole speeds were counted (state format 1 and 2): its
    /// `count(above:)` is unknown where a limit falls on an occupied bin.
    public private(set) var wholeKnown = true

    public init() {}

    /// Adds one speed: its bin, and its whole count when the speed is a whole number.
    @inline(__always)
    public mutating func add(speed: Double) {
        let bin = Self.bin(for: speed)
        add(bin: bin)
        if Double(bin) == speed, wholeKnown { Self.increment(&wholeBins, &wholeCounts, bin, by: 1) }
    }

    /// Marks the whole counts unknown (a histogram decoded from a format that did not keep them).
    mutating func forgetWholeCounts() {
        wholeBins = []
        wholeCounts = []
        wholeKnown = false
    }

    /// How many speeds are above `limit` km/h (`v > limit`), exactly; `nil` when the histogram predates whole
    /// counts and has speeds in bin `limit` (which could be exactly `limit` or above it).
    public func count(above limit: Int) -> Int64? {
        var n: Int64 = 0
        var i = bins.count
        while i > 0, Int(bins[i - 1]) > limit {
            i -= 1
            n += Int64(counts[i])
        }
        if i > 0, Int(bins[i - 1]) == limit {
            guard wholeKnown else { return nil }
            n += Int64(counts[i - 1]) - Int64(whole(in: bins[i - 1]))
        }
        return n
    }

    /// How many speeds of bin `bin` are exactly its whole number.
    public func whole(in bin: UInt16) -> UInt32 {
        var lo = 0, hi = wholeBins.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if wholeBins[mid] < bin { lo = mid + 1 } else { hi = mid }
        }
        return lo < wholeBins.count && wholeBins[lo] == bin ? wholeCounts[lo] : 0
    }

    /// The pace: the `width`-km/h band `[from, from + width)` holding the most speeds, and how many it holds;
    /// `nil` when empty. The band starts at the slowest whole km/h it holds; on a tie the slowest such band wins.
    /// Exact at the bins' 1 km/h resolution.
    public func pace(width: Int = 10) -> (from: Int, count: Int64)? {
        guard !bins.isEmpty else { return nil }
        // The best band can always start at an occupied bin (sliding it up to the first occupied bin loses nothing).
        var best = (from: Int(bins[0]), count: Int64(-1))
        var end = 0
        var inBand: Int64 = 0
        for start in bins.indices {
            if start > 0 { inBand -= Int64(counts[start - 1]) }
            if end < start { end = start; inBand = 0 }
            while end < bins.count, Int(bins[end]) < Int(bins[start]) + width {
                inBand += Int64(counts[end])
                end += 1
            }
            if inBand > best.count { best = (Int(bins[start]), inBand) }
        }
        return best
    }

    public var binCount: Int { bins.count }

    @inline(__always)
    public static func bin(for speed: Double) -> UInt16 {
        UInt16(clamping: Int(speed.rounded(.down)))
    }

    /// Adds to a bin's count only (no whole count): for histograms built from bins, as tests and benchmarks do.
    public mutating func add(bin: UInt16, count: UInt32 = 1) {
        Self.increment(&bins, &counts, bin, by: count)
    }

    @inline(__always)
    private static func increment(_ keys: inout [UInt16], _ values: inout [UInt32], _ key: UInt16, by n: UInt32) {
        // Traffic clusters, so the bin is usually found by binary search.
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        if lo < keys.count, keys[lo] == key {
            values[lo] &+= n
        } else {
            keys.insert(key, at: lo)
            values.insert(n, at: lo)
        }
    }

    public mutating func merge(_ other: SpeedHistogram) {
        if bins.isEmpty {
            let known = wholeKnown
            self = other
            if !known { forgetWholeCounts() }
            return
        }
        guard !other.bins.isEmpty else { return }
        Self.mergeSparse(&bins, &counts, other.bins, other.counts)
        if wholeKnown && other.wholeKnown {
            if !other.wholeBins.isEmpty { Self.mergeSparse(&wholeBins, &wholeCounts, other.wholeBins, other.wholeCounts) }
        } else {
            forgetWholeCounts()
        }
    }

    private static func mergeSparse(_ keys: inout [UInt16], _ values: inout [UInt32], _ otherKeys: [UInt16], _ otherValues: [UInt32]) {
        if keys.isEmpty {
            keys = otherKeys
            values = otherValues
            return
        }
        var newKeys = [UInt16](), newValues = [UInt32]()
        newKeys.reserveCapacity(keys.count + otherKeys.count)
        newValues.reserveCapacity(keys.count + otherKeys.count)
        var i = 0, j = 0
        while i < keys.count || j < otherKeys.count {
            if j == otherKeys.count || (i < keys.count && keys[i] < otherKeys[j]) {
                newKeys.append(keys[i]); newValues.append(values[i]); i += 1
            } else if i == keys.count || otherKeys[j] < keys[i] {
                newKeys.append(otherKeys[j]); newValues.append(otherValues[j]); j += 1
            } else {
                newKeys.append(keys[i]); newValues.append(values[i] &+ otherValues[j]); i += 1; j += 1
            }
        }
        keys = newKeys
        values = newValues
    }

    /// Nearest rank: the smallest bin whose cumulative count reaches ⌈p·n/100⌉.
    public func percentile(_ percent: Int, count n: Int64) -> Int? {
        guard n > 0 else { return nil }
        let rank = (Int64(percent) * n + 99) / 100
        var cumulative: Int64 = 0
        for (b, c) in zip(bins, counts) {
            cumulative += Int64(c)
            if cumulative >= max(rank, 1) { return Int(b) }
        }
        return bins.last.map(Int.init)
    }

    func encode(into out: inout [UInt8]) {
        Self.encodeSparse(bins, counts, into: &out)
    }

    /// The whole counts (state format 3), after the bins.
    func encodeWholeCounts(into out: inout [UInt8]) {
        Self.encodeSparse(wholeBins, wholeCounts, into: &out)
    }

    private static func encodeSparse(_ keys: [UInt16], _ values: [UInt32], into out: inout [UInt8]) {
        out.appendVarint(UInt64(keys.count))
        var previous: UInt16 = 0
        for (b, c) in zip(keys, values) {
            out.appendVarint(UInt64(b - previous))
            out.appendVarint(UInt64(c))
            previous = b
        }
    }

    static func decode(_ r: inout ByteReader) throws(EventRecord.FormatError) -> SpeedHistogram {
        var h = SpeedHistogram()
        try decodeSparse(&r, &h.bins, &h.counts)
        return h
    }

    mutating func decodeWholeCounts(_ r: inout ByteReader) throws(EventRecord.FormatError) {
        try Self.decodeSparse(&r, &wholeBins, &wholeCounts)
        wholeKnown = true
    }

    private static func decodeSparse(_ r: inout ByteReader, _ keys: inout [UInt16], _ values: inout [UInt32]) throws(EventRecord.FormatError) {
        let binCount = try r.varint()
        guard binCount <= 65_536 else { throw EventRecord.FormatError() }
        let n = Int(binCount)
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
        var previous: UInt64 = 0
        for i in 0..<n {
            let delta = try r.varint()
            guard delta <= UInt64(UInt16.max) - previous, i == 0 || delta > 0 else { throw EventRecord.FormatError() }
            previous += delta
            keys.append(UInt16(previous))
            values.append(UInt32(truncatingIfNeeded: try r.varint()))
        }
    }

    /// Whole counts within their bins' counts.
    var wholeCountsConsistent: Bool {
        var j = 0
        for (b, w) in zip(wholeBins, wholeCounts) {
            while j < bins.count, bins[j] < b { j += 1 }
            guard j < bins.count, bins[j] == b, w > 0, w <= counts[j] else { return false }
        }
        return true
    }
}
