import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import SpeedflowTestSupport
import Testing

@Suite("Engine: dedup, late events, replay")
struct EngineTests {
    @Test("random late, resent, shuffled streams are counted exactly", arguments: [1, 2, 3] as [UInt64])
    func exactness(seed: UInt64) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir)
        engine.start()
        let now = engine.now
        var oracle = Oracle()
        var expectedAccepted = 0, expectedDuplicates = 0, accepted = 0, duplicates = 0
        for batch in randomStream(seed: seed, cameras: 4, events: 1500, nowMs: now) {
            for e in batch {
                if oracle.add(e) { expectedAccepted += 1 } else { expectedDuplicates += 1 }
            }
            let o = try await engine.ingest(batch, arrivalMs: now)
            accepted += o.accepted
            duplicates += o.duplicates
        }
        #expect(accepted == expectedAccepted)
        #expect(duplicates == expectedDuplicates)
        try await expectExact(engine, oracle, nowMs: now)
        engine.shutdown()
    }

    @Test("a tiny memory budget forces evictions and reloads; dedup stays exact")
    func evictionKeepsDedupExact() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir) {
            $0.maxHotIdentities = 20
            $0.hotIdleMs = 0
            $0.flushIntervalMs = 1
        }
        engine.start()
        let now = engine.now
        var oracle = Oracle()
        let batches = randomStream(seed: 42, cameras: 3, events: 800, nowMs: now)
        // Every batch twice, the second time after the flusher had a chance to evict it.
        for batch in batches + batches.reversed() {
            for e in batch { _ = oracle.add(e) }
            _ = try await engine.ingest(batch, arrivalMs: now)
        }
        try await expectExact(engine, oracle, nowMs: now)
        let distinct = oracle.buckets.values.reduce(0) { $0 + $1.count }
        #expect(distinct > 100)
        #expect(engine.hotBuckets < distinct / 2, "evicted buckets should leave memory (\(engine.hotBuckets) of \(distinct) hot)")
        engine.shutdown()
    }

    @Test("replaying the whole log into an empty store gives the same answers")
    func replayIsDeterministic() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir)
        engine.start()
        let now = engine.now
        var oracle = Oracle()
        for batch in randomStream(seed: 7, cameras: 3, events: 1000, nowMs: now) {
            for e in batch { _ = oracle.add(e) }
            _ = try await engine.ingest(batch, arrivalMs: now)
        }
        engine.shutdown()

        // Same log, a new empty store: its offset is 0, so everything is replayed through dedup.
        let replayed = try makeEngine(dir, storeName: "replayed.sqlite")
        try replayed.recover()
        try await expectExact(replayed, oracle, nowMs: now)
        // And the original store, reopened, agrees without replay.
        let reopened = try makeEngine(temporaryDirectoryCopy(of: dir))
        try await expectExact(reopened, oracle, nowMs: now)
    }

    @Test("an acknowledged event is visible to the very next query")
    func readYourWrites() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir) { $0.flushIntervalMs = 3_600_000 }
        engine.start()
        let now = engine.now
        let window = Window(startMs: now.floorDiv(300_000) * 300_000, endMs: now.floorDiv(300_000) * 300_000 + 300_000)
        for i in 0..<50 {
            let e = CameraEvent(kvfvId: "KVRW", timestampMs: window.startMs + Int64(i), speed: 50 + Double(i), eventId: "e\(i)")
            _ = try await engine.ingest([e], arrivalMs: now)
            let s = try #require(try await engine.windowStates(kvfvId: "KVRW", windows: [window]))
            #expect(s[0].count == Int64(i + 1))
        }
        engine.shutdown()
    }

    @Test("a subnormal speed in a log written before min_speed is not counted on replay; the bucket stays finite and consistent")
    func subnormalInOldLog() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let t = now.floorDiv(300_000) * 300_000
        do {
            // What a01ce8f accepted and logged: a 1e-320 km/h pass beside a real one.
            let log = try SegmentLog(directory: dir.appendingPathComponent("log"))
            let record = EventRecord(arrivalMs: now, events: [
                CameraEvent(kvfvId: "SUB", timestampMs: t + 1, speed: 1e-320, eventId: "tiny"),
                CameraEvent(kvfvId: "SUB", timestampMs: t + 2, speed: 80, eventId: "real"),
            ])
            _ = try log.append([record.encoded()])
            try log.close()
        }
        var engine = try makeEngine(dir)
        try engine.recover()
        var s = try #require(try await engine.windowStates(kvfvId: "SUB", windows: [Window(startMs: t, endMs: t + 300_000)]))
        #expect(s[0].count == 1 && s[0].sumInverse.isFinite && s[0].sumInverse == 1.0 / 80)
        try engine.flushSynchronously()  // recover() already committed; never started, so no shutdown()
        try engine.log.close()
        // Read back from the store (identities must number the count, or the integrity check calls it damage).
        engine = try makeEngine(dir)
        try engine.recover()
        engine.start()
        let late = CameraEvent(kvfvId: "SUB", timestampMs: t + 3, speed: 60, eventId: "late")
        _ = try await engine.ingest([late], arrivalMs: now)
        s = try #require(try await engine.windowStates(kvfvId: "SUB", windows: [Window(startMs: t, endMs: t + 300_000)]))
        #expect(s[0].count == 2)
        engine.shutdown()
    }

    @Test("a log written before attribution (EventRecord version 2) replays exactly beside version-3 records; dedup spans both")
    func version2RecordsReplay() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let t = now.floorDiv(300_000) * 300_000 - 600_000
        do {
            let log = try SegmentLog(directory: dir.appendingPathComponent("log"))
            // What the previous release wrote: version 2 is version 3 without the writer (one empty-string byte).
            let old = EventRecord(arrivalMs: now, events: (0..<10).map { CameraEvent(kvfvId: "V2", timestampMs: t + Int64($0), speed: Double(60 + $0), eventId: "e\($0)") })
            let v3 = old.encoded()
            var header: [UInt8] = []
            header.appendVarint(zigzag: now)
            #expect(v3[1 + header.count] == 0)
            let v2 = [UInt8(2)] + header + v3.dropFirst(2 + header.count)
            // Then a new record, attributed, resending two of the old events.
            let new = EventRecord(
                arrivalMs: now, events: [CameraEvent(kvfvId: "V2", timestampMs: t + 3, speed: 63, eventId: "e3"), CameraEvent(kvfvId: "V2", timestampMs: t + 20, speed: 90, eventId: "e20")],
                writer: "0123456789abcdef")
            _ = try log.append([v2, new.encoded()])
            try log.close()
        }
        let engine = try makeEngine(dir)
        try engine.recover()
        let s = try #require(try await engine.windowStates(kvfvId: "V2", windows: [Window(startMs: t, endMs: t + 300_000)]))
        #expect(s[0].count == 11)
        #expect(s[0].max == 90 && s[0].min == 60)
        try engine.flushSynchronously()
        try engine.log.close()
    }

    @Test("identity chunks of a bucket read back from many flushes are compacted into one; dedup stays exact")
    func chunkCompaction() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir) {
            $0.flushIntervalMs = 3_600_000  // flushes only when the test says
            $0.hotIdleMs = 0  // every flush evicts, so every ingest reloads the bucket from its chunks
        }
        engine.start()
        let bucketStart = engine.now.floorDiv(300_000) * 300_000 - 600_000
        let events = (0..<40).map {
            CameraEvent(kvfvId: "KVCH", timestampMs: bucketStart + Int64($0), speed: 40 + Double($0), eventId: "c\($0)")
        }
        var maxChunks = 0
        for e in events {
            _ = try await engine.ingest([e], arrivalMs: engine.now)
            try engine.flushSynchronously()
            let stored = try #require(try engine.store.loadBucket(BucketKey(camera: 1, bucket: bucketStart / 300_000)))
            maxChunks = max(maxChunks, stored.chunkCount)
        }
        #expect(maxChunks <= 17, "without compaction there would be 40 chunks")
        let stored = try #require(try engine.store.loadBucket(BucketKey(camera: 1, bucket: bucketStart / 300_000)))
        #expect(Set(stored.ids) == Set(events.map(\.identity)))
        #expect(stored.ids.count == 40 && stored.state.count == 40)
        let again = try await engine.ingest(events, arrivalMs: engine.now)
        #expect(again.accepted == 0 && again.duplicates == 40)
        engine.shutdown()
    }

    @Test("an unknown camera answers nil, not empty windows")
    func unknownCamera() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let engine = try makeEngine(dir)
        let result = try await engine.windowStates(kvfvId: "NOPE", windows: [Window(startMs: 0, endMs: 300_000)])
        #expect(result == nil)
    }
}
