import AsyncHTTPClient
import Foundation
import GRDB
import NIOCore
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Rejections per camera through the real binary, killed with `kill -9` three times while a client posts batches
/// with rejections and resends what was not acknowledged. Rejections count submissions: an acknowledged request
/// counts once; an attempt that got no answer may or may not have been made durable before the kill, and counts
/// once if it was. So per camera and reason the durable count lies between the acknowledged answers' tallies and
/// those plus the tallies of the unanswered attempts — and equals the first where no unanswered attempt had any.
@Suite("Crash recovery of rejection counts", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct RejectionCrashTests {
    enum Sent { case acknowledged([String: [RejectionReason: Int64]]), unanswered, refused }

    /// Posts one NDJSON body; on `200` the rejections its answer lists, by the camera the rejected line named.
    static func post(_ url: String, _ body: String) async -> Sent {
        var request = HTTPClientRequest(url: url + "/events")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.body = .bytes(ByteBuffer(string: body))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)),
            let bytes = try? await response.body.collect(upTo: 1 << 20)
        else { return .unanswered }
        guard response.status == .ok,
            let answer = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
        else { return .refused }
        let lines = body.split(separator: "\n").map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        var tallies: [String: [RejectionReason: Int64]] = [:]
        for r in answer["rejected"] as? [[String: Any]] ?? [] {
            guard let index = r["index"] as? Int, let reason = RejectionReason(rawValue: r["reason"] as? String ?? ""),
                let camera = lines[index]?["kvfv_id"] as? String, reason != .invalidKvfvId
            else { continue }
            tallies[camera, default: [:]][reason, default: 0] += 1
        }
        return .acknowledged(tallies)
    }

    @Test("kill -9 three times mid-stream, resend what was not acknowledged: durable rejections = acknowledged ones, plus at most the unanswered attempts'")
    func killNine() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"])
        defer { server.remove() }
        try await server.start()
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        let cameras = ["KR0", "KR1", "KR2"]
        let requests = (0..<120).map { i in
            RejectionOracle.body(
                seed: UInt64(1000 + i), arrivalMs: started, cameras: i % 10 == 9 ? ["KRBAD"] : cameras, elements: 1 + i % 17,
                allRejected: i % 4 == 3 || i % 10 == 9)
        }
        var acknowledged: [String: [RejectionReason: Int64]] = [:]
        var unanswered: [String: [RejectionReason: Int64]] = [:]
        let kills = Set([30, 60, 90])
        var killed = 0
        var next = 0
        while next < requests.count {
            let (body, expected) = requests[next]
            if kills.contains(next) && killed < kills.count {
                // Killed while this request is in flight: it may or may not have landed; it is sent again.
                let url = server.url
                let inFlight = Task { await Self.post(url, body) }
                server.kill9()
                killed += 1
                switch await inFlight.value {
                case .acknowledged(let t): acknowledged.merge(t) { $0.merging($1, uniquingKeysWith: +) }
                case .unanswered: unanswered.merge(expected) { $0.merging($1, uniquingKeysWith: +) }
                case .refused: break
                }
                try await server.start()
            }
            switch await Self.post(server.url, body) {
            case .acknowledged(let tallies):
                #expect(tallies == expected, "request \(next): the answer lists the rejections the body was built with")
                acknowledged.merge(tallies) { $0.merging($1, uniquingKeysWith: +) }
                next += 1
                // Paced so that flushes (every 200 ms) land between kills: the store holds some, the log replays the rest.
                try await Task.sleep(for: .milliseconds(10))
            case .unanswered:
                unanswered.merge(expected) { $0.merging($1, uniquingKeysWith: +) }
                try await Task.sleep(for: .milliseconds(50))
            case .refused:
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(killed == 3)
        #expect(acknowledged["KRBAD"] != nil, "a camera that sent only rejected events")
        // A last crash, then a restart (the replay) and a clean stop: the store holds everything durable.
        server.kill9()
        try await server.start()
        server.stop()
        let ended = Int64(Date().timeIntervalSince1970 * 1000)

        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: server.dataDirectory.appendingPathComponent("store.sqlite").path, configuration: configuration)
        let (rows, low, high) = try await queue.read { db -> ([(String, String, Int64)], Int64?, Int64?) in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT c.kvfv_id, r.reason, sum(r.count) FROM camera_rejection r JOIN camera c ON c.id = r.camera
                    GROUP BY c.kvfv_id, r.reason
                    """
            ).map { (row: Row) -> (String, String, Int64) in (row[0], row[1], row[2]) }
            let range = try Row.fetchOne(db, sql: "SELECT min(bucket), max(bucket) FROM camera_rejection")
            return (rows, range?[0], range?[1])
        }
        var durable: [String: [RejectionReason: Int64]] = [:]
        for (camera, code, n) in rows {
            durable[camera, default: [:]][try #require(RejectionReason(rawValue: code)), default: 0] += n
        }
        // Counted by arrival time: every bucket within the run.
        #expect(try #require(low) >= Bucket.index(ofTimestamp: started))
        #expect(try #require(high) <= Bucket.index(ofTimestamp: ended))
        for camera in Set(acknowledged.keys).union(durable.keys).union(unanswered.keys).sorted() {
            for reason in RejectionReason.allCases {
                let a = acknowledged[camera]?[reason] ?? 0, u = unanswered[camera]?[reason] ?? 0, d = durable[camera]?[reason] ?? 0
                #expect(d >= a && d <= a + u, "\(camera) \(reason.rawValue): durable \(d), acknowledged \(a), unanswered attempts \(u)")
            }
        }
        #expect(server.logTail(400_000).contains("Replaying log"), "a restart had log to replay")
    }
}
