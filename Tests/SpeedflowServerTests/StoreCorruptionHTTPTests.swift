import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import NIOCore
import SpeedflowEngine
import SpeedflowModel
@testable import SpeedflowStore
import Testing

/// A damaged store is answered as JSON `500 store_corrupt`, never as an empty body or a zero (issue #11, item 3).
@Suite("HTTP: store corruption")
struct StoreCorruptionHTTPTests {
    @Test("a camera-day whose rows vanished answers store_corrupt on avg-speed and /kvfv")
    func vanishedRows() async throws {
        try await HTTPContractTests.withServer { client, fx in
            let now = HTTPContractTests.now
            var events: [CameraEvent] = []
            for i in 0..<200 {
                events.append(CameraEvent(
                    kvfvId: "KV7", timestampMs: now - 600_000 - Int64(i) * 17_000, speed: 60 + Double(i % 40),
                    eventId: "e\(i)", lane: 1, plate: nil))
            }
            #expect(try await fx.engine.ingest(events, arrivalMs: now).accepted == 200)
            try fx.engine.flushSynchronously()
            // A lost page, as far as the rows are concerned: rows gone, their summary still there.
            let store = try #require(fx.engine.store as? SQLiteStore)
            try await store.pool.write { db in
                try db.execute(sql: "DELETE FROM bucket WHERE (camera, bucket) IN (SELECT camera, bucket FROM bucket LIMIT 3)")
            }
            let from = HTTPContractTests.iso(now - 3 * 3_600_000), to = HTTPContractTests.iso(now + 600_000)
            try await client.execute(uri: "/kvfv/KV7/avg-speed?from=\(from)&to=\(to)&interval=1h", method: .get) { r in
                #expect(r.status == .internalServerError)
                #expect(r.headers[.contentType] == "application/json")
                let body = HTTPContractTests.object(r.body)
                #expect(body["reason"] as? String == "store_corrupt")
                #expect((body["message"] as? String)?.contains("KV7") == true)
            }
            try await client.execute(uri: "/kvfv", method: .get) { r in
                #expect(r.status == .internalServerError)
                #expect(HTTPContractTests.object(r.body)["reason"] as? String == "store_corrupt")
            }
        }
    }
}
