import Foundation
import SpeedflowModel
import SpeedflowServer
import SpeedflowTestSupport
import Synchronization
import Testing

/// The live streams against a real server in this process (engine, log, SQLite, the HTTP server behind the
/// connection guard, run by a service group with the drain service), read by `curl -N`: what they send, what
/// they coalesce, who they drop, and that they end with the server. Every wait is on a condition.
@Suite("Live streams: Server-Sent Events of window and camera changes")
struct LiveStreamTests {
    static let minute: Int64 = 60_000
    static let fiveMinutes: Int64 = 300_000

    /// `GET path` with curl: status and body.
    static func get(_ server: LiveServer, _ path: String) async throws -> (status: Int, body: String) {
        let url = server.url + path
        let r = try await offCooperativePool {
            try ChildProcess.run("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", url])
        }
        let text = r.stdout
        guard let newline = text.lastIndex(of: "\n") else { return (0, text) }
        return (Int(text[text.index(after: newline)...]) ?? 0, String(text[..<newline]))
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    static func windowStart(_ ms: Int64) -> Int64 { ms - ((ms % fiveMinutes) + fiveMinutes) % fiveMinutes }

    @Test("the snapshot is the avg-speed answer; a late event for an old window arrives as a window event with the new count")
    func lateEventRevisesOldWindow() async throws {
        try await LiveServer.with { server in
            let now = LiveServer.now()
            let old = Self.windowStart(now - 3 * 60 * Self.minute) + 1000
            #expect(await server.post("[\(LiveServer.event("KV1", old, 80, id: "a")),\(LiveServer.event("KV1", old + 1, 90, id: "b")),\(LiveServer.event("KV1", now - 1000, 70, id: "c"))]") == 200)
            let from = Timestamp.format(now - 6 * 60 * Self.minute)
            let to = Timestamp.format(now)
            let query = "from=\(from)&to=\(to)&interval=5m"
            let curl = try await server.curl("/kvfv/KV1/avg-speed/stream?\(query)", includeHead: true)
            try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            let head = curl.text.components(separatedBy: "\r\n\r\n")[0]
            #expect(head.hasPrefix("HTTP/1.1 200"))
            #expect(head.lowercased().contains("content-type: text/event-stream"))
            #expect(head.lowercased().contains("cache-control: no-cache"))
            #expect(curl.sse.retry == server.feeds.configuration.retryMs)
            let answer = try await Self.get(server, "/kvfv/KV1/avg-speed?\(query)")
            #expect(answer.status == 200)
            let snapshot = try #require(curl.sse.named("snapshot").first)
            #expect(snapshot.data == answer.body, "the snapshot is the same JSON object as GET /kvfv/{id}/avg-speed")
            #expect(snapshot.id.flatMap { Int64($0) } != nil)

            // A late event for the window three hours ago.
            #expect(await server.post(LiveServer.event("KV1", old + 2, 100, id: "late")) == 200)
            let oldStart = Timestamp.format(Self.windowStart(old))
            try await waitUntil("a window event revising \(oldStart) to 3 events", timeout: .seconds(20)) {
                curl.sse.named("window").contains { $0.json["start"] as? String == oldStart && $0.json["count"] as? Int == 3 }
            }
            let revised = try #require(curl.sse.named("window").last { $0.json["start"] as? String == oldStart })
            #expect(revised.json["avg_speed"] as? Double == 90)
            // The same object the answer now lists for that window.
            let windows = Self.object(try await Self.get(server, "/kvfv/KV1/avg-speed?\(query)").body)["windows"] as? [[String: Any]] ?? []
            let listed = try #require(windows.first { $0["start"] as? String == oldStart })
            #expect(NSDictionary(dictionary: listed).isEqual(to: revised.json))
            // Only the revised window was sent: nothing else changed.
            #expect(curl.sse.named("window").allSatisfy { $0.json["start"] as? String == oldStart })
        }
    }

    @Test("parameters and errors are those of GET /kvfv/{id}/avg-speed, answered before any stream begins")
    func errorsAsTheAnswer() async throws {
        try await LiveServer.with { server in
            let now = LiveServer.now()
            #expect(await server.post(LiveServer.event("KV1", now - 1000, 80, id: "a")) == 200)
            let from = Timestamp.format(now - 3_600_000), to = Timestamp.format(now)
            let cases: [(String, String)] = [
                ("KV1", "to=\(to)"),  // missing from
                ("KV1", "from=yesterday&to=\(to)"),
                ("KV1", "from=\(from)&to=\(to)&interval=7m"),
                ("KV1", "from=\(from)&to=\(to)&tz=Mars/Olympus"),
                ("KV1", "from=\(to)&to=\(from)"),
                ("KV1", "from=2020-01-01T00:00:00Z&to=\(to)"),  // too many windows
                ("KV%20X", "from=\(from)&to=\(to)"),
                ("NOBODY", "from=\(from)&to=\(to)"),
            ]
            for (camera, query) in cases {
                let answer = try await Self.get(server, "/kvfv/\(camera)/avg-speed?\(query)")
                let stream = try await Self.get(server, "/kvfv/\(camera)/avg-speed/stream?\(query)")
                #expect(stream.status == answer.status, "\(camera)?\(query)")
                #expect(Self.object(stream.body)["reason"] as? String == Self.object(answer.body)["reason"] as? String, "\(camera)?\(query): \(stream.body)")
                #expect((400...404).contains(stream.status), "\(camera)?\(query)")
            }
            // Without `to` the range is live, so a `from` in the future is an empty range.
            let future = try await Self.get(server, "/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now + 3_600_000))")
            #expect(future.status == 400 && Self.object(future.body)["reason"] as? String == "invalid_range")
            let csv = try await Self.get(server, "/kvfv/KV1/avg-speed/stream?from=\(from)&format=csv")
            #expect(csv.status == 400 && Self.object(csv.body)["reason"] as? String == "invalid_format")
            let fleet = try await Self.get(server, "/kvfv/stream?limit=0")
            #expect(fleet.status == 400 && Self.object(fleet.body)["reason"] as? String == "invalid_limit")
            // Nothing was left subscribed by the refused requests.
            try await waitUntil("no feed left", timeout: .seconds(10)) { server.feeds.feedCount == 0 }
        }
    }

    @Test("many events in one poll period are one window message per window")
    func coalesced() async throws {
        // Polls only when the test asks: everything posted before a poll is in that one poll.
        try await LiveServer.with(feeds: .init(pollInterval: .seconds(3600))) { server in
            let now = LiveServer.now()
            let a = Self.windowStart(now - 60 * Self.minute), b = Self.windowStart(now - 30 * Self.minute)
            #expect(await server.post(LiveServer.event("KV1", a + 1, 50, id: "seed")) == 200)
            let curl = try await server.curl("/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 2 * 3_600_000))")
            try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            for i in 0..<20 {
                #expect(await server.post("[\(LiveServer.event("KV1", a + 1000 + Int64(i), 60, id: "a\(i)")),\(LiveServer.event("KV1", b + 1000 + Int64(i), 70, id: "b\(i)"))]") == 200)
            }
            server.feeds.pollNow()
            let (sa, sb) = (Timestamp.format(a), Timestamp.format(b))
            try await waitUntil("both windows sent with their final counts", timeout: .seconds(20)) {
                let w = curl.sse.named("window")
                return w.contains { $0.json["start"] as? String == sa && $0.json["count"] as? Int == 21 }
                    && w.contains { $0.json["start"] as? String == sb && $0.json["count"] as? Int == 20 }
            }
            // (A poll that crosses a 5-minute boundary also sends the new current window: only a and b are counted.)
            let windows = curl.sse.named("window").filter { [sa, sb].contains($0.json["start"] as? String) }
            #expect(windows.count == 2, "one message per changed window: \(windows.map(\.data))")
            #expect(Set(windows.compactMap(\.id)).count == 1, "both from the same poll")
        }
    }

    @Test("with the real poller, one window is sent at most once per 250 ms however fast it changes")
    func atMostOncePerPeriod() async throws {
        try await LiveServer.with { server in
            let now = LiveServer.now()
            let a = Self.windowStart(now - 60 * Self.minute)
            #expect(await server.post(LiveServer.event("KV1", a + 1, 50, id: "seed")) == 200)
            let curl = try await server.curl("/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(a))&to=\(Timestamp.format(a + Self.fiveMinutes))")
            try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            for i in 0..<60 { #expect(await server.post(LiveServer.event("KV1", a + 1000 + Int64(i), 60, id: "e\(i)")) == 200) }
            try await waitUntil("the final count", timeout: .seconds(20)) {
                curl.sse.named("window").contains { $0.json["count"] as? Int == 61 }
            }
            let ids = curl.sse.named("window").compactMap { $0.id.flatMap { Int64($0) } }
            #expect(ids.count < 61, "coalesced: \(ids.count) messages for 60 events")
            // `id:` is the server time (ms) when the poll began; polls start at least 250 ms apart.
            for (x, y) in zip(ids, ids.dropFirst()) { #expect(y - x >= 240, "\(ids)") }
        }
    }

    @Test("without `to` the range follows the clock: a new window is sent when the clock enters it")
    func liveRangeGrows() async throws {
        let clock = Atomic<Int64>(Self.windowStart(LiveServer.now()) + 2 * Self.minute)
        try await LiveServer.with(clock: { clock.load(ordering: .relaxed) }) { server in
            let t = clock.load(ordering: .relaxed)
            #expect(await server.post(LiveServer.event("KV1", t - 1000, 80, id: "a")) == 200)
            let curl = try await server.curl("/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(t - 30 * Self.minute))")
            try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            let snapshot = try #require(curl.sse.named("snapshot").first).json
            let windows = snapshot["windows"] as? [[String: Any]] ?? []
            #expect(windows.count == 7 && windows.last?["start"] as? String == Timestamp.format(Self.windowStart(t)))
            #expect(snapshot["to"] as? String == Timestamp.format(Self.windowStart(t) + Self.fiveMinutes))
            clock.store(t + Self.fiveMinutes, ordering: .relaxed)
            let next = Timestamp.format(Self.windowStart(t) + Self.fiveMinutes)
            try await waitUntil("the next window", timeout: .seconds(20)) {
                curl.sse.named("window").contains { $0.json["start"] as? String == next && $0.json["count"] as? Int == 0 }
            }
            #expect(await server.post(LiveServer.event("KV1", t + Self.fiveMinutes - 1000, 90, id: "b")) == 200)
            try await waitUntil("its first event", timeout: .seconds(20)) {
                curl.sse.named("window").contains { $0.json["start"] as? String == next && $0.json["count"] as? Int == 1 }
            }
        }
    }

    @Test("a quiet stream gets heartbeats and outlives the idle timeout")
    func quietStreamKept() async throws {
        try await LiveServer.with(feeds: .init(heartbeatInterval: .milliseconds(200)), idleTimeoutMs: 300) { server in
            let now = LiveServer.now()
            #expect(await server.post(LiveServer.event("KV1", now - 1000, 80, id: "a")) == 200)
            let curl = try await server.curl("/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 3_600_000))")
            // Ten heartbeats: at least 2 s of silence, more than six idle timeouts.
            try await waitUntil("ten heartbeats", timeout: .seconds(30)) { curl.sse.comments >= 10 }
            #expect(!curl.ended)
            #expect(await server.post(LiveServer.event("KV1", now - 500, 90, id: "b")) == 200)
            try await waitUntil("the change on the same stream", timeout: .seconds(20)) {
                curl.sse.named("window").contains { $0.json["count"] as? Int == 2 }
            }
        }
    }

    @Test("a client that goes away leaves its feed to the others; the last leaves no poller")
    func clientsLeave() async throws {
        try await LiveServer.with { server in
            let now = LiveServer.now()
            #expect(await server.post(LiveServer.event("KV1", now - 1000, 80, id: "a")) == 200)
            let path = "/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 3_600_000))&to=\(Timestamp.format(now + 60_000))"
            let one = try await server.curl(path), two = try await server.curl(path)
            try await waitUntil("both subscribed", timeout: .seconds(20)) {
                !one.sse.named("snapshot").isEmpty && !two.sse.named("snapshot").isEmpty
            }
            #expect(server.feeds.feedCount == 1 && server.feeds.subscriberCount == 2)
            one.stop()
            try await waitUntil("one subscriber left", timeout: .seconds(10)) { server.feeds.subscriberCount == 1 }
            #expect(await server.post(LiveServer.event("KV1", now - 500, 90, id: "b")) == 200)
            try await waitUntil("the other still served", timeout: .seconds(20)) {
                two.sse.named("window").contains { $0.json["count"] as? Int == 2 }
            }
            two.stop()
            try await waitUntil("no poller left", timeout: .seconds(10)) {
                server.feeds.feedCount == 0 && server.feeds.subscriberCount == 0
            }
        }
    }

    @Test("graceful shutdown ends every stream with an end event, and the server stops")
    func shutdownEndsStreams() async throws {
        let stopped = Atomic<Bool>(false)
        try await LiveServer.with { server in
            let now = LiveServer.now()
            #expect(await server.post(LiveServer.event("KV1", now - 1000, 80, id: "a")) == 200)
            var curls: [CurlStream] = []
            for path in ["/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 3_600_000))", "/kvfv/stream"] {
                for _ in 0..<2 { curls.append(try await server.curl(path)) }
            }
            let all = curls
            try await waitUntil("every stream's snapshot", timeout: .seconds(20)) { all.allSatisfy { !$0.sse.named("snapshot").isEmpty } }
            await server.group.triggerGracefulShutdown()
            // curl would wait 120 s for a stream that does not end.
            try await waitUntil("every stream ended by the server", timeout: .seconds(15)) { all.allSatisfy(\.ended) }
            for c in all {
                #expect(c.sse.named("end").last?.json["reason"] as? String == "shutting_down", "\(c.text.suffix(200))")
            }
            try await waitUntil("no poller left", timeout: .seconds(10)) { server.feeds.feedCount == 0 }
            stopped.store(true, ordering: .relaxed)
        }
        let didStop = stopped.load(ordering: .relaxed)
        #expect(didStop)
    }

    @Test("a reader that stops reading is disconnected once its writes stall; the others keep their stream")
    func stalledReaderDropped() async throws {
        try await LiveServer.with(feeds: .init(stallTimeout: .seconds(1))) { server in
            let now = LiveServer.now()
            // 6 days of 5-minute windows (1,728): every round of events below changes each of them.
            let first = Self.windowStart(now - 6 * 24 * 60 * Self.minute)
            let windows = Int((Self.windowStart(now) - first) / Self.fiveMinutes)
            #expect(await server.post(LiveServer.event("KV1", now - 1000, 80, id: "seed")) == 200)
            let path = "/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(first))&to=\(Timestamp.format(first + Int64(windows) * Self.fiveMinutes))"
            let reader = try await server.curl(path)
            // A client with a tiny receive buffer that never reads after its request.
            let port = server.port
            let stuck = await HTTPHardeningTests.blocking { () -> RawSocket? in
                guard let s = RawSocket(port: port, receiveBuffer: 4096) else { return nil }
                guard s.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n") else { return nil }
                return s
            }
            #expect(stuck != nil)
            try await waitUntil("both subscribed", timeout: .seconds(20)) {
                server.feeds.subscriberCount == 2 && !reader.sse.named("snapshot").isEmpty
            }
            let opened = server.connectionGuard.openConnections
            var round = 0
            // Each round sends ~0.4 MB of window events to each subscriber; the stuck one's buffers fill up.
            try await waitUntil("the stuck reader disconnected", timeout: .seconds(120), interval: .milliseconds(10)) {
                if server.feeds.subscriberCount == 1 { return true }
                round += 1
                let body = "[" + (0..<windows).map { i in
                    LiveServer.event("KV1", first + Int64(i) * Self.fiveMinutes + 1000 + Int64(round), 80, id: "r\(round)-\(i)")
                }.joined(separator: ",") + "]"
                _ = await server.post(body)
                return server.feeds.subscriberCount == 1
            }
            try await waitUntil("its connection closed", timeout: .seconds(10)) {
                server.connectionGuard.openConnections < opened
            }
            // The reader saw every round, to the last.
            let lastRound = round
            let firstStart = Timestamp.format(first)
            try await waitUntil("the reader has the last round", timeout: .seconds(30)) {
                reader.sse.named("window").contains { $0.json["start"] as? String == firstStart && $0.json["count"] as? Int == lastRound }
            }
            #expect(!reader.ended)
            _ = stuck
        }
    }

    @Test("the fleet stream: the GET /kvfv page, then changed cameras, and a new snapshot when the page changes")
    func fleetStream() async throws {
        try await LiveServer.with { server in
            let now = LiveServer.now()
            #expect(await server.post(LiveServer.event("KVF1", now - 1000, 80, id: "a")) == 200)
            let curl = try await server.curl("/kvfv/stream?prefix=KVF&limit=10")
            try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            var snapshot = try #require(curl.sse.named("snapshot").first).json
            var page = Self.object(try await Self.get(server, "/kvfv?prefix=KVF&limit=10").body)
            snapshot["server_time"] = nil
            page["server_time"] = nil
            #expect(NSDictionary(dictionary: snapshot).isEqual(to: page), "the snapshot is the GET /kvfv page")
            #expect(await server.post(LiveServer.event("KVF1", now - 500, 90, id: "b")) == 200)
            try await waitUntil("a camera event for KVF1", timeout: .seconds(20)) {
                curl.sse.named("camera").contains { $0.json["kvfv_id"] as? String == "KVF1" && $0.json["accepted"] as? Int == 2 }
            }
            #expect(await server.post(LiveServer.event("KVF2", now - 500, 90, id: "c")) == 200)
            try await waitUntil("a new snapshot with KVF2", timeout: .seconds(20)) {
                curl.sse.named("snapshot").count >= 2
                    && (curl.sse.named("snapshot").last?.json["cameras"] as? [[String: Any]])?.count == 2
            }
        }
    }
}
