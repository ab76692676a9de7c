import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore
import SpeedflowTestSupport
import Testing

/// Real ClickHouse servers started by `scripts/test` (via `scripts/clickhouse`): a single node and a
/// 2-shard × 2-replica cluster. Without them these tests are skipped (scripts/test always provides them).
enum ClickHouseTestEnvironment {
    static let env = ProcessInfo.processInfo.environment
    static var single: String? { env["SPEEDFLOW_TEST_CLICKHOUSE"] }
    static var cluster: String? { env["SPEEDFLOW_TEST_CLICKHOUSE_CLUSTER"] }
    static var topologies: [String] { [single, cluster].compactMap { $0 } }

    /// `scripts/clickhouse` of this checkout, for stopping and starting nodes.
    static let script: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/clickhouse").path

    static func node(_ action: String, _ name: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: script)
        p.arguments = [action, name]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ClickHouseError(kind: .unreachable, message: "scripts/clickhouse \(action) \(name) failed") }
    }

    /// A database of its own per test, so tests never see each other's rows.
    static func freshDatabase() -> String { "sftest_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased() }
}

func makeClickHouseEngine(
    _ dir: URL, topology: String, database: String, _ configure: (inout EngineConfiguration) -> Void = { _ in }
) throws -> (Engine, ClickHouseStore) {
    var configuration = EngineConfiguration()
    configure(&configuration)
    let log = try SegmentLog(directory: dir.appendingPathComponent("log"), configuration: .init(segmentBytes: 64 << 10))
    var logger = Logger(label: "test.clickhouse")
    logger.logLevel = .warning
    let client = ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: logger)
    let store = try ClickHouseStore(client: client, database: database, logger: logger)
    return (try Engine(log: log, store: store, configuration: configuration, logger: logger), store)
}

/// Both engines answer every window the same: counts, min/max and percentiles exactly, means to 1e-9
/// (the ClickHouse store merges per-flush deltas, so sums are added in a different order).
func expectSameAnswers(_ a: Engine, _ b: Engine, cameras: [String], nowMs: Int64) async throws {
    for camera in cameras {
        let windows = try WindowPlanner.windows(fromMs: nowMs - 4 * 86_400_000, toMs: nowMs + 600_000, interval: .fiveMinutes)
        let sa = try #require(try await a.windowStates(kvfvId: camera, windows: windows))
        let sb = try #require(try await b.windowStates(kvfvId: camera, windows: windows))
        for (x, y) in zip(sa, sb) {
            #expect(x.count == y.count)
            #expect(x.minSpeed == y.minSpeed && x.maxSpeed == y.maxSpeed && x.percentile(85) == y.percentile(85))
            if let m = y.averageSpeed { #expect(isClose(x.averageSpeed, m)) }
            if let s = y.standardDeviation { #expect(isClose(x.standardDeviation, s, tolerance: 1e-6)) }
        }
    }
}

@Suite("ClickHouse store: same answers as SQLite, exactly once, failover", .serialized)
struct ClickHouseStoreTests {
    @Test(
        "late, resent, shuffled stream: ClickHouse answers equal SQLite's and the oracle's, also after reopening",
        .enabled(if: !ClickHouseTestEnvironment.topologies.isEmpty),
        arguments: ClickHouseTestEnvironment.topologies)
    func sameAnswersAsSQLite(topology: String) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = ClickHouseTestEnvironment.freshDatabase()
        // A small memory budget: buckets are evicted and read back from ClickHouse for late events.
        let tight: (inout EngineConfiguration) -> Void = {
            $0.flushIntervalMs = 50
            $0.maxHotIdentities = 200
            $0.hotIdleMs = 0
        }
        let sqlite = try makeEngine(dir.appendingPathComponent("sqlite"), tight)
        var (clickhouse, _) = try makeClickHouseEngine(dir.appendingPathComponent("ch"), topology: topology, database: database, tight)
        sqlite.start()
        clickhouse.start()
        let now = sqlite.now
        var oracle = Oracle()
        let batches = randomStream(seed: 11, cameras: 6, events: 3000, nowMs: now)
        for (i, batch) in batches.enumerated() {
            for e in batch { _ = oracle.add(e) }
            let a = try await sqlite.ingest(batch, arrivalMs: now)
            let b = try await clickhouse.ingest(batch, arrivalMs: now)
            #expect(a.accepted == b.accepted && a.duplicates == b.duplicates)
            if i % 40 == 0 { try await Task.sleep(for: .milliseconds(60)) }  // let flushes and evictions happen
        }
        try await expectExact(clickhouse, oracle, nowMs: now)
        try await expectSameAnswers(clickhouse, sqlite, cameras: oracle.buckets.keys.sorted(), nowMs: now)
        clickhouse.shutdown()
        sqlite.shutdown()

        // Reopened: nothing to replay, nothing in memory; every answer now comes from ClickHouse alone.
        (clickhouse, _) = try makeClickHouseEngine(dir.appendingPathComponent("ch"), topology: topology, database: database)
        try clickhouse.recover()
        clickhouse.start()
        try await expectExact(clickhouse, oracle, nowMs: now)
        // Resending the whole stream to the reopened engine counts nothing twice (identities come from ClickHouse).
        for batch in batches {
            let o = try await clickhouse.ingest(batch, arrivalMs: now)
            #expect(o.accepted == 0)
        }
        try await expectExact(clickhouse, oracle, nowMs: now)
        clickhouse.shutdown()
    }

    @Test(
        "numbered passes with loss, delays, resends and reports: gaps, backlog and every window equal the truth, also after reopening",
        .enabled(if: !ClickHouseTestEnvironment.topologies.isEmpty),
        arguments: ClickHouseTestEnvironment.topologies)
    func sequencesExact(topology: String) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = ClickHouseTestEnvironment.freshDatabase()
        let tight: (inout EngineConfiguration) -> Void = {
            $0.flushIntervalMs = 20
            $0.maxHotIdentities = 200
            $0.hotIdleMs = 0
        }
        var (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database, tight)
        engine.start()
        let now = engine.now
        let fleet = SequencedFleet(seed: 21, cameras: 4, passes: 300, nowMs: now)
        var truth = SequenceTruth()
        for (i, d) in fleet.deliveries.enumerated() {
            var expected = 0
            for e in d.events where truth.add(e, arrivalMs: d.arrivalMs) { expected += 1 }
            for r in d.reports { truth.add(r, arrivalMs: d.arrivalMs) }
            let o = try await engine.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil)
            #expect(o.accepted == expected)
            if i == fleet.deliveries.count / 2 {
                // Reopened mid-stream: the ledger comes back from ClickHouse, so resends stay duplicates.
                engine.shutdown()
                (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database, tight)
                try engine.recover()
                engine.start()
            }
        }
        let range = (now - 2 * 86_400_000, now + 600_000)
        try await expectSequencesExact(engine.queries, truth, fromMs: range.0, toMs: range.1)
        engine.shutdown()
        (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database)
        try engine.recover()
        try await expectSequencesExact(engine.queries, truth, fromMs: range.0, toMs: range.1)
    }

    @Test(
        "a fresh log replayed into ClickHouse after part of it landed counts each event once",
        .enabled(if: ClickHouseTestEnvironment.single != nil))
    func replayOverPartiallyWrittenStore() async throws {
        let topology = try #require(ClickHouseTestEnvironment.single)
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = ClickHouseTestEnvironment.freshDatabase()
        var (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database) { $0.flushIntervalMs = 20 }
        engine.start()
        let now = engine.now
        var oracle = Oracle()
        for batch in randomStream(seed: 5, cameras: 4, events: 2000, nowMs: now) {
            for e in batch { _ = oracle.add(e) }
            _ = try await engine.ingest(batch, arrivalMs: now)
        }
        engine.shutdown()
        // Same ClickHouse rows, but the markers say nothing was written: the whole log replays through the
        // identities stored with the deltas (what a crash between a delta block and a later marker leaves).
        let admin = ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: Logger(label: "admin"))
        defer { admin.shutdown() }
        #expect(admin.runEverywhere("ALTER TABLE \(database).bucket_delta DELETE WHERE kvfv_id = ''").isEmpty)
        let probe = try ClickHouseStore(
            client: ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: Logger(label: "probe")),
            database: database)
        try await waitUntil("the markers deleted on every replica", timeout: .seconds(30)) { try probe.logOffset() == 0 }
        (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database)
        try engine.recover()
        engine.start()
        try await expectExact(engine, oracle, nowMs: now)
        engine.shutdown()
    }


    @Test("retention drops day partitions older than the horizon from aggregates and raw events, on every shard",
          .enabled(if: !ClickHouseTestEnvironment.topologies.isEmpty), arguments: ClickHouseTestEnvironment.topologies)
    func retentionDropsOldPartitions(topology: String) async throws {
        let database = ClickHouseTestEnvironment.freshDatabase()
        let client = ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: Logger(label: "retention"))
        let store = try ClickHouseStore(client: client, database: database, retentionDays: 2)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var commit = StoreCommit(logOffset: 1, timeMs: now)
        var keys: [BucketKey] = []
        for (i, camera) in ["KV1", "KV2", "KV3", "KV4"].enumerated() {
            commit.cameras.append(CameraRecord(id: Int64(i + 1), kvfvId: camera, lastEventMs: now, lastArrivalMs: now))
            for age in [0, 5] as [Int64] {
                let ms = now - age * 86_400_000
                var state = BucketState()
                state.add(50)
                let key = BucketKey(camera: Int64(i + 1), bucket: Bucket.index(ofTimestamp: ms))
                keys.append(key)
                commit.buckets.append(.init(
                    key: key, state: state, addedIds: [UInt64(age + 1)], delta: state,
                    events: [CameraEvent(kvfvId: camera, timestampMs: ms, speed: 50, eventId: "e\(age)")]))
            }
        }
        try store.commit(commit)
        for key in keys { #expect(try store.loadBucket(key) != nil) }
        let done = try #require(try store.maintain(nowMs: now))
        #expect(done.contains("bucket_delta") && done.contains("events"))
        // Replicas apply a DROP PARTITION from the replication log: wait until every one has.
        try await waitUntil("old partitions dropped on every replica", timeout: .seconds(30)) {
            try keys.allSatisfy { key in
                let old = key.bucket < Bucket.index(ofTimestamp: now - 86_400_000)
                return (try store.loadBucket(key) == nil) == old
            }
        }
        // Nothing left to drop.
        #expect(try store.maintain(nowMs: now) == nil)
    }
}

extension ClickHouseStoreTests {
    /// `loadBuckets` as a new writer uses it (nothing known yet): which buckets exist is read, only existing ones
    /// are read back — more keys than one query takes (`keysPerQuery`), over several cameras and days, some
    /// never written — and each answer equals what a bucket-by-bucket read gives, identities and state.
    @Test("loadBuckets over 6,900 keys of a fresh store instance equals bucket-by-bucket loads; unwritten buckets absent",
          .enabled(if: !ClickHouseTestEnvironment.topologies.isEmpty), arguments: ClickHouseTestEnvironment.topologies)
    func batchedLoadsEqualSingleLoads(topology: String) async throws {
        let database = ClickHouseTestEnvironment.freshDatabase()
        func open() throws -> ClickHouseStore {
            var logger = Logger(label: "test.clickhouse")
            logger.logLevel = .warning
            return try ClickHouseStore(
                client: ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: logger), database: database,
                logger: logger)
        }
        let writer = try open()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let first = Bucket.index(ofTimestamp: now) - 4 * 288
        var commit = StoreCommit(logOffset: 1, timeMs: now)
        var written: [BucketKey] = []
        var unwritten: [BucketKey] = []
        for camera in 1...6 as ClosedRange<Int64> {
            commit.cameras.append(CameraRecord(id: camera, kvfvId: "KVB\(camera)", lastEventMs: now, lastArrivalMs: now))
            for bucket in first..<first + 4 * 288 {
                let key = BucketKey(camera: camera, bucket: bucket)
                // Two of every three buckets written (over 2,000 keys per shard: several reads), the rest never.
                guard (bucket + camera) % 3 != 0 else { unwritten.append(key); continue }
                written.append(key)
                var state = BucketState()
                state.add(Double(40 + bucket % 50) + Double(camera) / 10)
                let ms = bucket * Bucket.durationMs + 1
                commit.buckets.append(.init(
                    key: key, state: state, addedIds: [UInt64(bitPattern: bucket &* 31 &+ camera)], delta: state,
                    events: [CameraEvent(kvfvId: "KVB\(camera)", timestampMs: ms, speed: 50, eventId: "e\(bucket)")]))
            }
        }
        try writer.commit(commit)
        #expect(written.count > 2 * 2000)

        let reader = try open()
        _ = try reader.cameras()  // as a writer opening the store learns its cameras
        let loaded = try reader.loadBuckets(written + unwritten)
        #expect(loaded.count == written.count)
        #expect(unwritten.allSatisfy { loaded[$0] == nil })
        // Each bucket exactly as committed: its one identity, its state (replicas' copies counted once).
        let committed = Dictionary(uniqueKeysWithValues: commit.buckets.map { ($0.key, $0) })
        for key in written {
            let got = try #require(loaded[key])
            let want = try #require(committed[key])
            #expect(got.ids == want.addedIds && got.state.count == 1 && got.state.sum == want.state.sum, "\(key)")
        }
        // The same as a bucket-by-bucket read by another new instance.
        let single = try open()
        _ = try single.cameras()
        for key in written.shuffled().prefix(30) + unwritten.shuffled().prefix(10) {
            #expect(try single.loadBucket(key)?.ids == loaded[key]?.ids)
        }
    }
}

/// Tests that stop and start ClickHouse nodes. `scripts/test` runs them on their own, after everything else,
/// so no other test sees its servers vanish.
@Suite("ClickHouse failover: nodes stopped and started", .serialized)
struct ClickHouseFailoverTests {
    @Test(
        "one replica of each shard down: writes and reads fail over and stay exact",
        .enabled(if: ClickHouseTestEnvironment.cluster != nil))
    func replicaDown() async throws {
        let topology = try #require(ClickHouseTestEnvironment.cluster)
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = ClickHouseTestEnvironment.freshDatabase()
        var (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database) {
            $0.flushIntervalMs = 50
            $0.maxHotIdentities = 200
            $0.hotIdleMs = 0
        }
        engine.start()
        let now = engine.now
        var oracle = Oracle()
        let batches = randomStream(seed: 23, cameras: 6, events: 2000, nowMs: now)
        let half = batches.count / 2
        for batch in batches[..<half] {
            for e in batch { _ = oracle.add(e) }
            _ = try await engine.ingest(batch, arrivalMs: now)
        }
        try engine.flushSynchronously()
        try ClickHouseTestEnvironment.node("stop-node", "s1r1")
        try ClickHouseTestEnvironment.node("stop-node", "s2r2")
        defer {
            try? ClickHouseTestEnvironment.node("start-node", "s1r1")
            try? ClickHouseTestEnvironment.node("start-node", "s2r2")
        }
        for batch in batches[half...] {
            for e in batch { _ = oracle.add(e) }
            let o = try await engine.ingest(batch, arrivalMs: now)
            #expect(o.accepted + o.duplicates == batch.count)
        }
        try engine.flushSynchronously()
        try await expectExact(engine, oracle, nowMs: now)
        engine.shutdown()
        // Everything the surviving replicas hold is the whole truth.
        (engine, _) = try makeClickHouseEngine(dir, topology: topology, database: database)
        try engine.recover()
        engine.start()
        try await expectExact(engine, oracle, nowMs: now)
        engine.shutdown()
    }

    @Test(
        "ClickHouse down for a while under load: ingest keeps accepting, the store catches up, exact",
        .enabled(if: ClickHouseTestEnvironment.single != nil))
    func outageUnderLoad() async throws {
        let topology = try #require(ClickHouseTestEnvironment.single)
        let outage = Double(ClickHouseTestEnvironment.env["SPEEDFLOW_TEST_CLICKHOUSE_OUTAGE_SECONDS"] ?? "60") ?? 60
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = ClickHouseTestEnvironment.freshDatabase()
        let (engine, store) = try makeClickHouseEngine(dir, topology: topology, database: database) { $0.flushIntervalMs = 200 }
        engine.start()
        var oracle = Oracle()
        var sent = 0
        var failures = 0
        var rng = SeededRandom(seed: 99)
        func load(for seconds: Double) async throws {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                let now = engine.now
                // Live traffic of 20 cameras, with resends.
                var batch: [CameraEvent] = []
                for _ in 0..<50 {
                    let camera = "KV\(rng.next() % 20)"
                    sent += 1
                    batch.append(CameraEvent(
                        kvfvId: camera, timestampMs: now - Int64(rng.next() % 5_000),
                        speed: 30 + Double(rng.next() % 9_000) / 100, eventId: "\(camera)-\(sent)"))
                    if rng.next() % 10 == 0 { batch.append(batch.last!) }
                }
                do {
                    _ = try await engine.ingest(batch, arrivalMs: now)
                    for e in batch { _ = oracle.add(e) }
                } catch {
                    failures += 1
                }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        try await load(for: 2)
        try ClickHouseTestEnvironment.node("stop-node", "single")
        var restarted = false
        defer { if !restarted { try? ClickHouseTestEnvironment.node("start-node", "single") } }
        // A late event for a bucket neither in memory nor readable: refused with a reason, to be resent.
        let late = CameraEvent(kvfvId: "KV0", timestampMs: engine.now - 3 * 3_600_000, speed: 77, eventId: "late-1")
        await #expect(throws: IngestError.self) { _ = try await engine.ingest([late], arrivalMs: engine.now) }
        do {
            _ = try await engine.ingest([late], arrivalMs: engine.now)
        } catch {
            #expect(error.code == .storeUnavailable)
        }
        try await load(for: outage)
        #expect(failures == 0, "ingest must keep accepting while ClickHouse is down")
        try ClickHouseTestEnvironment.node("start-node", "single")
        restarted = true
        try await load(for: 2)
        #expect(failures == 0)
        // Resent (as a client does after 503 + Retry-After) once ClickHouse is back, the late event counts once.
        var lateAccepted = -1
        try await waitUntil("the late event accepted once ClickHouse is back", timeout: .seconds(30)) {
            lateAccepted = try await engine.ingest([late], arrivalMs: engine.now).accepted
            return true
        }
        #expect(lateAccepted == 1)
        _ = oracle.add(late)
        // The store catches up: its markers reach what the engine applied.
        let applied = engine.appliedLogOffset
        try await waitUntil("the store's markers reach what the engine applied", timeout: .seconds(60)) { try store.logOffset() >= applied }
        try await expectExact(engine, oracle, nowMs: engine.now)
        engine.shutdown()
        let (reopened, _) = try makeClickHouseEngine(dir, topology: topology, database: database)
        try reopened.recover()
        reopened.start()
        try await expectExact(reopened, oracle, nowMs: reopened.now)
        reopened.shutdown()
    }
}
