import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import Testing

/// The naive truth: first copy of each (camera, identity) wins; per window count, Σv, Σ1/v.
public struct Oracle {
    public var seen: Set<String> = []
    public var buckets: [String: [Int64: (count: Int, sum: Double, inv: Double, speeds: [Double])]] = [:]
    /// Every counted pass of each camera: its bucket, speed and lane (for per-lane and over-the-limit recounts).
    public var passes: [String: [(bucket: Int64, speed: Double, lane: Int?)]] = [:]

    public init() {}

    /// Returns whether the event is new.
    public mutating func add(_ e: CameraEvent) -> Bool {
        let key = "\(e.kvfvId)|\(e.eventId ?? "content:\(e.timestampMs):\(e.lane ?? -1):\(e.plate ?? ""):\(e.speed)")"
        guard seen.insert(key).inserted else { return false }
        let b = e.timestampMs.floorDiv(300_000)
        var v = buckets[e.kvfvId, default: [:]][b] ?? (0, 0, 0, [])
        v.count += 1
        v.sum += e.speed
        v.inv += 1 / e.speed
        v.speeds.append(e.speed)
        buckets[e.kvfvId, default: [:]][b] = v
        passes[e.kvfvId, default: []].append((b, e.speed, e.lane))
        return true
    }

    /// The passes of `camera` in `window` that belong to `group`, each with the limit in force at its bucket.
    public func passes(camera: String, window: Window, group: LaneGroup, limitAt: (Int64) -> Int?) -> [(speed: Double, limit: Int?)] {
        (passes[camera] ?? []).filter { p in
            guard window.buckets.contains(p.bucket) else { return false }
            let key = p.lane.flatMap { (1...16).contains($0) ? $0 : nil } ?? 0
            switch group {
            case .camera: return true
            case .lane(let k): return key == Int(k)
            case .unknown(let n): return key == 0 || key > (n ?? 0)
            }
        }.map { ($0.speed, limitAt(Bucket.start(ofIndex: $0.bucket))) }
    }

    public func expected(camera: String, window: Window) -> (count: Int, sum: Double, inv: Double, speeds: [Double]) {
        var r: (count: Int, sum: Double, inv: Double, speeds: [Double]) = (0, 0, 0, [])
        for (b, v) in buckets[camera] ?? [:] where window.buckets.contains(b) {
            r.count += v.count
            r.sum += v.sum
            r.inv += v.inv
            r.speeds += v.speeds
        }
        return r
    }
}

/// `|a − b| ≤ tolerance · max(1, |b|)`; `nil` is never close.
public func isClose(_ a: Double?, _ b: Double, tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance * max(1, abs(b))
}

/// An engine over a segment log (`dir/log`, 64 KiB segments) and a SQLite store (`dir/<storeName>`).
public func makeEngine(
    _ dir: URL, storeName: String = "store.sqlite", _ configure: (inout EngineConfiguration) -> Void = { _ in }
) throws -> Engine {
    var configuration = EngineConfiguration()
    configure(&configuration)
    let log = try SegmentLog(directory: dir.appendingPathComponent("log"), configuration: .init(segmentBytes: 64 << 10))
    let store = try SQLiteStore(path: dir.appendingPathComponent(storeName).path)
    return try Engine(log: log, store: store, configuration: configuration)
}

/// A random stream with everything a bad link does: late events, resends (same event_id), content-identical
/// events without event_id, out-of-order batches.
public func randomStream(seed: UInt64, cameras: Int, events: Int, nowMs: Int64) -> [[CameraEvent]] {
    var rng = SeededRandom(seed: seed)
    var all: [CameraEvent] = []
    for i in 0..<events {
        let camera = "KV\(rng.next() % UInt64(cameras))"
        // Mostly recent, some hours late, a few days late.
        let age: Int64
        switch rng.next() % 10 {
        case 0: age = Int64(rng.next() % (3 * 86_400_000))
        case 1, 2: age = Int64(rng.next() % (6 * 3_600_000))
        default: age = Int64(rng.next() % 900_000)
        }
        let speed = 20 + Double(rng.next() % 13_000) / 100
        let hasId = rng.next() % 8 != 0
        // A quarter of the speeds whole km/h (so `v == limit` is common); lanes 1–3, none, 0 and 17 (unknown).
        let wholeSpeed = rng.next() % 4 == 0
        let lanes: [Int?] = [1, 2, 3, nil, 0, 17, 1, 2]
        let e = CameraEvent(
            kvfvId: camera, timestampMs: nowMs - age, speed: wholeSpeed ? speed.rounded(.down) : speed,
            eventId: hasId ? "\(camera)-\(i)" : nil,
            lane: lanes[Int(rng.next() % UInt64(lanes.count))], plate: hasId ? "P\(i)" : "P\(rng.next() % 3)")
        all.append(e)
        // Resends: the same event again later in the stream.
        if rng.next() % 5 == 0 { all.append(e) }
    }
    // Shuffle, then cut into batches of random sizes.
    for i in stride(from: all.count - 1, to: 0, by: -1) {
        all.swapAt(i, Int(rng.next() % UInt64(i + 1)))
    }
    var batches: [[CameraEvent]] = []
    var i = 0
    while i < all.count {
        let n = 1 + Int(rng.next() % 40)
        batches.append(Array(all[i..<min(all.count, i + n)]))
        i += n
    }
    return batches
}

/// Compares every 5m window (and the 1h and 24h sums) of every camera with the oracle.
public func expectExact(
    _ engine: Engine, _ oracle: Oracle, nowMs: Int64, sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    for camera in oracle.buckets.keys.sorted() {
        for interval in [WindowInterval.fiveMinutes, .oneHour, .oneDay] {
            let windows = try WindowPlanner.windows(
                fromMs: nowMs - 4 * 86_400_000, toMs: nowMs + 600_000, interval: interval)
            let states = try #require(try await engine.windowStates(kvfvId: camera, windows: windows))
            for (w, s) in zip(windows, states) {
                let e = oracle.expected(camera: camera, window: w)
                #expect(s.count == Int64(e.count), "count \(camera) \(w)", sourceLocation: sourceLocation)
                if e.count > 0 {
                    #expect(isClose(s.averageSpeed, e.sum / Double(e.count)), sourceLocation: sourceLocation)
                    #expect(isClose(s.harmonicMeanSpeed, Double(e.count) / e.inv), sourceLocation: sourceLocation)
                    #expect(s.minSpeed == e.speeds.min() && s.maxSpeed == e.speeds.max(), sourceLocation: sourceLocation)
                    let floors = e.speeds.map { Int($0.rounded(.down)) }.sorted()
                    #expect(s.percentile(85) == floors[(85 * floors.count + 99) / 100 - 1], sourceLocation: sourceLocation)
                } else {
                    #expect(s.averageSpeed == nil)
                }
            }
        }
        try await expectLanesAndCompliance(engine.queries, oracle, camera: camera, nowMs: nowMs, sourceLocation: sourceLocation)
    }
}

/// The limit history the oracles check compliance under: none until three days before `nowMs`, then 60 km/h,
/// 90 km/h from a day before (changes on bucket boundaries, as the registry requires).
public func oracleLimits(nowMs: Int64) -> @Sendable (Int64) -> Int? {
    let first = Bucket.start(ofIndex: Bucket.index(ofTimestamp: nowMs - 3 * 86_400_000))
    let change = Bucket.start(ofIndex: Bucket.index(ofTimestamp: nowMs - 86_400_000))
    return { t in t < first ? nil : (t < change ? 60 : 90) }
}

/// Every lane group's 1h and 1d windows (UTC and Asia/Kolkata, a half-hour offset) and their over-the-limit
/// counts and pace against a recount of the oracle's passes.
public func expectLanesAndCompliance(
    _ queries: CameraQueries, _ oracle: Oracle, camera: String, nowMs: Int64,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let limitAt = oracleLimits(nowMs: nowMs)
    let groups: [LaneGroup] = [.camera, .lane(1), .lane(2), .lane(3), .unknown(registeredLanes: nil), .unknown(registeredLanes: 2)]
    let plans: [(WindowInterval, TimeZone?)] = [(.oneHour, nil), (.oneDay, nil), (.oneDay, TimeZone(identifier: "Asia/Kolkata"))]
    for (interval, tz) in plans {
        let windows = try WindowPlanner.windows(
            fromMs: nowMs - 4 * 86_400_000, toMs: nowMs + 600_000, interval: interval, timeZone: tz)
        let reports = try #require(
            try await queries.windowReports(kvfvId: camera, windows: windows, groups: groups, limitAt: limitAt),
            sourceLocation: sourceLocation)
        for (g, group) in groups.enumerated() {
            for (w, window) in windows.enumerated() {
                let r = reports[g][w], what = "\(camera) \(group) \(interval.rawValue) \(tz?.identifier ?? "UTC") \(w)"
                let passes = oracle.passes(camera: camera, window: window, group: group, limitAt: limitAt)
                #expect(r.state.count == Int64(passes.count), "count \(what)", sourceLocation: sourceLocation)
                guard !passes.isEmpty else { continue }
                let speeds = passes.map(\.speed)
                #expect(r.state.minSpeed == speeds.min() && r.state.maxSpeed == speeds.max(), "min/max \(what)", sourceLocation: sourceLocation)
                #expect(isClose(r.state.averageSpeed, speeds.reduce(0, +) / Double(speeds.count)), "mean \(what)", sourceLocation: sourceLocation)
                let floors = speeds.map { Int($0.rounded(.down)) }
                let sorted = floors.sorted()
                #expect(r.state.percentile(50) == sorted[(50 * sorted.count + 99) / 100 - 1], "p50 \(what)", sourceLocation: sourceLocation)
                var pace = (from: 0, count: -1)
                for p in Set(floors).sorted() {
                    let n = floors.count { $0 >= p && $0 < p + 10 }
                    if n > pace.count { pace = (p, n) }
                }
                let got = r.state.histogram.pace()
                #expect(got?.from == pace.from && got?.count == Int64(pace.count), "pace \(what)", sourceLocation: sourceLocation)
                let checked = passes.filter { $0.limit != nil }
                #expect((r.compliance?.checked ?? 0) == Int64(checked.count), "checked \(what)", sourceLocation: sourceLocation)
                for (i, margin) in Compliance.margins.enumerated() where !checked.isEmpty {
                    let want = checked.count { $0.speed > Double($0.limit! + margin) }
                    #expect(r.compliance?.over[i] == Int64(want), "over +\(margin) \(what)", sourceLocation: sourceLocation)
                }
            }
        }
    }
}
