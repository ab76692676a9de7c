import Foundation
import Testing

@testable import SpeedflowAggregation
@testable import SpeedflowModel
import SpeedflowTestSupport

/// The naive oracle: everything recomputed from the full list of speeds.
struct NaiveStats {
    var speeds: [Double]

    var count: Int64 { Int64(speeds.count) }
    var sum: Double? { speeds.isEmpty ? nil : speeds.reduce(0, +) }
    var mean: Double? { sum.map { $0 / Double(speeds.count) } }
    var harmonic: Double? { speeds.isEmpty ? nil : Double(speeds.count) / speeds.reduce(0) { $0 + 1 / $1 } }
    var min: Double? { speeds.min() }
    var max: Double? { speeds.max() }
    /// Two-pass sample standard deviation.
    var stddev: Double? {
        guard speeds.count > 1, let m = mean else { return nil }
        let ss = speeds.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (ss / Double(speeds.count - 1)).squareRoot()
    }
    /// Nearest rank on the 1 km/h floors: sort the floors, take element ⌈p·n/100⌉ − 1.
    func percentile(_ p: Int) -> Int? {
        guard !speeds.isEmpty else { return nil }
        let floors = speeds.map { Int($0.rounded(.down)) }.sorted()
        let rank = Int((Double(p) * Double(floors.count) / 100).rounded(.up))
        return floors[Swift.max(rank, 1) - 1]
    }
    /// Histogram as floor → count.
    var histogram: [Int: Int] { speeds.reduce(into: [:]) { $0[Int($1.rounded(.down)), default: 0] += 1 } }
}

func state(_ speeds: [Double]) -> BucketState {
    var s = BucketState()
    for v in speeds { s.add(v) }
    return s
}

/// Random speed lists of several shapes: uniform, traffic-like normal, integers, bin edges, constant.
func randomSpeeds(_ rng: inout SeededRandom, count: Int) -> [Double] {
    switch Int.random(in: 0..<5, using: &rng) {
    case 0: return (0..<count).map { _ in Double.random(in: 0.01...300, using: &rng) }
    case 1:
        let mu = Double.random(in: 30...130, using: &rng), sigma = Double.random(in: 1...20, using: &rng)
        return (0..<count).map { _ in Swift.min(300, Swift.max(0.5, mu + sigma * rng.normal())) }
    case 2: return (0..<count).map { _ in Double(Int.random(in: 1...300, using: &rng)) }
    case 3:
        return (0..<count).map { _ in
            let k = Double(Int.random(in: 40...60, using: &rng))
            return [k, k.nextDown, k.nextUp, k + 0.999_999_999][Int.random(in: 0..<4, using: &rng)]
        }
    default:
        let v = Double.random(in: 1...300, using: &rng)
        return [Double](repeating: v, count: count)
    }
}

func expectMatches(_ s: BucketState, _ o: NaiveStats, _ note: Comment, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(s.count == o.count, note, sourceLocation: sourceLocation)
    #expect(s.minSpeed == o.min, note, sourceLocation: sourceLocation)
    #expect(s.maxSpeed == o.max, note, sourceLocation: sourceLocation)
    #expect(close(s.count > 0 ? s.sum : nil, o.sum), note, sourceLocation: sourceLocation)
    #expect(close(s.averageSpeed, o.mean), note, sourceLocation: sourceLocation)
    #expect(close(s.harmonicMeanSpeed, o.harmonic), note, sourceLocation: sourceLocation)
    #expect(close(s.standardDeviation, o.stddev, rel: 1e-9, abs: 1e-9), note, sourceLocation: sourceLocation)
    for p in [15, 50, 85] {
        #expect(s.percentile(p) == o.percentile(p), "p\(p) \(note)", sourceLocation: sourceLocation)
    }
    let h = o.histogram
    #expect(s.histogram.bins.map(Int.init) == h.keys.sorted(), note, sourceLocation: sourceLocation)
    #expect(s.histogram.counts.map(Int.init) == h.keys.sorted().map { h[$0]! }, note, sourceLocation: sourceLocation)
}

@Suite("BucketState: mergeable speed summary")
struct BucketStateTests {
    @Test("An empty state has no speeds")
    func empty() {
        let s = BucketState()
        #expect(s.isEmpty && s.count == 0)
        #expect(s.averageSpeed == nil && s.harmonicMeanSpeed == nil && s.minSpeed == nil && s.maxSpeed == nil)
        #expect(s.standardDeviation == nil)
        #expect(s.percentile(50) == nil)
        #expect(s.histogram.binCount == 0)
    }

    @Test("One speed: mean = min = max, no stddev, every percentile is its bin")
    func single() {
        let s = state([85.2])
        #expect(s.averageSpeed == 85.2 && s.minSpeed == 85.2 && s.maxSpeed == 85.2)
        #expect(close(s.harmonicMeanSpeed, 85.2, rel: 1e-15))
        #expect(s.standardDeviation == nil)
        for p in [1, 15, 50, 85, 100] { #expect(s.percentile(p) == 85) }
    }

    @Test("Hand-checked small case")
    func small() {
        // speeds 60, 80, 100: mean 80, harmonic 3/(1/60+1/80+1/100) = 76.595..., sd = 20
        let s = state([60, 80, 100])
        #expect(s.averageSpeed == 80)
        #expect(close(s.harmonicMeanSpeed, 3 / (1.0 / 60 + 1.0 / 80 + 1.0 / 100), rel: 1e-15))
        #expect(close(s.standardDeviation, 20, rel: 1e-15))
        // nearest rank, n = 3: p15 → rank 1, p50 → rank 2, p85 → rank 3
        #expect(s.percentile(15) == 60 && s.percentile(50) == 80 && s.percentile(85) == 100)
        #expect(s.percentile(33) == 60 && s.percentile(34) == 80 && s.percentile(67) == 100)
    }

    @Test("Against a naive oracle over random speed lists")
    func againstOracle() {
        var rng = SeededRandom(seed: 0xB0C4)
        for i in 0..<400 {
            let n = [1, 2, 3, 7, 20, 100, 1000][i % 7] + (i % 5 == 0 ? 0 : Int.random(in: 0...50, using: &rng))
            let speeds = randomSpeeds(&rng, count: n)
            expectMatches(state(speeds), NaiveStats(speeds: speeds), "case \(i), n \(n)")
        }
    }

    @Test("Every percentile 1...100 is the nearest rank of the floors")
    func allPercentiles() {
        var rng = SeededRandom(seed: 0x9E4C)
        for _ in 0..<100 {
            let speeds = randomSpeeds(&rng, count: Int.random(in: 1...300, using: &rng))
            let s = state(speeds), o = NaiveStats(speeds: speeds)
            for p in 1...100 { #expect(s.percentile(p) == o.percentile(p), "p\(p) n \(speeds.count)") }
            #expect(s.percentile(100) == Int(o.max!.rounded(.down)))
        }
    }

    @Test("Merging random partitions in random order equals the whole")
    func mergeProperty() {
        var rng = SeededRandom(seed: 0x3E46)
        for i in 0..<300 {
            let speeds = randomSpeeds(&rng, count: Int.random(in: 0...600, using: &rng))
            let whole = state(speeds)
            // Random partition into k parts (some may be empty).
            let k = Int.random(in: 1...12, using: &rng)
            var parts = [[Double]](repeating: [], count: k)
            for v in speeds { parts[Int.random(in: 0..<k, using: &rng)].append(v) }
            var states = parts.map(state).shuffled(using: &rng)
            // Merge in a random tree: repeatedly merge two random states.
            while states.count > 1 {
                let a = states.remove(at: Int.random(in: 0..<states.count, using: &rng))
                let j = Int.random(in: 0..<states.count, using: &rng)
                states[j] = Bool.random(using: &rng) ? a.merging(states[j]) : states[j].merging(a)
            }
            let merged = states[0]
            #expect(merged.count == whole.count)
            #expect(merged.minSpeed == whole.minSpeed && merged.maxSpeed == whole.maxSpeed)
            #expect(merged.histogram == whole.histogram, "case \(i)")
            #expect(close(merged.count > 0 ? merged.sum : nil, whole.count > 0 ? whole.sum : nil))
            #expect(close(merged.sumInverse, whole.sumInverse))
            #expect(close(merged.averageSpeed, whole.averageSpeed))
            #expect(close(merged.harmonicMeanSpeed, whole.harmonicMeanSpeed))
            #expect(close(merged.standardDeviation, whole.standardDeviation, rel: 1e-9, abs: 1e-9), "case \(i)")
            for p in [15, 50, 85] { #expect(merged.percentile(p) == whole.percentile(p)) }
            expectMatches(merged, NaiveStats(speeds: speeds), "merged case \(i)")
        }
    }

    @Test("Merging with an empty state is the identity, both ways")
    func mergeEmpty() {
        let s = state([50, 60.5, 70.25])
        #expect(s.merging(BucketState()) == s)
        #expect(BucketState().merging(s) == s)
        #expect(BucketState().merging(BucketState()) == BucketState())
        var m = s
        m.merge(BucketState())
        #expect(m == s)
    }

    @Test("Stddev stays accurate for large speeds with a tiny spread (no Σv² cancellation)")
    func stableStddev() {
        var rng = SeededRandom(seed: 0x57D)
        let speeds = (0..<10_000).map { _ in 299.0 + Double.random(in: 0..<1e-6, using: &rng) }
        let o = NaiveStats(speeds: speeds)
        #expect(close(state(speeds).standardDeviation, o.stddev, rel: 1e-6))
        // The same through many small merges.
        var merged = BucketState()
        for chunk in stride(from: 0, to: speeds.count, by: 7) {
            merged.merge(state(Array(speeds[chunk..<Swift.min(chunk + 7, speeds.count)])))
        }
        #expect(close(merged.standardDeviation, o.stddev, rel: 1e-6))
        // A constant list has zero spread.
        #expect(state([Double](repeating: 83.3, count: 1000)).standardDeviation == 0)
    }

    @Test("Encode/decode round-trip is exact")
    func codecRoundTrip() throws {
        var rng = SeededRandom(seed: 0xC0DEC)
        var samples = [BucketState(), state([1]), state([300, 0.001])]
        for _ in 0..<200 { samples.append(state(randomSpeeds(&rng, count: Int.random(in: 1...500, using: &rng)))) }
        for s in samples {
            let bytes = s.encoded()
            let decoded = try BucketState.decode(bytes)
            #expect(decoded == s)
            #expect(decoded.encoded() == bytes)
            #expect(try bytes.withUnsafeBytes { try BucketState.decode($0) } == s)
        }
    }

    @Test("Truncated or wrong-version bytes throw")
    func codecErrors() {
        var rng = SeededRandom(seed: 0xBAD)
        let s = state(randomSpeeds(&rng, count: 200))
        let bytes = s.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(Array(bytes.prefix(cut))) }
        }
        var wrong = bytes
        wrong[0] = 2
        #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(wrong) }
    }

    @Test("A sparse histogram is compact: a few bytes per occupied bin")
    func compactness() {
        let s = state((0..<1000).map { Double(60 + $0 % 40) + 0.5 })
        #expect(s.histogram.binCount == 40)
        #expect(s.encoded().count <= 1 + 10 + 48 + 2 + 40 * 3)
    }

    /// The bytes of a state up to (excluding) its histogram.
    static func header(count: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [1]
        bytes.appendVarint(count)
        bytes += [UInt8](repeating: 0, count: 48)
        return bytes
    }

    @Test("A histogram bin delta that overflows throws instead of trapping")
    func corruptHistogramDelta() async {
        var bytes = BucketStateTests.header(count: 2)
        bytes += [2, 10, 1]  // two bins; bin 10 × 1
        bytes.appendVarint(.max)  // next delta: 10 + (2^64 − 1) overflows
        bytes += [1]
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(bytes) }
    }

    @Test("A count varint ≥ 2^63 throws instead of trapping")
    func corruptCount() async {
        var bytes = BucketStateTests.header(count: .max)
        bytes += [0]  // empty histogram
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(bytes) }
    }

    @Test("A histogram bin-count varint ≥ 2^63 throws instead of trapping")
    func corruptBinCount() async {
        var bytes = BucketStateTests.header(count: 1)
        bytes.appendVarint(.max)
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(bytes) }
    }
}

@Suite("SpeedHistogram")
struct SpeedHistogramTests {
    @Test("bin(for:) is the floor in km/h")
    func bins() {
        #expect(SpeedHistogram.bin(for: 85.2) == 85)
        #expect(SpeedHistogram.bin(for: 85.0) == 85)
        #expect(SpeedHistogram.bin(for: 84.999_999) == 84)
        #expect(SpeedHistogram.bin(for: 0.5) == 0)
        #expect(SpeedHistogram.bin(for: 300) == 300)
    }

    @Test("add keeps bins sorted and merge adds bin-wise")
    func addAndMerge() {
        var rng = SeededRandom(seed: 0x4157)
        for _ in 0..<200 {
            var a = SpeedHistogram(), b = SpeedHistogram()
            var expected: [UInt16: UInt32] = [:]
            for _ in 0..<Int.random(in: 0...100, using: &rng) {
                let bin = UInt16.random(in: 0...300, using: &rng), c = UInt32.random(in: 1...5, using: &rng)
                a.add(bin: bin, count: c)
                expected[bin, default: 0] += c
            }
            for _ in 0..<Int.random(in: 0...100, using: &rng) {
                let bin = UInt16.random(in: 0...300, using: &rng)
                b.add(bin: bin)
                expected[bin, default: 0] += 1
            }
            var m = a
            m.merge(b)
            #expect(m.bins == expected.keys.sorted())
            #expect(m.counts == expected.keys.sorted().map { expected[$0]! })
            var m2 = b
            m2.merge(a)
            #expect(m2 == m)
        }
    }
}
