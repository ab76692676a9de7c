import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAggregation
import SpeedflowModel
import Testing

/// Cameras that number their passes, over HTTP: `seq` on events, `POST /kvfv/{id}/status`, `GET /kvfv/{id}/gaps`,
/// and what windows and the fleet list say about completeness.
@Suite("HTTP: sequence numbers, camera status, gaps, window completeness")
struct SequenceHTTPTests {
    static func event(_ camera: String, seq: Int64, _ ms: Int64, _ speed: Double = 60, epoch: Int64? = nil) -> String {
        var s = "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed),\"seq\":\(seq)"
        if let epoch { s += ",\"seq_epoch\":\(epoch)" }
        return s + "}"
    }

    static func post(_ client: any TestClientProtocol, _ uri: String, _ body: String, headers: HTTPFields = [:]) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) { r in
            (r.status, HTTPContractTests.object(r.body))
        }
    }

    static func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, [String: Any]) {
        try await client.execute(uri: uri, method: .get) { r in (r.status, HTTPContractTests.object(r.body)) }
    }

    @Test("Numbered passes, a status report, the gap ledger, window completeness and the fleet row; resends close the gap")
    func endToEnd() async throws {
        try await HTTPContractTests.withServer { client, _ in
            // Passes 100…109 one a minute, in the hour before a whole-hour mark well in the past; 104 and 105 lost so far.
            let hour = (HTTPContractTests.now / 3_600_000 - 2) * 3_600_000
            let t = { (seq: Int64) in hour + (seq - 100) * 60_000 + 30_000 }
            let sent = (Int64(100)...109).filter { $0 != 104 && $0 != 105 }.map { Self.event("SQ1", seq: $0, t($0)) }
            var (status, body) = try await Self.post(client, "/events", "[" + sent.joined(separator: ",") + "]")
            #expect(status == .ok && body["accepted"] as? Int == 8)
            // The camera has recorded up to 112.
            (status, body) = try await Self.post(
                client, "/kvfv/SQ1/status", "{\"seq\":112,\"timestamp\":\"\(Timestamp.format(t(112)))\"}")
            #expect(status == .ok && body["seq"] as? Int == 112 && body["seq_epoch"] as? Int == 0)

            (status, body) = try await Self.get(client, "/kvfv/SQ1/gaps")
            #expect(status == .ok && body["sequenced"] as? Bool == true && body["received"] as? Int == 8)
            let gaps = body["gaps"] as? [[String: Any]] ?? []
            #expect(gaps.count == 1 && body["missing_total"] as? Int == 2 && body["truncated"] as? Bool == false)
            #expect(gaps.first?["first_seq"] as? Int == 104 && gaps.first?["last_seq"] as? Int == 105 && gaps.first?["count"] as? Int == 2)
            #expect(gaps.first?["after"] as? String == Timestamp.format(t(103)) && gaps.first?["before"] as? String == Timestamp.format(t(106)))
            let backlog = body["backlog"] as? [String: Any]
            #expect(backlog?["events"] as? Int == 3 && backlog?["since"] as? String == Timestamp.format(t(109)))
            #expect(backlog?["reported_seq"] as? Int == 112 && backlog?["reported_time"] as? String == Timestamp.format(t(112)))
            // A range the gap's passes cannot lie in lists none.
            let later = "from=\(Timestamp.format(t(107)))&to=\(Timestamp.format(t(110)))"
            (status, body) = try await Self.get(client, "/kvfv/SQ1/gaps?\(later)")
            #expect(status == .ok && (body["gaps"] as? [Any])?.isEmpty == true)

            // Windows of 5 minutes: [0,5) holds 100…104 (104 lost), [5,10) 105…109 (105 lost), [10,15) the backlog. The gap
            // may lie in either of the first two; the backlog happened after 109 (at 9.5 min): in the last two.
            let range = "from=\(Timestamp.format(hour))&to=\(Timestamp.format(hour + 900_000))&interval=5m"
            (status, body) = try await Self.get(client, "/kvfv/SQ1/avg-speed?\(range)")
            var windows = body["windows"] as? [[String: Any]] ?? []
            #expect(windows.map { $0["count"] as? Int } == [4, 4, 0])
            #expect(windows.map { $0["missing"] as? Int } == [2, 5, 3])
            #expect(windows.map { $0["complete"] as? Bool } == [false, false, false])
            // They arrived over an hour after their buckets ended: late.
            #expect(windows.map { $0["late_count"] as? Int } == [4, 4, 0])
            #expect(windows.map { $0["revised_at"] is NSNull } == [false, false, true])

            // The fleet row shows the camera's sequence state.
            (status, body) = try await Self.get(client, "/kvfv")
            let row = (body["cameras"] as? [[String: Any]])?.first { $0["kvfv_id"] as? String == "SQ1" }
            #expect(row?["last_seq"] as? Int == 109 && row?["missing"] as? Int == 2 && row?["conflicting_duplicates"] as? Int == 0)
            #expect((row?["backlog"] as? [String: Any])?["events"] as? Int == 3)

            // The resends arrive (late: an hour after their buckets), the backlog too; one resend of 100 differs.
            let resent = (Int64(104)...112).map { Self.event("SQ1", seq: $0, t($0)) } + [Self.event("SQ1", seq: 100, t(100) + 1, 61)]
            (status, body) = try await Self.post(client, "/events", "[" + resent.joined(separator: ",") + "]")
            #expect(body["accepted"] as? Int == 5 && body["duplicates"] as? Int == 5)  // 106…109 and 100 were there
            (status, body) = try await Self.get(client, "/kvfv/SQ1/gaps")
            #expect((body["gaps"] as? [Any])?.isEmpty == true && body["backlog"] as? [String: Any] != nil)
            #expect((body["backlog"] as? [String: Any])?["events"] as? Int == 0)
            (status, body) = try await Self.get(client, "/kvfv/SQ1/avg-speed?\(range)")
            windows = body["windows"] as? [[String: Any]] ?? []
            #expect(windows.map { $0["count"] as? Int } == [5, 5, 3])
            #expect(windows.map { $0["missing"] as? Int } == [0, 0, 0])
            // The third window ends after the newest pass the camera told of (112 at 12.5 min): not complete yet.
            #expect(windows.map { $0["complete"] as? Bool } == [true, true, false])
            #expect(windows.map { $0["late_count"] as? Int } == [5, 5, 3])
            #expect(windows.allSatisfy { ($0["revised_at"] as? String).map { Timestamp.parse($0) != nil } == true })
            (status, body) = try await Self.get(client, "/kvfv")
            let after = (body["cameras"] as? [[String: Any]])?.first { $0["kvfv_id"] as? String == "SQ1" }
            #expect(after?["conflicting_duplicates"] as? Int == 1 && after?["missing"] as? Int == 0 && after?["last_seq"] as? Int == 112)

            // CSV carries the same columns.
            try await client.execute(uri: "/kvfv/SQ1/avg-speed?\(range)&format=csv", method: .get) { r in
                let lines = String(buffer: r.body).split(separator: "\n")
                #expect(lines[0].contains(",late_count,revised_at,complete,missing,"))
                let header = lines[0].split(separator: ",", omittingEmptySubsequences: false)
                let complete = try #require(header.firstIndex(of: "complete"))
                func fields(_ i: Int) -> [Substring] { lines[i].split(separator: ",", omittingEmptySubsequences: false) }
                #expect(fields(1)[complete...].prefix(2) == ["true", "0"] && fields(3)[complete...].prefix(2) == ["false", "0"])
            }
            // A camera without seq: completeness is null, its gap ledger empty.
            _ = try await Self.post(
                client, "/events", "{\"kvfv_id\":\"PLAIN\",\"timestamp\":\"\(Timestamp.format(t(100)))\",\"vehicle_speed\":50}")
            (status, body) = try await Self.get(client, "/kvfv/PLAIN/avg-speed?\(range)")
            #expect((body["windows"] as? [[String: Any]])?.allSatisfy { $0["complete"] is NSNull && $0["missing"] is NSNull } == true)
            (status, body) = try await Self.get(client, "/kvfv/PLAIN/gaps")
            #expect(status == .ok && body["sequenced"] as? Bool == false && body["backlog"] is NSNull)
        }
    }

    @Test("invalid_seq per event: negative, fractional, beyond 2^63 - 1, a string; seq_epoch out of range or alone")
    func invalidSeq() async throws {
        try await HTTPContractTests.withServer { client, _ in
            let t = Timestamp.format(HTTPContractTests.now - 60_000)
            let base = "\"kvfv_id\":\"BAD\",\"timestamp\":\"\(t)\",\"vehicle_speed\":50"
            let elements = [
                "{\(base),\"seq\":-1}", "{\(base),\"seq\":1.5}", "{\(base),\"seq\":9223372036854775808}", "{\(base),\"seq\":\"7\"}",
                "{\(base),\"seq\":1,\"seq_epoch\":32768}", "{\(base),\"seq_epoch\":1}", "{\(base),\"seq\":9223372036854775807}",
            ]
            let (status, body) = try await Self.post(client, "/events", "[" + elements.joined(separator: ",") + "]")
            #expect(status == .ok && body["accepted"] as? Int == 1)
            let rejected = body["rejected"] as? [[String: Any]] ?? []
            #expect(rejected.map { $0["index"] as? Int } == [0, 1, 2, 3, 4, 5])
            #expect(rejected.allSatisfy { $0["reason"] as? String == "invalid_seq" })
            #expect(rejected.map { $0["field"] as? String } == ["seq", "seq", "seq", "seq", "seq_epoch", "seq_epoch"])
        }
    }

    @Test("status reports: every bad body is a 400 with a reason, nothing recorded; gaps of an unknown camera are 404")
    func statusErrors() async throws {
        try await HTTPContractTests.withServer { client, _ in
            let t = Timestamp.format(HTTPContractTests.now - 60_000)
            let future = Timestamp.format(HTTPContractTests.now + 3_600_000)
            let cases: [(String, String)] = [
                ("{\"timestamp\":\"\(t)\"}", "missing_field"), ("{\"seq\":5}", "missing_field"),
                ("{\"seq\":-5,\"timestamp\":\"\(t)\"}", "invalid_seq"), ("{\"seq\":\"5\",\"timestamp\":\"\(t)\"}", "invalid_seq"),
                ("{\"seq\":5,\"seq_epoch\":40000,\"timestamp\":\"\(t)\"}", "invalid_seq"),
                ("{\"seq\":5,\"timestamp\":\"yesterday\"}", "invalid_timestamp"), ("{\"seq\":5,\"timestamp\":7}", "invalid_timestamp"),
                ("{\"seq\":5,\"timestamp\":\"\(future)\"}", "in_future"), ("[1]", "malformed_json"), ("{", "malformed_json"),
            ]
            for (body, reason) in cases {
                let (status, answer) = try await Self.post(client, "/kvfv/ST1/status", body)
                #expect(status == .badRequest && answer["reason"] as? String == reason, "\(body)")
            }
            let (big, answer) = try await Self.post(client, "/kvfv/ST1/status", "{\"seq\":5,\"pad\":\"\(String(repeating: "x", count: 5000))\"}")
            #expect(big == .contentTooLarge && answer["reason"] as? String == "body_too_large")
            let (badId, idAnswer) = try await Self.post(client, "/kvfv/bad%20id/status", "{\"seq\":5,\"timestamp\":\"\(t)\"}")
            #expect(badId == .badRequest && idAnswer["reason"] as? String == "invalid_kvfv_id")
            let (unknown, unknownAnswer) = try await Self.get(client, "/kvfv/ST1/gaps")
            #expect(unknown == .notFound && unknownAnswer["reason"] as? String == "unknown_kvfv")
        }
    }
}
