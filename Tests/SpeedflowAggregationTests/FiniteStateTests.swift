import Testing

@testable import SpeedflowAggregation
@testable import SpeedflowModel

/// Every statistic of a bucket state is finite by construction (issue 11, item 4).
@Suite("BucketState: finite by construction")
struct FiniteStateTests {
    @Test("a speed whose reciprocal overflows, a subnormal, 0, NaN, ∞ are never added")
    func unrepresentableSpeeds() {
        var s = BucketState()
        s.add(80)
        let before = s
        for v in [1e-320, Double.leastNonzeroMagnitude, 0, -1, .nan, .infinity, 1e300] {
            let added = s.add(v)
            #expect(!added, "\(v)")
        }
        #expect(s == before)
        #expect(s.harmonicMeanSpeed == 80)
    }

    @Test("extreme accepted speeds keep every statistic finite, merged too")
    func extremes() {
        var a = BucketState(), b = BucketState()
        for _ in 0..<1000 {
            a.add(ValidationPolicy.speedLimitRange.lowerBound)
            b.add(ValidationPolicy.speedLimitRange.upperBound)
        }
        let m = a.merging(b)
        #expect(m.isWellFormed)
        for v in [m.averageSpeed, m.harmonicMeanSpeed, m.minSpeed, m.maxSpeed, m.standardDeviation] {
            #expect(v?.isFinite == true)
        }
    }

    @Test("a decoded state with a non-finite or inconsistent field is a format error")
    func decodeRefusesNonFinite() throws {
        var s = BucketState()
        s.add(50)
        s.add(70)
        let good = s.encoded()
        #expect(try BucketState.decode(good) == s)
        // Layout: version, varint count (1 byte for 2), then sum, sumInverse, min, max, mean, m2 as LE doubles.
        for (field, value) in [(0, Double.infinity), (1, Double.infinity), (1, 0), (2, -.infinity), (3, .nan), (4, .nan), (5, .infinity), (2, 90.0)] {
            var bad = good
            let offset = 2 + field * 8
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes in
                for k in 0..<8 { bad[offset + k] = bytes[k] }
            }
            #expect(throws: EventRecord.FormatError.self, "field \(field) = \(value)") { try BucketState.decode(bad) }
        }
    }
}
