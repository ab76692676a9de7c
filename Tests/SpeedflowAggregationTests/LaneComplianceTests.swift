import Foundation
import Testing

@testable import SpeedflowAggregation
@testable import SpeedflowModel
import SpeedflowTestSupport

/// Per-lane figures, passes over a limit and the pace, against a naive recount of the passes themselves: built
/// pass by pass, or from random parts merged in random order through their stored encoding.
@Suite struct LaneComplianceTests {
    struct Pass {
        var speed: Double
        var lane: Int?
    }

    /// Speeds around a few limits, a third of them whole numbers (so `v == limit` happens often).
    static func passes(_ n: Int, rng: inout SeededRandom) -> [Pass] {
        let lanes: [Int?] = [nil, 0, 1, 2, 3, 17, 2, 1]
        return (0..<n).map { _ in
            let whole = rng.next() % 3 == 0
            let speed = whole ? Double(40 + rng.next() % 100) : 40 + Double(rng.next() % 10_000) / 100
            return Pass(speed: speed, lane: lanes[Int(rng.next() % UInt64(lanes.count))])
        }
    }

    static func naiveGroup(_ passes: [Pass], _ group: LaneGroup) -> [Double] {
        passes.filter { p in
            let key = LaneStates.key(p.lane)
            switch group {
            case .camera: return true
            case .lane(let k): return key == k
            case .unknown(let n): return key == 0 || Int(key) > (n ?? 0)
            }
        }.map(\.speed)
    }

    static func naivePace(_ speeds: [Double]) -> (from: Int, count: Int64)? {
        guard !speeds.isEmpty else { return nil }
        let floors = speeds.map { Int($0.rounded(.down)) }
        var best = (from: 0, count: Int64(-1))
        // Bands start at a speed's whole km/h (the slowest they hold); the slowest of equal bands wins.
        for p in Set(floors).sorted() {
            let n = Int64(floors.count { $0 >= p && $0 < p + 10 })
            if n > best.count { best = (p, n) }
        }
        return best
    }

    static let groups: [LaneGroup] = [.camera, .lane(1), .lane(2), .lane(3), .lane(4), .unknown(registeredLanes: nil), .unknown(registeredLanes: 2)]

    func expectMatches(_ state: BucketState, _ passes: [Pass], sourceLocation: SourceLocation = #_sourceLocation) {
        for group in Self.groups {
            let got = group.passes(of: state)
            let speeds = Self.naiveGroup(passes, group)
            #expect(got.count == Int64(speeds.count), "\(group) count", sourceLocation: sourceLocation)
            guard !speeds.isEmpty else { continue }
            #expect(got.minSpeed == speeds.min() && got.maxSpeed == speeds.max(), "\(group) min/max", sourceLocation: sourceLocation)
            #expect(close(got.averageSpeed, speeds.reduce(0, +) / Double(speeds.count)), "\(group) mean", sourceLocation: sourceLocation)
            let floors = speeds.map { Int($0.rounded(.down)) }.sorted()
            #expect(got.percentile(85) == floors[(85 * floors.count + 99) / 100 - 1], "\(group) p85", sourceLocation: sourceLocation)
            for limit in 35...145 {
                #expect(got.histogram.count(above: limit) == Int64(speeds.count { $0 > Double(limit) }), "\(group) over \(limit)", sourceLocation: sourceLocation)
            }
            let pace = got.histogram.pace(), want = Self.naivePace(speeds)
            #expect(pace?.from == want?.from && pace?.count == want?.count, "\(group) pace", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func lanesAndOverLimitEqualARecount(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let passes = Self.passes(400, rng: &rng)
        var sequential = BucketState()
        for p in passes {
            let added = sequential.add(p.speed, lane: p.lane)
            #expect(added)
        }
        expectMatches(sequential, passes)
        #expect(try BucketState.decode(sequential.encoded()) == sequential)

        // Random parts, each stored and read back, merged in random order.
        var parts = [[Pass]](repeating: [], count: 1 + Int(rng.next() % 7))
        for p in passes { parts[Int(rng.next() % UInt64(parts.count))].append(p) }
        var states = try parts.map { part in
            var s = BucketState()
            for p in part { s.add(p.speed, lane: p.lane) }
            return try BucketState.decode(s.encoded())
        }
        for i in stride(from: states.count - 1, to: 0, by: -1) { states.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        var merged = BucketState()
        for s in states { merged.merge(s) }
        expectMatches(merged, passes)
        expectMatches(try BucketState.decode(merged.encoded()), passes)
    }

    @Test func aQueryOfTheCameraReadsTheFiguresWithoutDecodingLanes() throws {
        var rng = SeededRandom(seed: 11)
        let passes = Self.passes(300, rng: &rng)
        var full = BucketState()
        for p in passes { full.add(p.speed, lane: p.lane) }
        let bytes = full.encoded()
        let figures = try bytes.withUnsafeBytes { try BucketState.decode($0, lanes: false) }
        #expect(figures.lanesOmitted && !full.lanesOmitted)
        #expect(figures.count == full.count && figures.sum == full.sum && figures.histogram == full.histogram && figures.m2 == full.m2)
        // Merging figures only: the same camera figures as a full merge, lanes left out.
        var a = full, b = full
        a.merge(full)
        b.mergeFigures(figures)
        #expect(b.lanesOmitted && b.count == a.count && b.sum == a.sum && b.histogram == a.histogram && b.mean == a.mean)
        // A lane section whose length runs past the end is refused, with or without lanes.
        var cut = bytes
        cut.removeLast()
        #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(cut) }
        #expect(throws: EventRecord.FormatError.self) { try cut.withUnsafeBytes { try BucketState.decode($0, lanes: false) } }
    }

    @Test func aCameraWithoutLanesOrWithOneStoresNoLaneStates() throws {
        var none = BucketState(), one = BucketState()
        for v in [50.5, 61.0, 72.25] {
            none.add(v)
            one.add(v, lane: 2)
        }
        #expect(none.lanes.keys.isEmpty && none.lanes.states.isEmpty && none.laneKeys == [0])
        #expect(one.lanes.keys == [2] && one.lanes.states.isEmpty && one.laneKeys == [2])
        #expect(one.lane(2) == one.withoutLanes && one.lane(1).isEmpty && one.lane(0).isEmpty)
        // Only the lane key is stored beyond the figures.
        #expect(one.encoded().count == none.encoded().count + 1)
        one.add(80, lane: 1)
        #expect(one.laneKeys == [1, 2] && one.lane(1).count == 1 && one.lane(2).count == 3)
    }

    /// A state written before whole speeds and lanes were kept (format 1, as 8689e53 wrote it).
    static func legacyEncoding(_ speeds: [Double]) -> [UInt8] {
        var s = BucketState()
        for v in speeds { s.add(v) }
        var out: [UInt8] = [1]
        out.appendVarint(UInt64(s.count))
        for d in [s.sum, s.sumInverse, s.min, s.max, s.mean, s.m2] {
            withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        }
        s.histogram.encode(into: &out)
        return out
    }

    @Test func aStateFromBeforeWholeCountsIsUnknownOnlyWhereTheLimitFallsOnAnOccupiedBin() throws {
        let legacy = try BucketState.decode(Self.legacyEncoding([60.0, 60.5, 70.2]))
        #expect(legacy.count == 3 && !legacy.histogram.wholeKnown)
        #expect(legacy.histogram.count(above: 60) == nil)
        #expect(legacy.histogram.count(above: 59) == 3 && legacy.histogram.count(above: 65) == 1 && legacy.histogram.count(above: 70) == nil)
        // Its passes are in the unknown lane; new ones join their lanes; whole counts stay unknown after a merge.
        var s = legacy
        s.add(61.0, lane: 2)
        #expect(s.lane(0).count == 3 && s.lane(2).count == 1)
        #expect(s.histogram.count(above: 60) == nil && s.histogram.count(above: 61) == nil && s.histogram.count(above: 62) == 1)
        var fresh = BucketState()
        fresh.add(60.0)
        fresh.merge(legacy)
        #expect(fresh.histogram.count(above: 60) == nil)
        // Kept as it was: decoding its encoding again gives the same unknowns.
        let again = try BucketState.decode(s.encoded())
        #expect(again == s && again.histogram.count(above: 60) == nil)
    }

    @Test func damagedLaneOrWholeSectionsAreRefused() throws {
        var s = BucketState()
        for (v, lane) in [(60.0, 1), (61.5, 2), (70.0, 2)] { s.add(v, lane: lane) }
        let good = s.encoded()
        #expect(try BucketState.decode(good) == s)
        // Every single-byte change of the tail (whole counts, lane keys, lane states) is refused or decodes to a
        // well-formed state; none crashes.
        var refused = 0
        for i in (good.count - 40)..<good.count {
            var bad = good
            bad[i] ^= 0x5a
            if let d = try? BucketState.decode(bad) { #expect(d.isWellFormed) } else { refused += 1 }
        }
        #expect(refused > 0)
        // The lane keys themselves: out of order, beyond 16, or a lone unknown lane are refused.
        var keys = BucketState()
        keys.add(60, lane: 3)
        let one = keys.encoded()
        for bad in [UInt8(0), 17, 200] {
            var b = one
            b[b.count - 1] = bad
            #expect(throws: EventRecord.FormatError.self) { try BucketState.decode(b) }
        }
    }

    @Test func complianceFollowsTheLimitInForceAtEachBucket() {
        var rng = SeededRandom(seed: 9)
        // 24 buckets (2 hours) from bucket 1000; the limit is 60 until bucket 1010, then 90, none before 1002.
        let change = Bucket.start(ofIndex: 1010)
        func limitAt(_ ms: Int64) -> Int? { ms < Bucket.start(ofIndex: 1002) ? nil : (ms < change ? 60 : 90) }
        var events: [(bucket: Int64, pass: Pass)] = []
        for _ in 0..<3000 {
            let b = 1000 + Int64(rng.next() % 24)
            events.append((b, Self.passes(1, rng: &rng)[0]))
        }
        var byBucket: [Int64: BucketState] = [:]
        for e in events { byBucket[e.bucket, default: BucketState()].add(e.pass.speed, lane: e.pass.lane) }
        let buckets = byBucket.sorted { $0.key < $1.key }.map { (bucket: $0.key, state: $0.value) }
        let windows = (0..<4).map { i in Window(startMs: Bucket.start(ofIndex: 1000 + Int64(i) * 6), endMs: Bucket.start(ofIndex: 1006 + Int64(i) * 6)) }
        for group in Self.groups {
            let figures = WindowFigures.fold(buckets, into: windows, group: group, limitAt: limitAt)
            for (w, window) in windows.enumerated() {
                let inWindow = events.filter { window.buckets.contains($0.bucket) }
                let checked = inWindow.filter { limitAt(Bucket.start(ofIndex: $0.bucket)) != nil }
                let mine = checked.filter { Self.naiveGroup([$0.pass], group).count == 1 }
                let c = figures[w].compliance
                #expect(c != nil)
                #expect(c?.checked == Int64(mine.count), "\(group) window \(w) checked")
                for (i, margin) in Compliance.margins.enumerated() {
                    let want = Int64(mine.count { $0.pass.speed > Double(limitAt(Bucket.start(ofIndex: $0.bucket))! + margin) })
                    #expect(c?.over[i] == want, "\(group) window \(w) over +\(margin)")
                }
            }
            // Window 0 (buckets 1000–1005) is partly unlimited, window 1 (1006–1011) sees the change.
            #expect(figures[0].compliance?.limit == 60 && figures[1].compliance?.limit == nil && figures[1].compliance?.limitChanged == true)
            #expect(figures[2].compliance?.limit == 90 && figures[3].compliance?.limit == 90)
        }
        // Without a limit anywhere in a window there is no compliance.
        let none = WindowFigures.fold(buckets, into: [Window(startMs: Bucket.start(ofIndex: 1000), endMs: Bucket.start(ofIndex: 1002))], limitAt: limitAt)
        #expect(none[0].compliance == nil && none[0].state.count > 0)
    }
}
