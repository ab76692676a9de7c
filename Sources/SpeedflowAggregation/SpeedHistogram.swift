import SpeedflowModel

/// Sparse histogram of speeds in 1 km/h bins (bin `k` holds `k ≤ v < k+1`).
///
/// Kept as two parallel sorted arrays: a 5-minute bucket touches a few dozen bins, so a sorted array beats a
/// dictionary on both memory and merge speed.
public struct SpeedHistogram: Sendable, Hashable {
    public private(set) var bins: [UInt16] = []
    public private(set) var counts: [UInt32] = []

    public init() {}

    public var binCount: Int { bins.count }

    @inline(__always)
    public static func bin(for speed: Double) -> UInt16 {
        UInt16(clamping: Int(speed.rounded(.down)))
    }

    public mutating func add(bin: UInt16, count: UInt32 = 1) {
        // Fast path: traffic clusters, so the bin is usually found by binary search.
        var lo = 0, hi = bins.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if bins[mid] < bin { lo = mid + 1 } else { hi = mid }
        }
        if lo < bins.count, bins[lo] == bin {
            counts[lo] &+= count
        } else {
            bins.insert(bin, at: lo)
            counts.insert(count, at: lo)
        }
    }

    public mutating func merge(_ other: SpeedHistogram) {
        if bins.isEmpty {
            self = other
            return
        }
        var newBins = [UInt16](), newCounts = [UInt32]()
        newBins.reserveCapacity(bins.count + other.bins.count)
        newCounts.reserveCapacity(bins.count + other.bins.count)
        var i = 0, j = 0
        while i < bins.count || j < other.bins.count {
            if j == other.bins.count || (i < bins.count && bins[i] < other.bins[j]) {
                newBins.append(bins[i]); newCounts.append(counts[i]); i += 1
            } else if i == bins.count || other.bins[j] < bins[i] {
                newBins.append(other.bins[j]); newCounts.append(other.counts[j]); j += 1
            } else {
                newBins.append(bins[i]); newCounts.append(counts[i] &+ other.counts[j]); i += 1; j += 1
            }
        }
        bins = newBins
        counts = newCounts
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
        out.appendVarint(UInt64(bins.count))
        var previous: UInt16 = 0
        for (b, c) in zip(bins, counts) {
            out.appendVarint(UInt64(b - previous))
            out.appendVarint(UInt64(c))
            previous = b
        }
    }

    static func decode(_ r: inout ByteReader) throws(EventRecord.FormatError) -> SpeedHistogram {
        var h = SpeedHistogram()
        let binCount = try r.varint()
        guard binCount <= 65_536 else { throw EventRecord.FormatError() }
        let n = Int(binCount)
        h.bins.reserveCapacity(n)
        h.counts.reserveCapacity(n)
        var previous: UInt64 = 0
        for _ in 0..<n {
            let delta = try r.varint()
            guard delta <= UInt64(UInt16.max) - previous else { throw EventRecord.FormatError() }
            previous += delta
            h.bins.append(UInt16(previous))
            h.counts.append(UInt32(truncatingIfNeeded: try r.varint()))
        }
        return h
    }
}
