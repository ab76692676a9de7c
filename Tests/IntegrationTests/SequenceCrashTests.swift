import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Numbered passes over HTTP to the real binary, killed with `kill -9` three times mid-stream; whatever was not
/// acknowledged is sent again. Gaps, backlog and every window's count, `missing` and `complete` equal the truth.
@Suite("Crash recovery with sequence numbers", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct SequenceCrashTests {
    static func json(_ e: CameraEvent) -> String {
        var s = "{\"kvfv_id\":\"\(e.kvfvId)\",\"timestamp\":\"\(Timestamp.format(e.timestampMs))\",\"vehicle_speed\":\(e.speed)"
        s += ",\"event_id\":\"\(e.eventId ?? "")\",\"lane\":\(e.lane ?? 0),\"seq\":\(e.seq!)"
        if let epoch = e.seqEpoch { s += ",\"seq_epoch\":\(epoch)" }
        return s + "}"
    }

    static func post(_ url: String, _ body: String, ndjson: Bool) async -> Bool {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: ndjson ? "application/x-ndjson" : "application/json")
        request.body = .bytes(ByteBuffer(string: body))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return response.status == .ok
    }

    /// One delivery: its events, then its reports. `true` once all of it is acknowledged.
    static func send(_ d: SequencedFleet.Delivery, to base: String) async -> Bool {
        if !d.events.isEmpty, await !post(base + "/events", d.events.map(json).joined(separator: "\n"), ndjson: true) { return false }
        for r in d.reports {
            let body = "{\"seq\":\(r.seq),\"seq_epoch\":\(r.epoch),\"timestamp\":\"\(Timestamp.format(r.timeMs))\"}"
            guard await post(base + "/kvfv/\(r.kvfvId)/status", body, ndjson: false) else { return false }
        }
        return true
    }

    static func get(_ url: String) async throws -> [String: Any] {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        #expect(response.status == .ok, "\(url)")
        return try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
    }

    @Test(
        "kill -9 three times mid-stream, resend what was not acknowledged: gaps, backlog and windows exact",
        arguments: CrashRecoveryTests.stores)
    func killNine(store: [String]) async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"] + store)
        defer { server.remove() }
        try await server.start()
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        let fleet = SequencedFleet(seed: 77, cameras: 4, passes: 300, nowMs: started - 60_000)
        var truth = SequenceTruth()
        for d in fleet.deliveries {
            for e in d.events { _ = truth.add(e, arrivalMs: d.arrivalMs) }
            for r in d.reports { truth.add(r, arrivalMs: d.arrivalMs) }
        }
        #expect(truth.conflicting.values.reduce(0, +) > 0 && truth.counted.keys.contains { truth.backlog($0) != nil })
        // In order, one at a time (which copy of a conflicting resend is first must not depend on scheduling).
        var next = 0
        let kills = Set([fleet.deliveries.count / 4, fleet.deliveries.count / 2, 3 * fleet.deliveries.count / 4])
        var killed = 0
        while next < fleet.deliveries.count {
            if kills.contains(next) && killed < kills.count {
                // Killed while this delivery is in flight: it may or may not have landed; it is sent again.
                let delivery = fleet.deliveries[next], url = server.url
                let inFlight = Task { await Self.send(delivery, to: url) }
                server.kill9()
                killed += 1
                _ = await inFlight.value
                try await server.start()
            }
            guard await Self.send(fleet.deliveries[next], to: server.url) else {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            next += 1
        }
        #expect(killed == 3)

        let from = (started - 2 * 86_400_000) / 300_000 * 300_000, to = (started + 600_000) / 300_000 * 300_000
        for camera in truth.counted.keys.sorted() {
            let gaps = try await Self.get("\(server.url)/kvfv/\(camera)/gaps")
            let listed = (gaps["gaps"] as? [[String: Any]] ?? []).map {
                SequenceLedger.Gap(
                    epoch: Int64($0["seq_epoch"] as? Int ?? -1), first: Int64($0["first_seq"] as? Int ?? -1),
                    last: Int64($0["last_seq"] as? Int ?? -1), afterMs: Timestamp.parse($0["after"] as? String ?? "") ?? 0,
                    beforeMs: Timestamp.parse($0["before"] as? String ?? "") ?? 0)
            }
            #expect(listed == truth.gaps(camera), "gaps of \(camera)")
            let backlog = gaps["backlog"] as? [String: Any]
            #expect(Int64(backlog?["events"] as? Int ?? 0) == truth.backlog(camera)?.events ?? 0, "backlog of \(camera)")
            let answer = try await Self.get(
                "\(server.url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from))&to=\(Timestamp.format(to))&interval=5m")
            let windows = answer["windows"] as? [[String: Any]] ?? []
            #expect(windows.count == Int((to - from) / 300_000))
            for w in windows {
                let start = Timestamp.parse(w["start"] as? String ?? "") ?? 0
                let e = truth.window(camera, Window(startMs: start, endMs: start + 300_000))
                #expect(Int64(w["count"] as? Int ?? -1) == e.count, "count \(camera) \(start)")
                #expect(Int64(w["missing"] as? Int ?? -1) == e.missing, "missing \(camera) \(start)")
                #expect(w["complete"] as? Bool == e.complete, "complete \(camera) \(start)")
                // Every event was sent long after a window that ended 10 minutes before the test began: all late.
                if start + 300_000 + 600_000 < started { #expect(w["late_count"] as? Int == w["count"] as? Int) }
            }
        }
        #expect(server.logTail(200_000).contains("Replaying log"), "a restart had log to replay")
    }
}
