import Foundation
import SpeedflowModel
import SpeedflowServer
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Many event-stream clients on one thread: `count` sockets, each with one request sent, read together with
/// poll(2). Use it inside `HTTPHardeningTests.blocking` only.
final class SSEClients: @unchecked Sendable {
    // @unchecked: used by one thread at a time (each blocking body hands it on when it returns).
    var sockets: [RawSocket?]
    var received: [[UInt8]]

    init(port: Int, path: String, count: Int) {
        received = Array(repeating: [], count: count)
        let request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"
        sockets = (0..<count).map { _ in RawSocket(port: port).flatMap { $0.send(request) ? $0 : nil } }
    }

    var open: [Int] { sockets.indices.filter { sockets[$0] != nil } }

    func close(_ i: Int) { sockets[i] = nil }

    /// Reads what arrives on every open socket until `done` holds for every open one or `limit` seconds pass.
    func pump(limit: Double, until done: (_ text: String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(limit)
        var satisfied = Set<Int>()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            for i in open where !satisfied.contains(i) && done(String(decoding: received[i], as: UTF8.self)) { satisfied.insert(i) }
            if satisfied.count == open.count { return true }
            guard Date() < deadline else { return false }
            var fds = open.map { pollfd(fd: sockets[$0]!.fd, events: Int16(POLLIN), revents: 0) }
            let indices = open
            guard Glibc.poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
            for (k, p) in fds.enumerated() where p.revents != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(p.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { received[indices[k]].append(contentsOf: buffer[..<n]) }
            }
        }
    }
}

/// 1,000 subscribers of one view: one feed, one poll per change, every subscriber served, and subscribers that
/// go away leave the others alone and no poller behind. In a `swift test` process of its own (scripts/test): it
/// holds 2,000 sockets, and Foundation's Process.run can crash when another test spawns a child meanwhile (see
/// ConnectionGuardTests).
@Suite("Live streams: 1,000 subscribers of one view")
struct LiveStreamFanoutTests {
    @Test("1,000 subscribers cost one feed and one poll per change; 100 leaving disturb nobody; the last leaves no poller")
    func thousandSubscribers() async throws {
        // Polls only when the test asks, so polls can be counted exactly.
        try await LiveServer.with(feeds: .init(pollInterval: .seconds(3600))) { server in
            let now = LiveServer.now()
            let old = LiveStreamTests.windowStart(now - 2 * 3_600_000)
            #expect(await server.post("[\(LiveServer.event("KV1", old + 1, 80, id: "a")),\(LiveServer.event("KV1", old + 2, 90, id: "b"))]") == 200)
            let path = "/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 3 * 3_600_000))&to=\(Timestamp.format(now))"
            let port = server.port
            let clients = await HTTPHardeningTests.blocking { SSEClients(port: port, path: path, count: 1000) }
            #expect(clients.open.count == 1000)
            let subscribed = await HTTPHardeningTests.blocking {
                clients.pump(limit: 120) { SSEText($0.components(separatedBy: "\r\n\r\n").dropFirst().joined()).named("snapshot").count == 1 }
            }
            #expect(subscribed, "every client got its snapshot")
            #expect(server.feeds.feedCount == 1 && server.feeds.subscriberCount == 1000)

            let start = Timestamp.format(old)
            func revised(to count: Int) -> @Sendable (String) -> Bool {
                { text in
                    SSEText(text.components(separatedBy: "\r\n\r\n").dropFirst().joined()).named("window")
                        .contains { $0.json["start"] as? String == start && $0.json["count"] as? Int == count }
                }
            }
            let polls = server.feeds.pollCount
            #expect(await server.post(LiveServer.event("KV1", old + 3, 100, id: "late-1")) == 200)
            server.feeds.pollNow()
            let three = revised(to: 3), four = revised(to: 4)
            let all = await HTTPHardeningTests.blocking { clients.pump(limit: 120, until: three) }
            #expect(all, "every one of the 1,000 clients got the revision")
            #expect(server.feeds.pollCount == polls + 1, "one poll for 1,000 subscribers")

            // 100 go away; the others keep their stream, and the feed runs on.
            await HTTPHardeningTests.blocking { for i in 0..<100 { clients.close(i * 10) } }
            try await waitUntil("900 subscribers", timeout: .seconds(20)) { server.feeds.subscriberCount == 900 }
            #expect(server.feeds.feedCount == 1)
            #expect(await server.post(LiveServer.event("KV1", old + 4, 110, id: "late-2")) == 200)
            server.feeds.pollNow()
            let rest = await HTTPHardeningTests.blocking { clients.pump(limit: 120, until: four) }
            #expect(rest, "every remaining client got the next revision")
            #expect(clients.open.count == 900)

            await HTTPHardeningTests.blocking { for i in clients.open { clients.close(i) } }
            try await waitUntil("no subscriber and no poller left", timeout: .seconds(30)) {
                server.feeds.subscriberCount == 0 && server.feeds.feedCount == 0
            }
            try await waitUntil("every stream connection closed", timeout: .seconds(30)) {
                server.connectionGuard.openConnections == 0
            }
        }
    }
}
