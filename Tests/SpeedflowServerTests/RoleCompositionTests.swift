import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowServer
import SpeedflowStore
import Synchronization
import Testing

/// An event sink that keeps what it was given (an ingest node's Kafka sink, without Kafka).
final class RecordingSink: EventSink {
    let events = Mutex<[CameraEvent]>([])
    let refuse = Atomic<Bool>(false)

    let writers = Mutex<[String?]>([])

    func ingest(
        _ events: [CameraEvent], reports: [CameraReport], rejections: [RejectionTally], arrivalMs: Int64, writer: String?
    ) async throws(IngestError) -> IngestOutcome {
        if refuse.load(ordering: .relaxed) { throw IngestError(.overloaded, "test") }
        self.events.withLock { $0 += events }
        writers.withLock { $0.append(writer) }
        return IngestOutcome(accepted: events.count)
    }

    var queueDepth: Int { 0 }
}

/// Each scale-out role is a composition of parts; the HTTP node serves what its parts can and names the role
/// for the rest.
@Suite("Roles: HTTP nodes as compositions")
struct RoleCompositionTests {
    static func body(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]) ?? [:]
    }

    @Test("an ingest node takes events into its sink, records statistics, and answers queries 404 not_served_here")
    func ingestNode() async throws {
        let sink = RecordingSink()
        let stats = IngestStats(nowMs: 0)
        let node = HTTPNode(
            role: "ingest", intake: Intake(sink: sink, stats: stats, policy: ValidationPolicy(), cameras: nil), queries: nil,
            stats: stats, status: NodeStatus())
        let router = SpeedflowHTTP.router(node: node, configuration: ServerConfiguration(), prometheus: nil)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let events = "[{\"kvfv_id\":\"K1\",\"timestamp\":\"\(Timestamp.format(now - 1000))\",\"vehicle_speed\":70},"
            + "{\"kvfv_id\":\"K1\",\"timestamp\":\"\(Timestamp.format(now - 1000))\",\"vehicle_speed\":-1}]"
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: events)) { r in
                #expect(r.status == .ok)
                #expect(Self.body(r.body)["accepted"] as? Int == 1)
            }
            sink.refuse.store(true, ordering: .relaxed)
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: events)) { r in
                #expect(r.status == .serviceUnavailable)
            }
            for uri in ["/kvfv", "/kvfv/K1/avg-speed?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"] {
                try await client.execute(uri: uri, method: .get) { r in
                    #expect(r.status == .notFound)
                    #expect(Self.body(r.body)["reason"] as? String == "not_served_here")
                    #expect((Self.body(r.body)["message"] as? String)?.contains("ingest") == true)
                }
            }
            try await client.execute(uri: "/stats", method: .get) { r in
                #expect(r.status == .ok)
                let j = Self.body(r.body)
                // The refused request is counted nowhere: its client retries and is counted then.
                #expect(j["accepted_total"] as? Int == 1)
                #expect(j["rejected_total"] as? Int == 1)
            }
        }
        #expect(sink.events.withLock { $0.map(\.speed) } == [70])
    }

    @Test("an API node answers queries from the store alone, learns cameras written after it started, and refuses events")
    func apiNode() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("speedflow-roles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        // The writer: an aggregator, as in `speedflow aggregate` with a SQLite store.
        let writer = try Aggregator(store: try SQLiteStore(path: path))
        let reader = try SQLiteStore(path: path)
        let queries = CameraQueries(view: try StoreFollower(store: reader), store: reader, configuration: EngineConfiguration())
        let node = HTTPNode(
            role: "api", intake: nil, queries: queries, stats: IngestStats(nowMs: 0), status: NodeStatus())
        let router = SpeedflowHTTP.router(node: node, configuration: ServerConfiguration(), prometheus: nil)
        let t = Int64(Date().timeIntervalSince1970 * 1000) / 300_000 * 300_000 - 600_000
        let record = EventRecord(arrivalMs: t + 1000, events: [
            CameraEvent(kvfvId: "K9", timestampMs: t, speed: 60, eventId: "a"),
            CameraEvent(kvfvId: "K9", timestampMs: t + 1, speed: 80, eventId: "b"),
        ])
        _ = try writer.apply(record, endOffset: 1)
        try writer.flushSynchronously()
        let uri = "/kvfv/K9/avg-speed?from=\(Timestamp.format(t))&to=\(Timestamp.format(t + 300_000))"
        try await Application(router: router).test(.router) { client in
            // Written after the node started: learnt on the first ask (or within 200 ms of it).
            let deadline = ContinuousClock.now + .seconds(30)
            var status = HTTPResponse.Status.notFound
            var answer: [String: Any] = [:]
            while status != .ok && ContinuousClock.now < deadline {
                try await client.execute(uri: uri, method: .get) { r in
                    status = r.status
                    answer = Self.body(r.body)
                }
                if status != .ok { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(status == .ok)
            let windows = answer["windows"] as? [[String: Any]] ?? []
            #expect(windows.first?["count"] as? Int == 2)
            #expect(windows.first?["avg_speed"] as? Double == 70)
            try await client.execute(uri: "/events", method: .post, body: ByteBuffer(string: "[]")) { r in
                #expect(r.status == .notFound)
                #expect(Self.body(r.body)["reason"] as? String == "not_served_here")
            }
        }
    }
}
