import Foundation
import Testing

@testable import SpeedflowAggregation
@testable import SpeedflowModel
import SpeedflowTestSupport

func ms(_ s: String) -> Int64 { Timestamp.parse(s)! }

/// Brute-force oracle: every `[k·d, (k+1)·d)` that intersects `[from, to)`.
func oracleWindows(from: Int64, to: Int64, d: Int64) -> [Window] {
    var k = Int64((Double(from) / Double(d)).rounded(.down)) - 2
    var out: [Window] = []
    while k * d < to {
        if (k + 1) * d > from { out.append(Window(startMs: k * d, endMs: (k + 1) * d)) }
        k += 1
    }
    return out
}

/// Local days from Foundation's own day intervals (a different API from the planner's startOfDay walk).
func oracleLocalDays(from: Int64, to: Int64, tz: TimeZone) -> [Window] {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = tz
    func msOf(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded()) }
    var out: [Window] = []
    var interval = cal.dateInterval(of: .day, for: Date(timeIntervalSince1970: Double(from) / 1000))!
    while msOf(interval.start) < to {
        out.append(Window(startMs: msOf(interval.start), endMs: msOf(interval.end)))
        interval = cal.dateInterval(of: .day, for: interval.end)!
    }
    return out
}

func plan(_ from: String, _ to: String, _ interval: WindowInterval, tz: String? = nil) throws -> [Window] {
    try WindowPlanner.windows(fromMs: ms(from), toMs: ms(to), interval: interval, timeZone: tz.map { TimeZone(identifier: $0)! })
}

func starts(_ ws: [Window]) -> [String] { ws.map { Timestamp.format($0.startMs) } }
func hours(_ ws: [Window]) -> [Int64] { ws.map { ($0.endMs - $0.startMs) / 3_600_000 } }

@Suite("Windows and WindowPlanner")
struct WindowsTests {
    @Test("Interval parameters, with 1d and 60m aliases")
    func intervals() {
        #expect(WindowInterval(parameter: "5m") == .fiveMinutes)
        #expect(WindowInterval(parameter: "1h") == .oneHour)
        #expect(WindowInterval(parameter: "60m") == .oneHour)
        #expect(WindowInterval(parameter: "24h") == .oneDay)
        #expect(WindowInterval(parameter: "1d") == .oneDay)
        for bad in ["", "5", "10m", "2h", "1w", "5M", "24H", "1D", " 5m"] { #expect(WindowInterval(parameter: bad) == nil, "\(bad)") }
        #expect(WindowInterval.fiveMinutes.durationMs == 5 * 60_000)
        #expect(WindowInterval.oneHour.durationMs == 60 * 60_000)
        #expect(WindowInterval.oneDay.durationMs == 24 * 60 * 60_000)
    }

    @Test("Bucket index floors, before 1970 too")
    func bucketIndex() {
        #expect(Bucket.index(ofTimestamp: 0) == 0)
        #expect(Bucket.index(ofTimestamp: 299_999) == 0)
        #expect(Bucket.index(ofTimestamp: 300_000) == 1)
        #expect(Bucket.index(ofTimestamp: -1) == -1)
        #expect(Bucket.index(ofTimestamp: -300_000) == -1)
        #expect(Bucket.index(ofTimestamp: -300_001) == -2)
        #expect(Bucket.start(ofIndex: Bucket.index(ofTimestamp: ms("2025-04-05T10:17:59.999Z"))) == ms("2025-04-05T10:15:00Z"))
    }

    @Test("5m windows: unaligned from/to give every window intersecting [from, to)")
    func fiveMinutes() throws {
        let ws = try plan("2025-04-05T10:07:13Z", "2025-04-05T10:21:00Z", .fiveMinutes)
        #expect(starts(ws) == ["2025-04-05T10:05:00Z", "2025-04-05T10:10:00Z", "2025-04-05T10:15:00Z", "2025-04-05T10:20:00Z"])
        #expect(ws.allSatisfy { $0.endMs - $0.startMs == 300_000 })
        // `to` exclusive: an aligned `to` does not add the window starting there.
        #expect(starts(try plan("2025-04-05T10:05:00Z", "2025-04-05T10:15:00Z", .fiveMinutes)) == ["2025-04-05T10:05:00Z", "2025-04-05T10:10:00Z"])
        // A 1 ms range still yields its window.
        let one = try WindowPlanner.windows(fromMs: ms("2025-04-05T10:07:13Z"), toMs: ms("2025-04-05T10:07:13.001Z"), interval: .fiveMinutes)
        #expect(starts(one) == ["2025-04-05T10:05:00Z"])
    }

    @Test("1h and 24h UTC windows")
    func hourAndDay() throws {
        let h = try plan("2025-04-05T10:30:00Z", "2025-04-05T13:00:00.001Z", .oneHour)
        #expect(starts(h) == ["2025-04-05T10:00:00Z", "2025-04-05T11:00:00Z", "2025-04-05T12:00:00Z", "2025-04-05T13:00:00Z"])
        let d = try plan("2025-04-05T10:30:00Z", "2025-04-07T00:00:00Z", .oneDay)
        #expect(starts(d) == ["2025-04-05T00:00:00Z", "2025-04-06T00:00:00Z"])
        #expect(hours(d) == [24, 24])
        // With no time zone, 24h is UTC days.
        let alias = try WindowPlanner.windows(fromMs: ms("2025-04-05T10:30:00Z"), toMs: ms("2025-04-07T00:00:00Z"),
                                              interval: WindowInterval(parameter: "1d")!)
        #expect(alias == d)
    }

    @Test("Random ranges match the brute-force oracle", arguments: WindowInterval.allCases)
    func randomUTC(interval: WindowInterval) throws {
        var rng = SeededRandom(seed: 0x3140 &+ UInt64(interval.durationMs))
        let d = interval.durationMs
        for _ in 0..<500 {
            let from = Int64.random(in: -2_000_000_000_000...4_000_000_000_000, using: &rng)
            let span = Int64.random(in: 1...(d * 300), using: &rng)
            var to = from + span
            if Bool.random(using: &rng) { to = to.floorDiv(d) * d + d }  // aligned end
            let ws = try WindowPlanner.windows(fromMs: from, toMs: to, interval: interval)
            #expect(ws == oracleWindows(from: from, to: to, d: d))
        }
    }

    @Test("Exactly 10,000 windows are allowed, 10,001 throw", arguments: WindowInterval.allCases)
    func tooMany(interval: WindowInterval) throws {
        let d = interval.durationMs
        let from = ms("2025-01-01T00:00:00Z")
        #expect(try WindowPlanner.windows(fromMs: from, toMs: from + 10_000 * d, interval: interval).count == 10_000)
        #expect(throws: WindowPlanner.PlanError.self) {
            try WindowPlanner.windows(fromMs: from, toMs: from + 10_000 * d + 1, interval: interval)
        }
        #expect(throws: WindowPlanner.PlanError.self) {
            try WindowPlanner.windows(fromMs: from, toMs: from + 1_000_000_000 * d, interval: interval)
        }
        do {
            _ = try WindowPlanner.windows(fromMs: from, toMs: from + 20_000 * d, interval: interval)
            Issue.record("expected tooManyWindows")
        } catch {
            if case .tooManyWindows(let n) = error { #expect(n > 10_000) } else { Issue.record("unexpected \(error)") }
        }
    }

    @Test("from ≥ to throws emptyRange")
    func emptyRange() {
        for interval in WindowInterval.allCases {
            for tz: TimeZone? in [nil, TimeZone(identifier: "Europe/Moscow")] {
                #expect(throws: WindowPlanner.PlanError.emptyRange) {
                    try WindowPlanner.windows(fromMs: 1000, toMs: 1000, interval: interval, timeZone: tz)
                }
                #expect(throws: WindowPlanner.PlanError.emptyRange) {
                    try WindowPlanner.windows(fromMs: 2000, toMs: 1000, interval: interval, timeZone: tz)
                }
            }
        }
    }

    @Test("Window.buckets: the 5-minute buckets starting inside the window")
    func windowBuckets() {
        let hour = Window(startMs: ms("2025-04-05T10:00:00Z"), endMs: ms("2025-04-05T11:00:00Z"))
        #expect(hour.buckets.count == 12)
        #expect(hour.buckets.lowerBound == Bucket.index(ofTimestamp: hour.startMs))
        let day = Window(startMs: ms("2025-04-04T21:00:00Z"), endMs: ms("2025-04-05T21:00:00Z"))
        #expect(day.buckets.count == 288)
        #expect(Window(startMs: 0, endMs: 300_000).buckets == 0..<1)
        #expect(Window(startMs: 1, endMs: 300_001).buckets == 1..<2)
        #expect(Window(startMs: 1, endMs: 299_999).buckets.isEmpty)
        #expect(Window(startMs: -300_000, endMs: 0).buckets == -1..<0)
        var rng = SeededRandom(seed: 0xB4C)
        for _ in 0..<2000 {
            let start = Int64.random(in: -10_000_000_000...10_000_000_000, using: &rng)
            let end = start + Int64.random(in: 0...5_000_000, using: &rng)
            let w = Window(startMs: start, endMs: end)
            let lo = Int64((Double(start) / 300_000).rounded(.down)) - 1
            let expected = (lo...(lo + 20)).filter { k in k * 300_000 >= start && k * 300_000 < end }
            #expect(Array(w.buckets) == expected, "\(start)..<\(end)")
        }
    }

    @Test("24h windows in Europe/Moscow start at local midnight, 21:00Z")
    func moscow() throws {
        let ws = try plan("2025-04-05T10:00:00Z", "2025-04-07T10:00:00Z", .oneDay, tz: "Europe/Moscow")
        #expect(starts(ws) == ["2025-04-04T21:00:00Z", "2025-04-05T21:00:00Z", "2025-04-06T21:00:00Z"])
        #expect(hours(ws) == [24, 24, 24])
        // A from just before local midnight still belongs to the previous local day.
        let edge = try plan("2025-04-05T20:59:59.999Z", "2025-04-05T21:00:00.001Z", .oneDay, tz: "Europe/Moscow")
        #expect(starts(edge) == ["2025-04-04T21:00:00Z", "2025-04-05T21:00:00Z"])
        // 1d alias with a zone gives the same.
        let alias = try WindowPlanner.windows(fromMs: ms("2025-04-05T10:00:00Z"), toMs: ms("2025-04-07T10:00:00Z"),
                                              interval: WindowInterval(parameter: "1d")!, timeZone: TimeZone(identifier: "Europe/Moscow"))
        #expect(alias == ws)
        // Local midnights fall on bucket boundaries.
        #expect(ws.allSatisfy { $0.startMs % Bucket.durationMs == 0 && $0.buckets.count == 288 })
    }

    @Test("America/New_York: 23-hour day on 2025-03-09, 25-hour day on 2025-11-02")
    func newYorkDST() throws {
        let spring = try plan("2025-03-08T12:00:00Z", "2025-03-11T12:00:00Z", .oneDay, tz: "America/New_York")
        #expect(starts(spring) == ["2025-03-08T05:00:00Z", "2025-03-09T05:00:00Z", "2025-03-10T04:00:00Z", "2025-03-11T04:00:00Z"])
        #expect(hours(spring) == [24, 23, 24, 24])
        #expect(spring[1].buckets.count == 23 * 12)
        let fall = try plan("2025-11-01T12:00:00Z", "2025-11-04T00:00:00Z", .oneDay, tz: "America/New_York")
        #expect(starts(fall) == ["2025-11-01T04:00:00Z", "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z"])
        #expect(hours(fall) == [24, 25, 24])
        #expect(fall[1].buckets.count == 25 * 12)
        // Consecutive windows tile time with no gap or overlap.
        for ws in [spring, fall] {
            for (a, b) in zip(ws, ws.dropFirst()) { #expect(a.endMs == b.startMs) }
        }
    }

    @Test("Asia/Kolkata (+05:30): local midnight is 18:30Z")
    func kolkata() throws {
        let ws = try plan("2025-04-05T00:00:00Z", "2025-04-06T00:00:00Z", .oneDay, tz: "Asia/Kolkata")
        #expect(starts(ws) == ["2025-04-04T18:30:00Z", "2025-04-05T18:30:00Z"])
        #expect(hours(ws) == [24, 24])
        #expect(ws.allSatisfy { $0.buckets.count == 288 })
    }

    static let zones = [
        "UTC", "Europe/Moscow", "America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe",
        "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "America/Sao_Paulo", "Asia/Tehran", "Pacific/Kiritimati",
        "America/Havana", "Asia/Vladivostok",
    ]

    @Test("Random ranges in many zones match Foundation's day intervals", arguments: zones)
    func randomLocalDays(zone: String) throws {
        let tz = try #require(TimeZone(identifier: zone))
        var rng = SeededRandom(seed: UInt64(truncatingIfNeeded: zone.utf8.reduce(0) { $0 &* 31 &+ Int($1) }))
        for _ in 0..<60 {
            let from = Int64.random(in: ms("2000-01-01T00:00:00Z")...ms("2035-01-01T00:00:00Z"), using: &rng)
            let to = from + Int64.random(in: 1...(400 * 86_400_000), using: &rng)
            let ws = try WindowPlanner.windows(fromMs: from, toMs: to, interval: .oneDay, timeZone: tz)
            let expected = oracleLocalDays(from: from, to: to, tz: tz)
            #expect(ws == expected, "\(zone) \(Timestamp.format(from))..<\(Timestamp.format(to))")
            #expect(ws.first.map { $0.startMs <= from && $0.endMs > from } == true)
            #expect(ws.last.map { $0.startMs < to && $0.endMs >= to } == true)
            for (a, b) in zip(ws, ws.dropFirst()) { #expect(a.endMs == b.startMs) }
            #expect(ws.allSatisfy { (22 * 3_600_000...26 * 3_600_000).contains($0.endMs - $0.startMs) })
        }
    }

    @Test("America/Sao_Paulo 2018-11-04: DST began at midnight, the local day starts at 01:00")
    func midnightGap() throws {
        let ws = try plan("2018-11-03T12:00:00Z", "2018-11-05T12:00:00Z", .oneDay, tz: "America/Sao_Paulo")
        // 11-03 00:00−03:00 = 03:00Z; 11-04 01:00−02:00 = 03:00Z; 11-05 00:00−02:00 = 02:00Z
        #expect(starts(ws) == ["2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z"])
        #expect(hours(ws) == [24, 23, 24])
    }

    @Test("5m and 1h stay UTC-aligned even when a zone is given")
    func zoneIgnoredBelowDay() throws {
        let a = try plan("2025-04-05T10:07:00Z", "2025-04-05T12:00:00Z", .oneHour, tz: "Asia/Kolkata")
        let b = try plan("2025-04-05T10:07:00Z", "2025-04-05T12:00:00Z", .oneHour)
        #expect(a == b)
    }

    @Test("24h with a zone allows as many windows as UTC: up to 10,000")
    func localDaysLimit() throws {
        let utc = try #require(TimeZone(identifier: "UTC"))
        let moscow = try #require(TimeZone(identifier: "Europe/Moscow"))  // no DST since 2014
        let from = ms("2015-01-01T00:00:00Z")
        let fromMoscow = ms("2015-01-01T00:00:00+03:00")
        func count(_ start: Int64, days: Int64, _ tz: TimeZone) -> Int? {
            try? WindowPlanner.windows(fromMs: start, toMs: start + days * 86_400_000, interval: .oneDay, timeZone: tz).count
        }
        for (tz, start) in [(utc, from), (moscow, fromMoscow)] {
            #expect(count(start, days: 9_998, tz) == 9_998, "\(tz.identifier)")
            #expect(count(start, days: 9_999, tz) == 9_999, "\(tz.identifier)")
            #expect(count(start, days: 10_000, tz) == 10_000, "\(tz.identifier)")
            #expect(throws: WindowPlanner.PlanError.self) {
                try WindowPlanner.windows(fromMs: start, toMs: start + 10_000 * 86_400_000 + 1, interval: .oneDay, timeZone: tz)
            }
        }
        #expect(throws: WindowPlanner.PlanError.self) {
            try WindowPlanner.windows(fromMs: from, toMs: from + 1_000_000 * 86_400_000, interval: .oneDay, timeZone: moscow)
        }
    }
}
