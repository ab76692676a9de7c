import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowServer
import SpeedflowTestSupport
import Testing

/// `lane=`, `by=lane` and the compliance figures of `GET /kvfv/{id}/avg-speed` over HTTP, for a registered camera
/// whose limit changed an hour ago, against a recount of the events posted (JSON and CSV); `GET /kvfv/{id}`.
@Suite("HTTP: per-lane and compliance figures")
struct LaneComplianceHTTPTests {
    struct Pass {
        var t: Int64
        var speed: Double
        var lane: Int?
    }

    @Test("per-lane and over-the-limit figures equal a recount of the posted events; a registry edit revises them")
    func figuresEqualARecount() async throws {
        try await RegistryHTTPTests.withServer { client, f in
            let now = f.engine.now
            let hourStart = (now / 3_600_000 - 2) * 3_600_000
            let change = hourStart + 3_600_000  // on a bucket boundary
            var a = try await RegistryHTTPTests.call(
                client, .put, "/kvfv/LANES1/registry", token: f.admin,
                body: """
                    {"name":"A-107 km 42","lanes":2,"speed_limits":[{"kmh":60,"from":null},{"kmh":90,"from":"\(Timestamp.format(change))"}]}
                    """)
            #expect(a.status == .ok)
            var rng = SeededRandom(seed: 3)
            let lanes: [Int?] = [1, 2, 3, nil, 0, 1]
            var passes: [Pass] = []
            for i in 0..<600 {
                let whole = rng.next() % 3 == 0
                let speed = whole ? Double(50 + rng.next() % 60) : 50 + Double(rng.next() % 6000) / 100
                passes.append(Pass(t: hourStart + Int64(rng.next() % 7_200_000), speed: speed, lane: lanes[i % lanes.count]))
            }
            let body = passes.enumerated().map { i, p in
                "{\"kvfv_id\":\"LANES1\",\"timestamp\":\"\(Timestamp.format(p.t))\",\"vehicle_speed\":\(p.speed),\"event_id\":\"e\(i)\"\(p.lane.map { ",\"lane\":\($0)" } ?? "")}"
            }.joined(separator: "\n")
            a = try await RegistryHTTPTests.call(
                client, .post, "/events", token: f.admin, body: body, headers: [.contentType: "application/x-ndjson"])
            #expect(a.status == .ok && a.json["accepted"] as? Int == passes.count)

            let range = "from=\(Timestamp.format(hourStart))&to=\(Timestamp.format(hourStart + 7_200_000))&interval=1h"
            func limit(_ t: Int64) -> Int { t < change ? 60 : 90 }
            func check(_ window: [String: Any], _ mine: [Pass], _ what: String) {
                #expect(window["count"] as? Int == mine.count, "\(what) count")
                #expect(window["checked_count"] as? Int == mine.count, "\(what) checked")
                for (key, margin) in [("over_limit", 0), ("over_limit_10", 10), ("over_limit_20", 20)] {
                    let want = mine.count { $0.speed > Double(limit($0.t) + margin) }
                    #expect(window[key] as? Int == want, "\(what) \(key)")
                    // (Foundation's JSON parser is not correctly rounded: compare to the last few bits.)
                    #expect(isClose(window[key + "_share"] as? Double, Double(want) / Double(mine.count), tolerance: 1e-14), "\(what) \(key)_share")
                }
                #expect(window["flow_rate"] as? Double == Double(mine.count), "\(what) flow_rate (an hour)")
                let floors = mine.map { Int($0.speed.rounded(.down)) }
                var pace = (from: 0, count: -1)
                for p in Set(floors).sorted() where floors.count(where: { $0 >= p && $0 < p + 10 }) > pace.count {
                    pace = (p, floors.count { $0 >= p && $0 < p + 10 })
                }
                #expect(window["pace_from"] as? Int == pace.from && window["pace_to"] as? Int == pace.from + 10, "\(what) pace")
            }
            func inHour(_ h: Int, _ p: Pass) -> Bool { p.t >= hourStart + Int64(h) * 3_600_000 && p.t < hourStart + Int64(h + 1) * 3_600_000 }
            // Registered lanes: 2, so lane 3 is in the unknown lane (0) with the passes without a lane or with lane 0.
            func laneOf(_ p: Pass) -> Int { p.lane.map { (1...2).contains($0) ? $0 : 0 } ?? 0 }

            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1/avg-speed?\(range)&by=lane", token: f.reader)
            #expect(a.status == .ok)
            let totals = try #require(a.json["windows"] as? [[String: Any]])
            let byLane = try #require(a.json["lanes"] as? [[String: Any]])
            #expect(byLane.map { $0["lane"] as? Int } == [1, 2, 0])
            #expect(totals[0]["speed_limit"] as? Int == 60 && totals[1]["speed_limit"] as? Int == 90)
            for h in 0..<2 {
                check(totals[h], passes.filter { inHour(h, $0) }, "total hour \(h)")
                for group in byLane {
                    let lane = try #require(group["lane"] as? Int)
                    let windows = try #require(group["windows"] as? [[String: Any]])
                    check(windows[h], passes.filter { inHour(h, $0) && laneOf($0) == lane }, "lane \(lane) hour \(h)")
                }
            }
            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1/avg-speed?\(range)&lane=2", token: f.reader)
            #expect(a.json["lane"] as? Int == 2)
            let lane2 = try #require(a.json["windows"] as? [[String: Any]])
            check(lane2[1], passes.filter { inHour(1, $0) && laneOf($0) == 2 }, "lane=2 hour 1")

            // CSV: the totals, then each lane's rows with the lane in the last column.
            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1/avg-speed?\(range)&by=lane&format=csv", token: f.reader)
            let lines = a.text.split(separator: "\n")
            let header = lines[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            #expect(lines.count == 1 + 2 * 4)
            let overColumn = try #require(header.firstIndex(of: "over_limit"))
            let row = lines[7].split(separator: ",", omittingEmptySubsequences: false).map(String.init)  // lane 0, hour 0
            #expect(row.last == "0")
            #expect(Int(row[overColumn]) == passes.filter { inHour(0, $0) && laneOf($0) == 0 }.count { $0.speed > 60 })

            // Bad lanes and groupings are refused with reasons.
            for (query, reason) in [("lane=3", "invalid_lane"), ("lane=x", "invalid_lane"), ("by=plate", "invalid_by"), ("lane=1&by=lane", "invalid_by")] {
                a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1/avg-speed?\(range)&\(query)", token: f.reader)
                #expect(a.status == .badRequest && a.json["reason"] as? String == reason, "\(query)")
            }

            // An edit of the limit history revises past windows: 80 throughout.
            a = try await RegistryHTTPTests.call(
                client, .put, "/kvfv/LANES1/registry", token: f.admin, body: #"{"lanes":2,"speed_limits":[{"kmh":80,"from":null}]}"#)
            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1/avg-speed?\(range)", token: f.reader)
            let revised = try #require(a.json["windows"] as? [[String: Any]])
            #expect(revised[0]["speed_limit"] as? Int == 80)
            #expect(revised[0]["over_limit"] as? Int == passes.filter { inHour(0, $0) }.count { $0.speed > 80 })

            // One camera's row, with its registry entry.
            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES1", token: f.reader)
            #expect(a.status == .ok && a.json["kvfv_id"] as? String == "LANES1")
            #expect((a.json["registry"] as? [String: Any])?["lanes"] as? Int == 2)
            a = try await RegistryHTTPTests.call(client, .get, "/kvfv/LANES", token: f.reader)
            #expect(a.status == .notFound && a.json["reason"] as? String == "unknown_kvfv")
        }
    }
}
