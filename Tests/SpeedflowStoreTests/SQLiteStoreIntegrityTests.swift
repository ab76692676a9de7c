import Foundation
import GRDB
import SpeedflowAggregation
import SpeedflowModel
@testable import SpeedflowStore
import SpeedflowTestSupport
import Synchronization
import Testing

/// Writes `cameras × days` of buckets (with identities) straight into a store; returns what it wrote.
func populate(
    _ store: SQLiteStore, cameras: Int, days: Int, firstDay: Int64, seed: UInt64 = 7
) throws -> [Int64: [Int64: BucketState]] {
    var rng = SeededRandom(seed: seed)
    var written: [Int64: [Int64: BucketState]] = [:]
    for c in 1...Int64(cameras) {
        var commit = StoreCommit(logOffset: UInt64(c))
        commit.cameras = [CameraRecord(id: c, kvfvId: "KV\(c)", lastEventMs: 0, lastArrivalMs: 0)]
        for b in (firstDay * 288)..<((firstDay + Int64(days)) * 288) {
            var s = BucketState()
            var ids: [UInt64] = []
            for _ in 0..<(1 + rng.next() % 20) {
                s.add(20 + Double(rng.next() % 10_000) / 100)
                ids.append(rng.next())
            }
            commit.buckets.append(.init(key: BucketKey(camera: c, bucket: b), state: s, addedIds: ids))
            written[c, default: [:]][b] = s
        }
        try store.commit(commit)
    }
    return written
}

/// Every camera-day either reads back exactly as written or fails as `store_corrupt`; returns how many failed.
func expectExactOrCorrupt(
    _ store: SQLiteStore, _ written: [Int64: [Int64: BucketState]], days: Int, firstDay: Int64,
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> Int {
    var corrupt = 0
    for (camera, buckets) in written.sorted(by: { $0.key < $1.key }) {
        for day in firstDay..<(firstDay + Int64(days)) {
            do {
                let got = try await store.readStates(camera: camera, buckets: (day * 288)..<((day + 1) * 288))
                let want = buckets.filter { $0.key >= day * 288 && $0.key < (day + 1) * 288 }.sorted { $0.key < $1.key }
                #expect(got.map(\.bucket) == want.map(\.key), "camera \(camera) day \(day): a wrong row set was served", sourceLocation: sourceLocation)
                #expect(got.map(\.state) == want.map(\.value), "camera \(camera) day \(day): a wrong state was served", sourceLocation: sourceLocation)
            } catch let error as StoreError {
                #expect(error.code == .corrupt, sourceLocation: sourceLocation)
                #expect(error.reason == "store_corrupt", sourceLocation: sourceLocation)
                corrupt += 1
            }
        }
    }
    return corrupt
}

@Suite("SQLite store integrity: damaged pages are detected, reported and repaired, never served as numbers")
struct SQLiteStoreIntegrityTests {
    let firstDay = Int64(20_000)

    @Test("summaries follow overwrites, resets and pruning; a sound store checks clean")
    func summariesStayConsistent() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path)
        var written = try populate(store, cameras: 3, days: 2, firstDay: firstDay)
        // Overwrite some buckets (whole new states), as later flushes do.
        var c = StoreCommit(logOffset: 10)
        for b in stride(from: firstDay * 288, to: (firstDay + 2) * 288, by: 7) {
            var s = written[2]![b]!
            s.add(55)
            c.buckets.append(.init(key: BucketKey(camera: 2, bucket: b), state: s, addedIds: [UInt64(b)]))
            written[2]![b] = s
        }
        try store.commit(c)
        #expect(try store.checkIntegrity(summaries: true) == [])
        #expect(try await expectExactOrCorrupt(store, written, days: 2, firstDay: firstDay) == 0)
        // A reset in the middle of a day keeps its first part consistent.
        let cut = firstDay * 288 + 288 + 100
        try store.reset(fromBucket: cut, logOffset: 0)
        #expect(try store.checkIntegrity(summaries: true) == [])
        for cam in written.keys { written[cam] = written[cam]!.filter { $0.key < cut } }
        #expect(try await expectExactOrCorrupt(store, written, days: 2, firstDay: firstDay) == 0)
        // Pruned identities are not damage.
        #expect(try store.pruneIdentities(before: firstDay * 288 + 10) > 0)
        let old = try #require(try store.loadBucket(BucketKey(camera: 1, bucket: firstDay * 288 + 3)))
        #expect(old.ids.isEmpty && old.state == written[1]![firstDay * 288 + 3])
        let recent = try #require(try store.loadBucket(BucketKey(camera: 1, bucket: firstDay * 288 + 20)))
        #expect(Int64(recent.ids.count) == recent.state.count)
    }

    @Test("a vanished, changed or added row is detected on read, on load and by the full check")
    func rowLevelDamage() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        let store = try SQLiteStore(path: path)
        let written = try populate(store, cameras: 2, days: 1, firstDay: firstDay)
        let b = firstDay * 288 + 100
        // Bypassing the store, as damage does.
        try await store.pool.write { db in
            try db.execute(sql: "DELETE FROM bucket WHERE camera = 1 AND bucket = ?", arguments: [b])
            var s = written[2]![b]!
            s.add(100)
            try db.execute(sql: "UPDATE bucket SET state = ? WHERE camera = 2 AND bucket = ?", arguments: [Data(s.encoded()), b])
        }
        for camera: Int64 in [1, 2] {
            await #expect(throws: StoreError.self) {
                _ = try await store.readStates(camera: camera, buckets: (b - 3)..<(b + 3))
            }
            // A late event's load for any bucket of that day.
            #expect(throws: StoreError.self) { _ = try store.loadBucket(BucketKey(camera: camera, bucket: b + 50)) }
        }
        await #expect(throws: StoreError.self) { _ = try await store.countsByCamera(buckets: b..<(b + 1)) }
        let problems = try store.checkIntegrity(summaries: true)
        #expect(problems.count == 2, "\(problems)")
        #expect(problems.first?.contains("KV1") == true)
        // Other days of the same cameras are still served.
        #expect(try await store.readStates(camera: 1, buckets: ((firstDay + 1) * 288)..<((firstDay + 2) * 288)).isEmpty)
    }

    @Test("a damaged sequence ledger chunk is refused on load and named by the full check")
    func sequenceLedgerDamage() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("store.sqlite").path)
        _ = try populate(store, cameras: 2, days: 1, firstDay: firstDay)
        var ledger = SequenceLedger()
        for seq in [Int64(1), 2, 3, 7] { ledger.insert(epoch: 0, seq: seq, timeMs: seq) }
        let key = SequenceLedger.ChunkKey(epoch: 0, chunk: 0)
        var c = StoreCommit(logOffset: 20)
        c.sequences = [StoreCommit.Sequence(camera: 2, chunks: [(key, ledger.chunk(key))])]
        try store.commit(c)
        #expect(try store.sequences(cameras: nil)[2]?.ledger == ledger)
        #expect(try store.checkIntegrity(summaries: true) == [])
        // Bypassing the store, as damage does: the chunk loses its last bytes.
        try store.pool.write { db in
            try db.execute(sql: "UPDATE sequence_chunk SET runs = substr(runs, 1, length(runs) - 2) WHERE camera = 2")
        }
        #expect(throws: StoreError.self) { _ = try store.sequences(cameras: nil) }
        let problems = try store.checkIntegrity(summaries: true)
        #expect(problems.count == 1 && problems.first?.contains("sequence ledger of camera KV2") == true, "\(problems)")
    }

    @Test("an overwritten leaf page of bucket is never served as numbers", arguments: ["garbage", "misdirected"])
    func bucketPageDamage(kind: String) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        let written: [Int64: [Int64: BucketState]]
        do {
            let store = try SQLiteStore(path: path)
            written = try populate(store, cameras: 4, days: 3, firstDay: firstDay)
            try store.close()
        }
        let (pageSize, pages) = try PageDamage.leafPages(path, of: "bucket")
        #expect(pages.count > 10)
        let victim = pages[pages.count / 2]
        if kind == "garbage" {
            try PageDamage.garbage(path, page: victim, pageSize: pageSize, seed: 11)
        } else {
            try PageDamage.copy(path, from: pages[pages.count / 4], to: victim, pageSize: pageSize)
        }
        let corruptions = Mutex(0)
        let store = try SQLiteStore(path: path)
        store.onCorruption { _ in corruptions.withLock { $0 += 1 } }
        let failed = try await expectExactOrCorrupt(store, written, days: 3, firstDay: firstDay)
        #expect(failed >= 1)
        #expect(corruptions.withLock { $0 } >= failed)
        // The full check finds it too: a list of problems, or SQLite's own "malformed" as store_corrupt.
        do {
            #expect(try store.checkIntegrity(summaries: true).isEmpty == false)
        } catch let error as StoreError {
            #expect(error.code == .corrupt)
        }
        // The fleet view over every damaged day fails too, instead of counting what is left.
        await #expect(throws: StoreError.self) {
            _ = try await store.countsByCamera(buckets: (firstDay * 288)..<((firstDay + 3) * 288))
        }
    }

    @Test("an overwritten leaf page of dedup_chunk never lets a resent event count twice", arguments: ["dedup_chunk", "dedup_chunk_key"])
    func dedupPageDamage(tree: String) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        let written: [Int64: [Int64: BucketState]]
        do {
            let store = try SQLiteStore(path: path)
            written = try populate(store, cameras: 4, days: 2, firstDay: firstDay)
            try store.close()
        }
        let (pageSize, pages) = try PageDamage.leafPages(path, of: tree)
        #expect(pages.count > 4)
        try PageDamage.copy(path, from: pages[1], to: pages[pages.count / 2], pageSize: pageSize)
        let store = try SQLiteStore(path: path)
        // Every bucket's identities are either complete or refused: dedup never runs against a partial set.
        var refused = 0
        for (camera, buckets) in written {
            for (bucket, state) in buckets {
                do {
                    let loaded = try #require(try store.loadBucket(BucketKey(camera: camera, bucket: bucket)))
                    #expect(Int64(Set(loaded.ids).count) == state.count && loaded.state == state)
                } catch let error as StoreError {
                    #expect(error.code == .corrupt)
                    refused += 1
                }
            }
        }
        #expect(refused >= 1)
    }

    @Test("the upgrade fills summaries from the rows of an older store, with the same numbers")
    func migrationFromFormatOne() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        // A store as a01ce8f left it: migrations up to v2 only, rows written by its commit.
        let written: [Int64: [Int64: BucketState]]
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteStore.migrator.migrate(queue, upTo: "v2-dedup-chunks")
            written = try await queue.write { db in
                var rng = SeededRandom(seed: 3)
                var w: [Int64: [Int64: BucketState]] = [:]
                for camera: Int64 in 1...3 {
                    try db.execute(sql: "INSERT INTO camera (id, kvfv_id) VALUES (?, ?)", arguments: [camera, "KV\(camera)"])
                    for b in (firstDay * 288 + 200)..<(firstDay * 288 + 400) {
                        var s = BucketState()
                        var ids: [UInt64] = []
                        for _ in 0..<(1 + rng.next() % 5) {
                            s.add(30 + Double(rng.next() % 100))
                            ids.append(rng.next())
                        }
                        try db.execute(
                            sql: "INSERT INTO bucket (camera, bucket, state) VALUES (?, ?, ?)", arguments: [camera, b, Data(s.encoded())])
                        try db.execute(
                            sql: "INSERT INTO dedup_chunk (camera, bucket, ids) VALUES (?, ?, ?)",
                            arguments: [camera, b, SQLiteStore.encodeIds(ids)])
                        w[camera, default: [:]][b] = s
                    }
                }
                // Retention had pruned the identities of the oldest buckets.
                try db.execute(sql: "DELETE FROM dedup_chunk WHERE bucket < ?", arguments: [firstDay * 288 + 210])
                return w
            }
            try queue.close()
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.checkIntegrity(summaries: true) == [])
        #expect(try await expectExactOrCorrupt(store, written, days: 2, firstDay: firstDay) == 0)
        // Pruned before the upgrade: not damage; identities present: complete.
        #expect(try store.loadBucket(BucketKey(camera: 1, bucket: firstDay * 288 + 205))?.ids.isEmpty == true)
        #expect(try store.loadBucket(BucketKey(camera: 1, bucket: firstDay * 288 + 305)).map { Int64($0.ids.count) == $0.state.count } == true)
    }

    @Test("salvage carries over the old days that verify; a damaged old day keeps answering store_corrupt")
    func salvageBeyondTheLog() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        let written: [Int64: [Int64: BucketState]]
        do {
            let store = try SQLiteStore(path: path)
            written = try populate(store, cameras: 4, days: 4, firstDay: firstDay)
            try store.close()
        }
        let (pageSize, pages) = try PageDamage.leafPages(path, of: "bucket")
        try PageDamage.copy(path, from: pages[0], to: pages[pages.count / 3], pageSize: pageSize)
        // The log covers days 2 and 3 (as rebuild computes it); days 0 and 1 exist only in the store.
        let limit = (firstDay + 2) * 288
        let store = try SQLiteStore(path: path)
        let damaged = try #require(try store.quarantine(reason: "test"))
        #expect(FileManager.default.fileExists(atPath: damaged))
        let report = try store.salvage(from: damaged, before: limit)
        #expect(report.cameras == 4)
        #expect(report.days + report.damagedDays.count >= 8, "\(report)")
        #expect(!report.damagedDays.isEmpty, "\(report)")
        // Nothing at or after the limit: the replay fills it.
        let old = written.mapValues { $0.filter { $0.key < limit } }
        let failed = try await expectExactOrCorrupt(store, old, days: 4, firstDay: firstDay)
        #expect(failed == report.damagedDays.count)
        // Known damage does not fail the full check (it would block every start); it is listed instead.
        #expect(try store.checkIntegrity(summaries: true) == [])
        #expect(try store.markedDamagedDays().count == report.damagedDays.count)
        // A late event into a damaged old day is refused, not counted against an empty bucket.
        let marked = try await store.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT camera, day FROM bucket_day WHERE buckets < 0 LIMIT 1").map { ($0[0] as Int64, $0[1] as Int64) }
        }
        let (camera, day) = try #require(marked)
        #expect(throws: StoreError.self) { _ = try store.loadBucket(BucketKey(camera: camera, bucket: day * 288 + 5)) }
    }

    @Test("a store written by a newer Speedflow is refused, not half-maintained")
    func newerStoreRefused() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        do {
            let store = try SQLiteStore(path: path)
            try await store.pool.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-future')") }
            try store.close()
        }
        do {
            _ = try SQLiteStore(path: path)
            Issue.record("a newer store opened")
        } catch let error as StoreError {
            #expect(error.code == .newer && error.message.contains("v99-future"))
        }
    }

    @Test("the data dir written by a01ce8f upgrades and checks clean")
    func fixtureUpgrades() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("IntegrationTests/Fixtures/format1/data")
        guard FileManager.default.fileExists(atPath: fixture.path) else { return }
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        try FileManager.default.copyItem(at: fixture, to: data)
        let path = data.appendingPathComponent("store.sqlite").path
        let before = try DatabaseQueue(path: path).read { db in
            try Row.fetchAll(db, sql: "SELECT camera, bucket, state FROM bucket ORDER BY camera, bucket").map {
                ($0[0] as Int64, $0[1] as Int64, $0[2] as Data)
            }
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.checkIntegrity(summaries: true) == [])
        for (camera, bucket, state) in before {
            let got = try #require(try store.loadBucket(BucketKey(camera: camera, bucket: bucket)))
            #expect(Data(got.state.encoded()) == state)
        }
    }
}
