import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowModel
import SpeedflowServer
import SpeedflowTestSupport
import Testing

/// `GET /kvfv` paginated and filtered over a fleet of 50,000+ cameras learnt in random order: pages walk the
/// fleet exactly once in name order, prefixes and health filter, bad parameters are 400 with a reason.
@Suite("Camera list: pages, cursors, filters")
struct CameraListTests {
    static let fleetSize = 50_000
    /// KV00000…KV49999 posted in a shuffled order, plus a few names outside the KV range.
    static func names() -> [String] {
        var random = SeededRandom(seed: 13)
        var names = (0..<fleetSize).map { String(format: "KV%05d", $0) } + ["A-1", "A.2", "Z_9", "KW0"]
        names.shuffle(using: &random)
        return names
    }

    /// Posts one event per camera, in NDJSON batches.
    static func load(_ client: any TestClientProtocol, names: [String]) async throws {
        let t = HTTPContractTests.now - 60_000
        for start in stride(from: 0, to: names.count, by: 10_000) {
            let body = names[start..<min(names.count, start + 10_000)].map {
                "{\"kvfv_id\":\"\($0)\",\"timestamp\":\"\(Timestamp.format(t))\",\"vehicle_speed\":80,\"event_id\":\"e\"}"
            }.joined(separator: "\n")
            try await client.execute(
                uri: "/events", method: .post, headers: [.contentType: "application/x-ndjson"], body: ByteBuffer(string: body)
            ) { r in
                #expect(r.status == .ok)
                #expect(HTTPContractTests.object(r.body)["accepted"] as? Int == min(10_000, names.count - start))
            }
        }
    }

    struct Page {
        var ids: [String]
        var healths: [String]
        var next: String?
        var matched: Int?
        var total: Int
    }

    static func page(_ client: any TestClientProtocol, _ query: String) async throws -> Page {
        try await client.execute(uri: "/kvfv?" + query, method: .get) { r in
            #expect(r.status == .ok, "\(query)")
            let j = try HTTPContractTests.json(r.body)
            let cameras = try #require(j["cameras"] as? [[String: Any]])
            return Page(
                ids: cameras.map { $0["kvfv_id"] as? String ?? "" }, healths: cameras.map { $0["health"] as? String ?? "" },
                next: j["next"] as? String, matched: j["matched"] as? Int, total: try #require(j["total"] as? Int))
        }
    }

    /// Follows `next` from the first page; returns every id listed, the number of requests and each page's size.
    static func walk(_ client: any TestClientProtocol, _ query: String) async throws -> (ids: [String], pages: [Int], first: Page) {
        var ids: [String] = []
        var sizes: [Int] = []
        var first: Page?
        var after: String?
        repeat {
            let p = try await page(client, query + (after.map { "&after=\($0)" } ?? ""))
            first = first ?? p
            ids += p.ids
            sizes.append(p.ids.count)
            after = p.next
            if sizes.count > 1000 { break }
        } while after != nil
        return (ids, sizes, try #require(first))
    }

    @Test("50,000 cameras: pages walk the fleet exactly once in order; prefixes; health; bad parameters")
    func pagesAndFilters() async throws {
        let names = Self.names()
        let sorted = names.sorted()
        try await HTTPContractTests.withServer(maxBodyBytes: 16 << 20) { client, _ in
            try await Self.load(client, names: names)

            let all = try await Self.walk(client, "limit=1000")
            #expect(all.ids == sorted, "the pages are not the fleet in order, each camera once")
            #expect(all.pages.allSatisfy { $0 <= 1000 } && all.pages.count == (sorted.count + 999) / 1000)
            #expect(all.first.total == sorted.count && all.first.matched == sorted.count)

            // The default page: the first 100.
            let first = try await Self.page(client, "")
            #expect(first.ids == Array(sorted.prefix(100)) && first.next == sorted[99])

            // Prefix: exactly the cameras with it, in order, counted; an odd page size.
            let kv012 = try await Self.walk(client, "prefix=KV012&limit=7")
            #expect(kv012.ids == sorted.filter { $0.hasPrefix("KV012") } && kv012.ids.count == 100)
            #expect(kv012.first.matched == 100 && kv012.first.total == sorted.count)
            let a = try await Self.page(client, "prefix=A")
            #expect(a.ids == ["A-1", "A.2"] && a.next == nil && a.matched == 2)
            let none = try await Self.page(client, "prefix=KV9")
            #expect(none.ids.isEmpty && none.next == nil && none.matched == 0)
            // A cursor between names, and one past the end.
            let mid = try await Self.page(client, "after=KV00099x&limit=2")
            #expect(mid.ids == ["KV00100", "KV00101"])
            let past = try await Self.page(client, "after=zzz")
            #expect(past.ids.isEmpty && past.next == nil)

            // Health: every camera is live; none is silent. A filter reads at most 10,000 records per page, so
            // the walk for a health nobody has is a few empty pages, not one scan of the fleet.
            let live = try await Self.walk(client, "health=live&limit=1000")
            #expect(live.ids == sorted && live.first.matched == nil)
            let silent = try await Self.walk(client, "health=silent&limit=1000")
            #expect(silent.ids.isEmpty && silent.pages.count <= sorted.count / 10_000 + 1, "\(silent.pages)")
            let livePrefix = try await Self.page(client, "health=live&prefix=KV4999")
            #expect(livePrefix.ids == (0..<10).map { "KV4999\($0)" } && livePrefix.healths.allSatisfy { $0 == "live" })

            for (query, reason) in [
                ("limit=0", "invalid_limit"), ("limit=1001", "invalid_limit"), ("limit=ten", "invalid_limit"),
                ("limit=-5", "invalid_limit"), ("after=KV%2F..", "invalid_cursor"), ("prefix=a%20b", "invalid_prefix"),
                ("health=sleepy", "invalid_health"),
            ] {
                try await client.execute(uri: "/kvfv?" + query, method: .get) { r in
                    #expect(r.status == .badRequest, "\(query)")
                    #expect(HTTPContractTests.object(r.body)["reason"] as? String == reason, "\(query)")
                }
            }
        }
    }
}
