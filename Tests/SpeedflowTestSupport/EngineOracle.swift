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
        return true
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
        let e = CameraEvent(
            kvfvId: camera, timestampMs: nowMs - age, speed: speed, eventId: hasId ? "\(camera)-\(i)" : nil,
            lane: Int(rng.next() % 3), plate: hasId ? "P\(i)" : "P\(rng.next() % 3)")
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
    }
}
