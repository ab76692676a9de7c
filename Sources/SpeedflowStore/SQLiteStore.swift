import Foundation
import GRDB
import Logging
import SpeedflowAggregation

/// The embedded store: one SQLite database (WAL) holding bucket states, dedup identities, cameras and the
/// log offset, every flush in one transaction.
///
/// Bucket aggregates and identity sets live in separate tables so a query's range scan reads only the small
/// aggregate rows (~100 bytes), never the identity blobs (8 bytes per event).
public final class SQLiteStore: Store {
    let pool: DatabasePool
    let path: String
    let logger: Logger

    public init(path: String, logger: Logger = Logger(label: "speedflow.store")) throws {
        self.path = path
        self.logger = logger
        var config = Configuration()
        config.prepareDatabase { db in
            // The log is the durable source; the store needs atomicity, which WAL gives with NORMAL sync.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 16 MiB page cache per connection (one writer + up to four readers): bounded RSS.
            try db.execute(sql: "PRAGMA cache_size = -16384")
        }
        config.maximumReaderCount = 4
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
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
        return m
    }

    public func logOffset() throws -> UInt64 {
        try pool.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT log_offset FROM checkpoint WHERE name = 'aggregator'") ?? 0)
        }
    }

    public func cameras() throws -> [CameraRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, kvfv_id, last_event_ms, last_arrival_ms FROM camera ORDER BY kvfv_id").map {
                CameraRecord(id: $0[0], kvfvId: $0[1], lastEventMs: $0[2], lastArrivalMs: $0[3])
            }
        }
    }

    public func loadBucket(_ key: BucketKey) throws -> StoredBucket? {
        try pool.read { db -> StoredBucket? in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT b.state, d.ids FROM bucket b LEFT JOIN dedup d ON d.camera = b.camera AND d.bucket = b.bucket
                        WHERE b.camera = ? AND b.bucket = ?
                        """,
                    arguments: [key.camera, key.bucket])
            else { return nil }
            let stateData: Data = row[0]
            let idsData: Data? = row[1]
            let state = try stateData.withUnsafeBytes { try BucketState.decode($0) }
            return StoredBucket(state: state, ids: idsData.map(Self.decodeIds) ?? [])
        }
    }

    public func commit(_ commit: StoreCommit) throws {
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
            let dedup = try db.cachedStatement(sql: "INSERT OR REPLACE INTO dedup (camera, bucket, ids) VALUES (?, ?, ?)")
            for (key, b) in commit.buckets {
                try bucket.execute(arguments: [key.camera, key.bucket, Data(b.state.encoded())])
                try dedup.execute(arguments: [key.camera, key.bucket, Self.encodeIds(b.ids)])
            }
            try db.execute(
                sql: "UPDATE checkpoint SET log_offset = ? WHERE name = 'aggregator'", arguments: [Int64(commit.logOffset)])
        }
    }

    public func readStates(camera: Int64, buckets range: Range<Int64>) async throws -> [(bucket: Int64, state: BucketState)] {
        try await pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT bucket, state FROM bucket WHERE camera = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
                arguments: [camera, range.lowerBound, range.upperBound])
            var result: [(bucket: Int64, state: BucketState)] = []
            while let row = try rows.next() {
                let data: Data = row[1]
                result.append((row[0], try data.withUnsafeBytes { try BucketState.decode($0) }))
            }
            return result
        }
    }

    public func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ?",
                arguments: [range.lowerBound, range.upperBound])
            var result: [Int64: [Int64: BucketState]] = [:]
            while let row = try rows.next() {
                let data: Data = row[2]
                result[row[0], default: [:]][row[1]] = try data.withUnsafeBytes { try BucketState.decode($0) }
            }
            return result
        }
    }

    public func reset(fromBucket: Int64, logOffset: UInt64) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM bucket WHERE bucket >= ?", arguments: [fromBucket])
            try db.execute(sql: "DELETE FROM dedup WHERE bucket >= ?", arguments: [fromBucket])
            try db.execute(
                sql: "UPDATE checkpoint SET log_offset = ? WHERE name = 'aggregator'", arguments: [Int64(logOffset)])
        }
    }

    public func pruneIdentities(before bucket: Int64) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM dedup WHERE bucket < ?", arguments: [bucket])
            return db.changesCount
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

    static func decodeIds(_ data: Data) -> [UInt64] {
        data.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
    }
}
