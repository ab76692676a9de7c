import Foundation
import GRDB
import Logging
import SpeedflowAggregation
import SpeedflowModel
import Synchronization

/// The embedded store: one SQLite database (WAL) holding bucket states, dedup identities, cameras and the
/// log offset, every flush in one transaction.
///
/// Bucket aggregates and identities live in separate tables so a query's range scan reads only the small
/// aggregate rows (~100 bytes), never the identity blobs (8 bytes per event, appended in chunks per flush).
///
/// Integrity (Debian's SQLite has no checksum VFS): every commit also keeps a summary per (camera, UTC day) —
/// bucket rows, Σcount and a digest of the rows — and every read checks the whole days it touches against it,
/// so a damaged, vanished or foreign row is reported as `StoreError.corrupt`, never served as a number
/// (see `SQLiteStore+Integrity.swift`).
public final class SQLiteStore: StoreWriter {
    /// Swapped only by `quarantine` (at start, before anything else reads the store).
    let database: Mutex<DatabasePool>
    var pool: DatabasePool { database.withLock { $0 } }
    let path: String
    let logger: Logger
    let corruptionHandler = Mutex<(@Sendable (StoreError) -> Void)?>(nil)

    public init(path: String, logger: Logger = Logger(label: "speedflow.store")) throws {
        self.path = path
        self.logger = logger
        database = Mutex(try Self.open(path: path))
    }

    /// Opens (creating or upgrading) the database at `path`. A file SQLite finds malformed is `StoreError.corrupt`.
    static func open(path: String) throws -> DatabasePool {
        var config = Configuration()
        config.prepareDatabase { db in
            // The log is the durable source; the store needs atomicity, which WAL gives with NORMAL sync.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 16 MiB page cache per connection (one writer + up to four readers): bounded RSS.
            try db.execute(sql: "PRAGMA cache_size = -16384")
        }
        config.maximumReaderCount = 4
        do {
            let pool = try DatabasePool(path: path, configuration: config)
            let migrator = Self.migrator
            // GRDB would open a store migrated by a newer Speedflow and leave its newer tables unmaintained.
            let unknown = try pool.read { try migrator.appliedIdentifiers($0) }.subtracting(migrator.migrations)
            guard unknown.isEmpty else {
                throw StoreError(
                    .newer, "\(path) was written by a newer Speedflow (schema \(unknown.sorted().joined(separator: ", "))); use that version")
            }
            try migrator.migrate(pool)
            return pool
        } catch let error as DatabaseError where isCorruption(error) {
            throw StoreError(
                .corrupt, "\(path) cannot be opened: \(error.message ?? "\(error)"); \(StoreError.repairHint)")
        }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE camera (
                        id INTEGER PRIMARY KEY,
                        kvfv_id TEXT NOT NULL UNIQUE,
                        last_event_ms INTEGER,
                        last_arrival_ms INTEGER
                    );
                    CREATE TABLE bucket (
                        camera INTEGER NOT NULL,
                        bucket INTEGER NOT NULL,
                        state BLOB NOT NULL,
                        PRIMARY KEY (camera, bucket)
                    ) WITHOUT ROWID;
                    CREATE TABLE dedup (
                        camera INTEGER NOT NULL,
                        bucket INTEGER NOT NULL,
                        ids BLOB NOT NULL,
                        PRIMARY KEY (camera, bucket)
                    );
                    CREATE TABLE checkpoint (
                        name TEXT PRIMARY KEY,
                        log_offset INTEGER NOT NULL
                    );
                    INSERT INTO checkpoint (name, log_offset) VALUES ('aggregator', 0);
                    """)
        }
        // Identities are appended per flush as chunks instead of rewriting a bucket's whole set every flush
        // (which wrote in proportion to bucket size: quadratic over a bucket's five minutes).
        m.registerMigration("v2-dedup-chunks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE dedup_chunk (camera INTEGER NOT NULL, bucket INTEGER NOT NULL, ids BLOB NOT NULL);
                    CREATE INDEX dedup_chunk_key ON dedup_chunk (camera, bucket);
                    INSERT INTO dedup_chunk (camera, bucket, ids) SELECT camera, bucket, ids FROM dedup;
                    DROP TABLE dedup;
                    """)
        }
        // Per (camera, UTC day) summary of the bucket rows, checked on every read: detects damaged rows and rows
        // that vanished (a lost page). Filled from the existing rows, so an older data dir upgrades in place.
        m.registerMigration("v3-bucket-day") { db in
            try db.execute(
                sql: """
                    CREATE TABLE bucket_day (
                        camera INTEGER NOT NULL,
                        day INTEGER NOT NULL,
                        buckets INTEGER NOT NULL,
                        events INTEGER NOT NULL,
                        digest INTEGER NOT NULL,
                        PRIMARY KEY (camera, day)
                    ) WITHOUT ROWID;
                    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                    """)
            try fillDaySummaries(db)
            // Identities of buckets before the oldest one holding any were pruned by retention (pruning is by
            // bucket number, for all cameras at once); from now on `pruneIdentities` records the mark itself.
            try db.execute(
                sql: """
                    INSERT INTO meta (name, value)
                    SELECT 'identities_pruned_before', coalesce((SELECT min(bucket) FROM dedup_chunk), (SELECT max(bucket) + 1 FROM bucket))
                    WHERE coalesce((SELECT min(bucket) FROM dedup_chunk), (SELECT max(bucket) + 1 FROM bucket)) IS NOT NULL
                    """)
        }
        // Cameras that number their passes (`seq`): the ledger of received numbers in chunks, and the newest report.
        m.registerMigration("v4-sequences") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sequence_chunk (
                        camera INTEGER NOT NULL,
                        epoch INTEGER NOT NULL,
                        chunk INTEGER NOT NULL,
                        runs BLOB NOT NULL,
                        PRIMARY KEY (camera, epoch, chunk)
                    ) WITHOUT ROWID;
                    CREATE TABLE camera_report (
                        camera INTEGER PRIMARY KEY,
                        epoch INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        time_ms INTEGER NOT NULL,
                        arrival_ms INTEGER NOT NULL
                    );
                    """)
        }
        // Rejections per camera and 5-minute bucket of arrival time, by reason code: added to by each commit.
        m.registerMigration("v5-camera-rejection") { db in
            try db.execute(
                sql: """
                    CREATE TABLE camera_rejection (
                        camera INTEGER NOT NULL,
                        bucket INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (camera, bucket, reason)
                    ) WITHOUT ROWID;
                    """)
        }
        return m
    }

    public func sequences(cameras wanted: [Int64]?) throws -> [Int64: CameraSequence] {
        try guarded("reading sequence ledgers") {
            try pool.read { db in
                let filter = wanted.map { " WHERE camera IN (" + $0.map(String.init).joined(separator: ",") + ")" } ?? ""
                if let wanted, wanted.isEmpty { return [:] }
                let chunks = try Self.ledgerChunks(db, filter: filter)
                var result: [Int64: CameraSequence] = [:]
                for (camera, list) in chunks {
                    do {
                        result[camera] = CameraSequence(ledger: try SequenceLedger(chunks: list))
                    } catch {
                        throw StoreError(
                            .corrupt, "the sequence ledger of \(try Self.cameraName(db, camera)) does not decode; \(StoreError.repairHint)",
                            camera: camera)
                    }
                }
                for row in try Row.fetchAll(db, sql: "SELECT camera, epoch, seq, time_ms, arrival_ms FROM camera_report" + filter) {
                    let camera: Int64 = row[0]
                    let kvfv = try String.fetchOne(db, sql: "SELECT kvfv_id FROM camera WHERE id = ?", arguments: [camera]) ?? ""
                    result[camera, default: CameraSequence()].report = CameraReport(kvfvId: kvfv, epoch: row[1], seq: row[2], timeMs: row[3])
                    result[camera]?.reportArrivalMs = row[4]
                }
                return result
            }
        }
    }

    public func logOffset() throws -> UInt64 {
        try guarded("reading the log offset") {
            try pool.read { db in
                UInt64(try Int64.fetchOne(db, sql: "SELECT log_offset FROM checkpoint WHERE name = 'aggregator'") ?? 0)
            }
        }
    }

    public func cameras() throws -> [CameraRecord] {
        try guarded("reading cameras") {
            try pool.read { db in
                try Row.fetchAll(db, sql: "SELECT id, kvfv_id, last_event_ms, last_arrival_ms FROM camera ORDER BY kvfv_id").map {
                    CameraRecord(id: $0[0], kvfvId: $0[1], lastEventMs: $0[2], lastArrivalMs: $0[3])
                }
            }
        }
    }

    /// A bucket and its identities, for a late event. Its whole day is checked first, and its identities must
    /// number exactly its count (unless retention pruned them): dedup against damaged identities could count
    /// an event twice, so damage is an error, never a smaller identity set.
    public func loadBucket(_ key: BucketKey) throws -> StoredBucket? {
        try guarded("loading a bucket for a late event") {
            try pool.read { db -> StoredBucket? in
                let day = key.bucket.floorDiv(Self.bucketsPerDay)
                let found = try Self.verifiedStates(db, camera: key.camera, days: day...day, wanted: key.bucket..<(key.bucket + 1))
                let prunedBefore = try Int64.fetchOne(
                    db, sql: "SELECT value FROM meta WHERE name = 'identities_pruned_before'") ?? .min
                guard let state = found.first?.state else {
                    // No row, yet identities: the row was lost (its day's summary may have gone with it).
                    if key.bucket >= prunedBefore,
                        try Bool.fetchOne(
                            db, sql: "SELECT EXISTS (SELECT 1 FROM dedup_chunk WHERE camera = ? AND bucket = ?)",
                            arguments: [key.camera, key.bucket]) == true
                    {
                        throw StoreError(
                            .corrupt,
                            "bucket \(Timestamp.format(Bucket.start(ofIndex: key.bucket))) of \(try Self.cameraName(db, key.camera)) has dedup identities but no aggregate row: the row was lost",
                            camera: key.camera, day: day)
                    }
                    return nil
                }
                var ids: [UInt64] = []
                ids.reserveCapacity(Int(state.count))
                let chunks = try Data.fetchCursor(
                    db, sql: "SELECT ids FROM dedup_chunk WHERE camera = ? AND bucket = ?", arguments: [key.camera, key.bucket])
                var chunkCount = 0
                while let chunk = try chunks.next() {
                    Self.appendIds(chunk, to: &ids)
                    chunkCount += 1
                }
                if key.bucket >= prunedBefore && Int64(ids.count) != state.count - state.sequenced {
                    throw StoreError(
                        .corrupt,
                        "bucket \(Timestamp.format(Bucket.start(ofIndex: key.bucket))) of \(try Self.cameraName(db, key.camera)) holds \(ids.count) dedup identities for \(state.count) counted events: its dedup state is damaged, and counting against it could count an event twice",
                        camera: key.camera, day: day)
                }
                return StoredBucket(state: state, ids: ids, chunkCount: chunkCount)
            }
        }
    }

    public func commit(_ commit: StoreCommit) throws {
        try guarded("committing") { try write(commit) }
    }

    private func write(_ commit: StoreCommit) throws {
        try pool.write { db in
            let cam = try db.cachedStatement(
                sql: """
                    INSERT INTO camera (id, kvfv_id, last_event_ms, last_arrival_ms) VALUES (?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET last_event_ms = excluded.last_event_ms, last_arrival_ms = excluded.last_arrival_ms
                    """)
            for c in commit.cameras {
                try cam.execute(arguments: [c.id, c.kvfvId, c.lastEventMs, c.lastArrivalMs])
            }
            let bucket = try db.cachedStatement(sql: "INSERT OR REPLACE INTO bucket (camera, bucket, state) VALUES (?, ?, ?)")
            let chunk = try db.cachedStatement(sql: "INSERT INTO dedup_chunk (camera, bucket, ids) VALUES (?, ?, ?)")
            let clear = try db.cachedStatement(sql: "DELETE FROM dedup_chunk WHERE camera = ? AND bucket = ?")
            let previous = try db.cachedStatement(sql: "SELECT state FROM bucket WHERE camera = ? AND bucket = ?")
            var days: [DayKey: DaySummary] = [:]
            for b in commit.buckets {
                let encoded = Data(b.state.encoded())
                let dayKey = DayKey(camera: b.key.camera, day: b.key.bucket.floorDiv(Self.bucketsPerDay))
                var delta = days[dayKey] ?? DaySummary()
                // The summary moves by what the row held (as read, so damage already there stays visible) → new.
                if let old = try Row.fetchOne(previous, arguments: [b.key.camera, b.key.bucket]) {
                    try old.withUnsafeData(atIndex: 0) { data in
                        (data ?? Data()).withUnsafeBytes { delta.remove(camera: b.key.camera, bucket: b.key.bucket, state: $0) }
                    }
                }
                encoded.withUnsafeBytes { delta.add(camera: b.key.camera, bucket: b.key.bucket, state: $0, count: b.state.count) }
                days[dayKey] = delta
                try bucket.execute(arguments: [b.key.camera, b.key.bucket, encoded])
                if b.replacesIds { try clear.execute(arguments: [b.key.camera, b.key.bucket]) }
                if !b.addedIds.isEmpty {
                    try chunk.execute(arguments: [b.key.camera, b.key.bucket, Self.encodeIds(b.addedIds)])
                }
            }
            try Self.apply(days, db)
            let sequenceChunk = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO sequence_chunk (camera, epoch, chunk, runs) VALUES (?, ?, ?, ?)")
            let report = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO camera_report (camera, epoch, seq, time_ms, arrival_ms) VALUES (?, ?, ?, ?, ?)")
            for q in commit.sequences {
                for c in q.chunks { try sequenceChunk.execute(arguments: [q.camera, c.key.epoch, c.key.chunk, Data(c.bytes)]) }
                if let r = q.report {
                    try report.execute(arguments: [q.camera, r.epoch, r.seq, r.timeMs, q.reportArrivalMs ?? 0])
                }
            }
            let rejection = try db.cachedStatement(
                sql: """
                    INSERT INTO camera_rejection (camera, bucket, reason, count) VALUES (?, ?, ?, ?)
                    ON CONFLICT(camera, bucket, reason) DO UPDATE SET count = count + excluded.count
                    """)
            for r in commit.rejections {
                for (reason, n) in r.counts where n > 0 {
                    try rejection.execute(arguments: [r.key.camera, r.key.bucket, reason.rawValue, n])
                }
            }
            try db.execute(
                sql: "UPDATE checkpoint SET log_offset = ? WHERE name = 'aggregator'", arguments: [Int64(commit.logOffset)])
        }
    }

    public func rejections(camera: Int64, buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        guard !range.isEmpty else { return [:] }
        return try await guarded("reading a camera's rejections") {
            try await pool.read { db in
                var result: [Int64: [RejectionReason: Int64]] = [:]
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT bucket, reason, count FROM camera_rejection WHERE camera = ? AND bucket >= ? AND bucket < ?",
                    arguments: [camera, range.lowerBound, range.upperBound])
                while let row = try rows.next() {
                    // A reason code a newer Speedflow wrote: not one this version can name.
                    guard let reason = RejectionReason(rawValue: row[1]) else { continue }
                    let bucket: Int64 = row[0], count: Int64 = row[2]
                    result[bucket, default: [:]][reason, default: 0] += count
                }
                return result
            }
        }
    }

    public func rejectionsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        guard !range.isEmpty else { return [:] }
        return try await guarded("reading the fleet's rejections") {
            try await pool.read { db in
                var result: [Int64: [RejectionReason: Int64]] = [:]
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT camera, reason, sum(count) FROM camera_rejection WHERE bucket >= ? AND bucket < ? GROUP BY camera, reason",
                    arguments: [range.lowerBound, range.upperBound])
                while let row = try rows.next() {
                    guard let reason = RejectionReason(rawValue: row[1]) else { continue }
                    let camera: Int64 = row[0], count: Int64 = row[2]
                    result[camera, default: [:]][reason, default: 0] += count
                }
                return result
            }
        }
    }

    /// Reads the whole UTC days the range touches (one camera-day is 288 small rows) and checks each against its
    /// summary before returning only the buckets asked for.
    public func readStates(camera: Int64, buckets range: Range<Int64>, lanes: Bool) async throws -> [(bucket: Int64, state: BucketState)] {
        guard !range.isEmpty else { return [] }
        return try await guarded("reading a camera's buckets") {
            try await pool.read { db in
                let days = range.lowerBound.floorDiv(Self.bucketsPerDay)...(range.upperBound - 1).floorDiv(Self.bucketsPerDay)
                return try Self.verifiedStates(db, camera: camera, days: days, wanted: range, lanes: lanes)
            }
        }
    }

    /// Every camera's full states in `range`. Rows that do not decode are corruption; the per-day check is left to
    /// `countsByCamera`, which the fleet view reads beside this over the same day.
    public func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await guarded("reading the fleet's buckets") {
            try await pool.read { db in
                let rows = try Row.fetchCursor(
                    db, sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ?",
                    arguments: [range.lowerBound, range.upperBound])
                var result: [Int64: [Int64: BucketState]] = [:]
                while let row = try rows.next() {
                    let camera: Int64 = row[0], bucket: Int64 = row[1]
                    result[camera, default: [:]][bucket] = try row.withUnsafeData(atIndex: 2) { data in
                        // The fleet view reads the current window's figures only.
                        try Self.decode(data, camera: camera, bucket: bucket, db, lanes: false)
                    }
                }
                return result
            }
        }
    }

    /// Counts of every camera in `range`, the whole UTC days around it checked against their summaries (rows
    /// and Σcount: counts are all this serves).
    public func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        guard !range.isEmpty else { return [:] }
        return try await guarded("reading the fleet's counts") {
            try await pool.read { db in try Self.verifiedCounts(db, buckets: range) }
        }
    }

    public func statesByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        guard !range.isEmpty, !cameras.isEmpty else { return [:] }
        return try await guarded("reading a page of the fleet's buckets") {
            try await pool.read { db in
                var result: [Int64: [Int64: BucketState]] = [:]
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ? AND camera IN ("
                        + cameras.map { _ in "?" }.joined(separator: ",") + ")",
                    arguments: StatementArguments([range.lowerBound, range.upperBound] + cameras))
                while let row = try rows.next() {
                    let camera: Int64 = row[0], bucket: Int64 = row[1]
                    result[camera, default: [:]][bucket] = try row.withUnsafeData(atIndex: 2) { data in
                        // The fleet view reads the current window's figures only.
                        try Self.decode(data, camera: camera, bucket: bucket, db, lanes: false)
                    }
                }
                return result
            }
        }
    }

    /// Checked against the cameras' day summaries like the fleet's read (one query each for at most 1,000 ids:
    /// SQLite's default limit is 32,766 parameters).
    public func countsByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        guard !range.isEmpty, !cameras.isEmpty else { return [:] }
        return try await guarded("reading a page of the fleet's counts") {
            try await pool.read { db in
                var result: [Int64: [Int64: Int64]] = [:]
                for start in stride(from: 0, to: cameras.count, by: 1000) {
                    let some = Array(cameras[start..<min(cameras.count, start + 1000)])
                    result.merge(try Self.verifiedCounts(db, buckets: range, cameras: some)) { a, _ in a }
                }
                return result
            }
        }
    }

    public func reset(fromBucket: Int64, logOffset: UInt64) throws {
        try guarded("resetting for a rebuild") {
            try pool.write { db in
                try Self.forgetSummaries(fromBucket: fromBucket, db)
                try db.execute(sql: "DELETE FROM bucket WHERE bucket >= ?", arguments: [fromBucket])
                try db.execute(sql: "DELETE FROM dedup_chunk WHERE bucket >= ?", arguments: [fromBucket])
                // Arrival buckets: the replay that follows counts the rejections of records arriving from then on.
                try db.execute(sql: "DELETE FROM camera_rejection WHERE bucket >= ?", arguments: [fromBucket])
                // The ledger cannot be cut by time: the replay that follows rebuilds it from the log.
                try db.execute(sql: "DELETE FROM sequence_chunk")
                try db.execute(sql: "DELETE FROM camera_report")
                try db.execute(
                    sql: "UPDATE checkpoint SET log_offset = ? WHERE name = 'aggregator'", arguments: [Int64(logOffset)])
            }
        }
    }

    /// Also records the mark, so `loadBucket` knows a bucket below it has no identities by design, not by damage.
    public func pruneIdentities(before bucket: Int64) throws -> Int {
        try guarded("pruning identities") {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM dedup_chunk WHERE bucket < ?", arguments: [bucket])
                let pruned = db.changesCount
                try db.execute(
                    sql: """
                        INSERT INTO meta (name, value) VALUES ('identities_pruned_before', ?)
                        ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)
                        """,
                    arguments: [bucket])
                return pruned
            }
        }
    }

    public func sizeInBytes() -> Int64 {
        [path, path + "-wal"].reduce(0) { total, p in
            total + ((try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    static func encodeIds(_ ids: [UInt64]) -> Data {
        var data = Data(count: ids.count * 8)
        data.withUnsafeMutableBytes { raw in
            for (i, id) in ids.enumerated() { raw.storeBytes(of: id.littleEndian, toByteOffset: i * 8, as: UInt64.self) }
        }
        return data
    }

    static func appendIds(_ data: Data, to ids: inout [UInt64]) {
        data.withUnsafeBytes { raw in
            for i in 0..<(raw.count / 8) {
                ids.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
            }
        }
    }
}
