import Foundation
import GRDB
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
@testable import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

/// What the engine does with a damaged SQLite store (the store's own detection is in SpeedflowStoreTests).
@Suite("Engine over a damaged store: repaired at start, refused, or refusing late events at run time")
struct StoreIntegrityTests {
    func events(_ camera: String, _ n: Int, nowMs: Int64, prefix: String) -> [CameraEvent] {
        (0..<n).map { i in
            CameraEvent(
                kvfvId: camera, timestampMs: nowMs - 6 * 3_600_000 + Int64(i) * 7_919 % (5 * 3_600_000),
                speed: 40 + Double(i % 80), eventId: "\(prefix)-\(i)", lane: 1, plate: nil)
        }
    }

    /// Counts per camera over the last day, read through the engine (memory + store).
    func counts(_ engine: Engine, cameras: [String], nowMs: Int64) async throws -> [String: Int64] {
        let windows = try WindowPlanner.windows(fromMs: nowMs - 86_400_000, toMs: nowMs + 600_000, interval: .oneHour)
        var result: [String: Int64] = [:]
        for camera in cameras {
            let states = try #require(try await engine.windowStates(kvfvId: camera, windows: windows))
            result[camera] = states.reduce(0) { $0 + $1.count }
        }
        return result
    }

    @Test("a damaged store is moved aside at start and rebuilt exactly from a log that holds everything")
    func repairedFromTheLogAtStart() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cameras = ["A", "B", "C"]
        var want: [String: Int64] = [:]
        let now: Int64
        do {
            let engine = try makeEngine(dir)
            engine.start()
            now = engine.now
            for c in cameras {
                for k in 0..<4 { _ = try await engine.ingest(events(c, 500, nowMs: now, prefix: "\(k)"), arrivalMs: now) }
            }
            engine.shutdown()
            want = try await counts(engine, cameras: cameras, nowMs: now)
            try (engine.store as! SQLiteStore).close()
        }
        let path = dir.appendingPathComponent("store.sqlite").path
        let (pageSize, pages) = try PageDamage.leafPages(path, of: "bucket")
        try PageDamage.copy(path, from: pages[0], to: pages[pages.count / 2], pageSize: pageSize)

        let engine = try makeEngine(dir)
        try engine.recover()
        engine.start()
        defer { engine.shutdown() }
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("store.sqlite.corrupt-") }
        #expect(aside.contains { !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm") }, "the damaged store is kept: \(aside)")
        #expect(try await counts(engine, cameras: cameras, nowMs: now) == want)
        // Resent batches are duplicates, as before the damage.
        let outcome = try await engine.ingest(events("B", 500, nowMs: now, prefix: "2"), arrivalMs: now)
        #expect(outcome.accepted == 0 && outcome.duplicates == 500)
    }

    @Test("a damaged store whose log no longer covers it refuses to open, naming the repair")
    func refusesWithoutTheLog() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let engine = try makeEngine(dir)
            engine.start()
            let now = engine.now
            for k in 0..<20 { _ = try await engine.ingest(events("A", 500, nowMs: now, prefix: "\(k)"), arrivalMs: now) }
            engine.shutdown()
            let store = engine.store as! SQLiteStore
            // Retention removed the log's first segments.
            let log = try SegmentLog(directory: dir.appendingPathComponent("log"), configuration: .init(segmentBytes: 64 << 10))
            #expect(try log.removeSegments(consumedUpTo: LogOffset(try store.logOffset()), lastWrittenBeforeMs: .max) > 0)
            try log.close()
            try store.close()
        }
        let path = dir.appendingPathComponent("store.sqlite").path
        let (pageSize, pages) = try PageDamage.leafPages(path, of: "bucket")
        try PageDamage.garbage(path, page: pages[pages.count / 2], pageSize: pageSize, seed: 5)
        do {
            _ = try makeEngine(dir)
            Issue.record("a damaged store opened")
        } catch let error as StoreError {
            #expect(error.code == .corrupt)
            #expect(error.message.contains("speedflow rebuild"))
        }
        #expect(FileManager.default.fileExists(atPath: path), "nothing is moved when it cannot be rebuilt")
    }

    @Test("at run time, damaged dedup state refuses the late event instead of counting a resend twice")
    func runtimeDedupDamage() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let clock = Mutex<Int64>(Int64(Date().timeIntervalSince1970 * 1000))
        let log = try SegmentLog(directory: dir.appendingPathComponent("log"))
        let store = try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path)
        var configuration = EngineConfiguration()
        configuration.hotIdleMs = 1000
        let engine = try Engine(log: log, store: store, configuration: configuration, clock: { clock.withLock { $0 } })
        engine.start()
        defer { engine.shutdown() }
        let now = engine.now
        let batch = events("A", 300, nowMs: now, prefix: "x")
        #expect(try await engine.ingest(batch, arrivalMs: now).accepted == 300)
        // Persist, then let every bucket go idle and be evicted: a resend must load them from the store.
        try engine.flushSynchronously()
        clock.withLock { $0 += 10_000 }
        try engine.flushSynchronously()
        #expect(engine.hotBuckets == 0)
        let before = try await counts(engine, cameras: ["A"], nowMs: now)
        // Identities of some buckets vanish (rows gone from dedup_chunk, the b-tree intact).
        try await store.pool.write { db in
            try db.execute(sql: "DELETE FROM dedup_chunk WHERE rowid IN (SELECT rowid FROM dedup_chunk ORDER BY rowid LIMIT 3)")
        }
        do {
            let outcome = try await engine.ingest(batch, arrivalMs: now)
            #expect(outcome.accepted == 0, "a resent event was counted again")
        } catch {
            #expect(error.code == .storeUnavailable)
        }
        #expect(try await counts(engine, cameras: ["A"], nowMs: now) == before)
    }
}
