import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowServer
import SpeedflowTestSupport
import Testing

/// Daily health (`GET /kvfv/{id}/health`) on constructed cases, and the daily report (`GET /reports/daily`)
/// against a recount of the raw events posted.
@Suite("HTTP: daily health and reports")
struct HealthReportHTTPTests {
    static func post(_ client: any TestClientProtocol, _ token: String, _ lines: [String]) async throws {
        let a = try await RegistryHTTPTests.call(
            client, .post, "/events", token: token, body: lines.joined(separator: "\n"), headers: [.contentType: "application/x-ndjson"])
        #expect(a.status == .ok && a.json["accepted"] as? Int == lines.count, "\(a.text.prefix(300))")
    }

    static func event(_ id: String, _ t: Int64, _ v: Double, lane: Int? = nil, n: Int) -> String {
        "{\"kvfv_id\":\"\(id)\",\"timestamp\":\"\(Timestamp.format(t))\",\"vehicle_speed\":\(v),\"event_id\":\"\(id)-\(n)\"\(lane.map { ",\"lane\":\($0)" } ?? "")}"
    }

    static func utcMidnight(_ ms: Int64) -> Int64 { ms - ms.floorDivMod(86_400_000).1 }

    @Test("a silent day is down, a constant-speed day stuck, today partial and insufficient, passes beyond the lanes unknown_lane")
    func constructedCases() async throws {
        try await RegistryHTTPTests.withServer { client, f in
            let now = f.engine.now
            let today = Self.utcMidnight(now)
            for (id, body) in [
                ("HSTUCK", #"{"name":"Stuck","time_zone":"UTC"}"#),
                ("HPART", #"{"name":"Partial","time_zone":"UTC","expected_daily_volume":50000000}"#),
                ("HLANE", #"{"name":"Lanes","time_zone":"UTC","lanes":2}"#),
            ] {
                let a = try await RegistryHTTPTests.call(client, .put, "/kvfv/\(id)/registry", token: f.admin, body: body)
                #expect(a.status == .ok)
            }
            var lines: [String] = []
            // HSTUCK: varied speeds 3 days ago, silent 2 days ago, 30 passes at exactly 60 yesterday.
            for i in 0..<40 { lines.append(Self.event("HSTUCK", today - 3 * 86_400_000 + Int64(i) * 60_000, 50 + Double(i), n: i)) }
            for i in 0..<30 { lines.append(Self.event("HSTUCK", today - 86_400_000 + Int64(i) * 60_000, 60.0, n: 100 + i)) }
            // HPART: a few passes today, far below its expected volume.
            for i in 0..<10 { lines.append(Self.event("HPART", min(now - 1000, today + Int64(i) * 1000), 70.5, n: i)) }
            // HLANE: yesterday, half of the passes in lane 3 of a camera registered with 2 lanes.
            for i in 0..<40 { lines.append(Self.event("HLANE", today - 86_400_000 + Int64(i) * 60_000, 80 + Double(i % 7), lane: i % 2 == 0 ? 1 : 3, n: i)) }
            try await Self.post(client, f.admin, lines)

            func days(_ id: String) async throws -> [[String: Any]] {
                let from = LocalCalendar.date(today - 3 * 86_400_000, in: TimeZone(identifier: "UTC")!)
                let a = try await RegistryHTTPTests.call(client, .get, "/kvfv/\(id)/health?from=\(from)", token: f.reader)
                #expect(a.status == .ok, "\(a.text.prefix(300))")
                #expect(a.json["tz"] as? String == "UTC")
                return a.json["days"] as? [[String: Any]] ?? []
            }
            let stuck = try await days("HSTUCK")
            // Today (partial, no pass) is down once its first hour has passed.
            let todayStatus = now - today >= DayHealth.Rules().downAfterMs ? "down" : "ok"
            #expect(stuck.map { $0["status"] as? String } == ["ok", "down", "stuck", todayStatus])
            #expect(stuck.count == 4 && stuck[3]["partial"] as? Bool == true)
            #expect(stuck[0]["count"] as? Int == 40 && stuck[0]["distinct_speeds"] as? Int == 40)
            #expect(stuck[2]["count"] as? Int == 30 && stuck[2]["distinct_speeds"] as? Int == 1 && stuck[2]["stddev_speed"] as? Double == 0)
            let partial = try await days("HPART")
            let last = try #require(partial.last)
            #expect(last["partial"] as? Bool == true && last["status"] as? String == "insufficient" && last["count"] as? Int == 10)
            #expect(last["expected"] as? Int == 50_000_000 && (last["volume_share"] as? Double ?? 1) < 0.5)
            let lane = try await days("HLANE")
            #expect(lane[2]["status"] as? String == "unknown_lane" && lane[2]["unknown_lane_count"] as? Int == 20)

            // A skewed clock: 30 passes and 8 events stamped an hour ahead (in_future, rejected and counted durably
            // against the camera by arrival time), 2 with an impossible speed.
            var skewed = (0..<30).map { Self.event("HSKEW", max(today, now - 60_000 - Int64($0) * 1000), 70 + Double($0), n: $0) }
            skewed += (0..<8).map { Self.event("HSKEW", now + 3_600_000, 70, n: 100 + $0) }
            skewed += (0..<2).map { Self.event("HSKEW", now - 1000, 900, n: 200 + $0) }
            let r = try await RegistryHTTPTests.call(
                client, .post, "/events", token: f.admin, body: skewed.joined(separator: "\n"), headers: [.contentType: "application/x-ndjson"])
            #expect(r.status == .ok && r.json["accepted"] as? Int == 30)
            let skew = try #require(try await days("HSKEW").last)
            #expect(skew["status"] as? String == "clock_skew" && skew["reasons"] as? [String] == ["clock_skew", "high_rejection"])
            #expect(skew["rejected"] as? Int == 10 && (skew["rejected_by_reason"] as? [String: Int]) == ["in_future": 8, "speed_out_of_range": 2])
            #expect(isClose(skew["rejection_share"] as? Double, 10.0 / 40.0))

            // Bad requests.
            for (query, reason) in [("from=2026-13-01", "invalid_date"), ("tz=Mars/Olympus", "invalid_tz"), ("from=2020-01-01&to=2022-01-01", "too_many_days")] {
                let a = try await RegistryHTTPTests.call(client, .get, "/kvfv/HSTUCK/health?\(query)", token: f.reader)
                #expect(a.status == .badRequest && a.json["reason"] as? String == reason, "\(query): \(a.text.prefix(200))")
            }
            let unknown = try await RegistryHTTPTests.call(client, .get, "/kvfv/NOPE/health", token: f.reader)
            #expect(unknown.status == .notFound)
        }
    }

    @Test("the daily report equals a recount of the raw events: per camera and lane, volume, speeds, percentiles, over the limit")
    func dailyReportEqualsARecount() async throws {
        try await RegistryHTTPTests.withServer { client, f in
            let now = f.engine.now
            let day = Self.utcMidnight(now) - 86_400_000
            _ = try await RegistryHTTPTests.call(
                client, .put, "/kvfv/RPT1/registry", token: f.admin,
                body: #"{"name":"A-107, km 42","road":"A-107","lanes":2,"speed_limits":[{"kmh":80,"from":null}]}"#)
            var rng = SeededRandom(seed: 17)
            struct Pass { var id: String; var speed: Double; var lane: Int?; var t: Int64 }
            var passes: [Pass] = []
            var lines: [String] = []
            for i in 0..<900 {
                let id = ["RPT1", "RPT2"][i % 2]
                let whole = rng.next() % 3 == 0
                let speed = whole ? Double(60 + rng.next() % 40) : 60 + Double(rng.next() % 4000) / 100
                // Some passes the day before and after: not in the report.
                let t = day - 3_600_000 + Int64(rng.next() % UInt64(26 * 3_600_000))
                let lane: Int? = [1, 2, 3, nil][Int(rng.next() % 4)]
                passes.append(Pass(id: id, speed: speed, lane: lane, t: t))
                lines.append(Self.event(id, t, speed, lane: lane, n: i))
                if i % 10 == 0 { lines.append(lines[lines.count - 1]) }  // resent: counted once
            }
            let a = try await RegistryHTTPTests.call(
                client, .post, "/events", token: f.admin, body: lines.joined(separator: "\n"), headers: [.contentType: "application/x-ndjson"])
            #expect(a.status == .ok && a.json["accepted"] as? Int == passes.count)
            let date = LocalCalendar.date(day, in: TimeZone(identifier: "UTC")!)
            let r = try await RegistryHTTPTests.call(client, .get, "/reports/daily?date=\(date)&tz=UTC", token: f.reader)
            #expect(r.status == .ok, "\(r.text.prefix(300))")
            let rows = try #require(r.json["rows"] as? [[String: Any]])
            func row(_ id: String, _ lane: Int?) -> [String: Any]? {
                rows.first { $0["kvfv_id"] as? String == id && ($0["lane"] as? Int) == lane }
            }
            func expect(_ id: String, _ lane: Int?, _ mine: [Pass], limit: Int?) {
                guard let got = row(id, lane) else {
                    Issue.record("no row \(id) lane \(lane.map(String.init) ?? "total")")
                    return
                }
                let speeds = mine.map(\.speed)
                #expect(got["volume"] as? Int == speeds.count, "\(id) \(String(describing: lane)) volume")
                #expect(isClose(got["avg_speed"] as? Double, speeds.reduce(0, +) / Double(speeds.count), tolerance: 1e-12))
                let floors = speeds.map { Int($0.rounded(.down)) }.sorted()
                for p in [15, 50, 85] {
                    #expect(got["p\(p)_speed"] as? Int == floors[(p * floors.count + 99) / 100 - 1], "\(id) \(String(describing: lane)) p\(p)")
                }
                if let limit {
                    let over = speeds.count { $0 > Double(limit) }
                    #expect(got["over_limit"] as? Int == over, "\(id) \(String(describing: lane)) over")
                    #expect(isClose(got["over_limit_share"] as? Double, Double(over) / Double(speeds.count), tolerance: 1e-12))
                } else {
                    #expect(got["over_limit"] is NSNull)
                }
            }
            let inDay = passes.filter { $0.t >= day && $0.t < day + 86_400_000 }
            let one = inDay.filter { $0.id == "RPT1" }, two = inDay.filter { $0.id == "RPT2" }
            expect("RPT1", nil, one, limit: 80)
            expect("RPT1", 1, one.filter { $0.lane == 1 }, limit: 80)
            expect("RPT1", 2, one.filter { $0.lane == 2 }, limit: 80)
            expect("RPT1", 0, one.filter { $0.lane == nil || $0.lane == 3 }, limit: 80)  // lane 3 is beyond the 2 registered
            expect("RPT2", nil, two, limit: nil)
            expect("RPT2", 3, two.filter { $0.lane == 3 }, limit: nil)  // unregistered: lanes as sent
            #expect(row("RPT1", nil)?["name"] as? String == "A-107, km 42" && row("RPT1", nil)?["status"] as? String != nil)

            // CSV: the same rows, quoted where a name holds a comma.
            let csv = try await RegistryHTTPTests.call(client, .get, "/reports/daily?date=\(date)&tz=UTC&format=csv", token: f.reader)
            #expect(csv.contentType?.hasPrefix("text/csv") == true)
            let csvLines = csv.text.split(separator: "\r\n")
            #expect(csvLines.count == 1 + rows.count)
            #expect(csvLines.contains { $0.hasPrefix("RPT1,\"A-107, km 42\",A-107,,,,UTC,") })
            // Monthly: the month's totals hold at least the day's passes.
            let month = String(date.prefix(7))
            let m = try await RegistryHTTPTests.call(client, .get, "/reports/monthly?month=\(month)&tz=UTC", token: f.reader)
            let monthRows = try #require(m.json["rows"] as? [[String: Any]])
            let total = monthRows.first { $0["kvfv_id"] as? String == "RPT1" && $0["lane"] is NSNull }
            #expect((total?["volume"] as? Int ?? 0) >= one.count)
            // A period wholly in the future: rows without passes, no error (schemathesis found a 500 here).
            let future = try await RegistryHTTPTests.call(client, .get, "/reports/monthly?month=9179-11", token: f.reader)
            #expect(future.status == .ok && (future.json["rows"] as? [[String: Any]])?.first?["volume"] as? Int == 0)
            for (query, reason) in [("date=2026-02-30", "invalid_date"), ("", "missing_parameter")] {
                let bad = try await RegistryHTTPTests.call(client, .get, "/reports/daily?\(query)", token: f.reader)
                #expect(bad.status == .badRequest && bad.json["reason"] as? String == reason, "\(query)")
            }
        }
    }

    @Test("DayHealth.assess on constructed figures: every reason, partial days, thresholds")
    func assessRules() {
        let day = Window(startMs: 0, endMs: 86_400_000)
        func state(_ speeds: [Double], lane: Int? = nil) -> BucketState {
            var s = BucketState()
            for v in speeds { s.add(v, lane: lane) }
            return s
        }
        func reasons(
            _ s: BucketState, rejections: [RejectionReason: Int64] = [:], missing: Int64? = nil, expected: Int? = nil,
            lanes: Int? = nil, elapsed: Int64 = 86_400_000
        ) -> [String] {
            DayHealth.assess(
                window: day, date: "1970-01-01", state: s, rejections: rejections, missing: missing, expectedDaily: expected,
                unknownLaneCount: lanes.map { LaneGroup.unknown(registeredLanes: $0).passes(of: s).count }, elapsedMs: elapsed
            ).reasons.map(\.rawValue)
        }
        let varied = state((0..<100).map { 50 + Double($0) / 10 })
        #expect(reasons(varied).isEmpty)
        #expect(reasons(BucketState()) == ["down"])
        #expect(reasons(BucketState(), elapsed: 1_800_000).isEmpty)  // half an hour into the day: not down yet
        #expect(reasons(state(Array(repeating: 60.0, count: 20))) == ["stuck"])
        #expect(reasons(state(Array(repeating: 60.0, count: 19))).isEmpty)
        #expect(reasons(varied, rejections: [.inFuture: 6]) == ["clock_skew", "high_rejection"])  // 6 of 106 sent
        #expect(reasons(varied, rejections: [.inFuture: 5]) == ["clock_skew"])  // 4.8%: not a high rejection share
        #expect(reasons(varied, rejections: [.inFuture: 4]).isEmpty)
        #expect(reasons(varied, rejections: [.speedOutOfRange: 6]) == ["high_rejection"])
        #expect(reasons(varied, expected: 201) == ["insufficient"])
        #expect(reasons(varied, expected: 200).isEmpty)
        #expect(reasons(varied, expected: 400, elapsed: 43_200_000).isEmpty)  // half the day: 100 of 200 so far
        #expect(reasons(varied, missing: 11) == ["backlog"])
        #expect(reasons(varied, missing: 10).isEmpty)
        var lanes = state((0..<90).map { 50 + Double($0) / 10 }, lane: 1)
        lanes.merge(state((0..<10).map { 50 + Double($0) / 10 }, lane: 4))
        #expect(reasons(lanes, lanes: 2) == ["unknown_lane"])
        #expect(reasons(lanes, lanes: 4).isEmpty)
        #expect(reasons(BucketState(), rejections: [.inFuture: 50]) == ["down", "clock_skew", "high_rejection"])
    }
}
