import Foundation
import GRDB
import Logging
import SpeedflowAggregation

/// The embedded store: one SQLite database (WAL) holding bucket states, dedup identities, cameras and the
/// log offset, every flush in one transaction.
///
/// Bucket aggregates and identities live in separate tables so a query's range scan reads only the small
/// aggregate rows (~100 bytes), never the identity blobs (8 bytes per event, appended in chunks per flush).
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
                let stateData = try Data.fetchOne(
                    db, sql: "SELECT state FROM bucket WHERE camera = ? AND bucket = ?", arguments: [key.camera, key.bucket])
            else { return nil }
            let state = try stateData.withUnsafeBytes { try BucketState.decode($0) }
            var ids: [UInt64] = []
            ids.reserveCapacity(Int(state.count))
            let chunks = try Data.fetchCursor(
                db, sql: "SELECT ids FROM dedup_chunk WHERE camera = ? AND bucket = ?", arguments: [key.camera, key.bucket])
            var chunkCount = 0
            while let chunk = try chunks.next() {
                Self.appendIds(chunk, to: &ids)
                chunkCount += 1
            }
            return StoredBucket(state: state, ids: ids, chunkCount: chunkCount)
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
            let chunk = try db.cachedStatement(sql: "INSERT INTO dedup_chunk (camera, bucket, ids) VALUES (?, ?, ?)")
            let clear = try db.cachedStatement(sql: "DELETE FROM dedup_chunk WHERE camera = ? AND bucket = ?")
            for b in commit.buckets {
                try bucket.execute(arguments: [b.key.camera, b.key.bucket, Data(b.state.encoded())])
                if b.replacesIds { try clear.execute(arguments: [b.key.camera, b.key.bucket]) }
                if !b.addedIds.isEmpty {
                    try chunk.execute(arguments: [b.key.camera, b.key.bucket, Self.encodeIds(b.addedIds)])
                }
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

    public func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        try await pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ?",
                arguments: [range.lowerBound, range.upperBound])
            var result: [Int64: [Int64: Int64]] = [:]
            while let row = try rows.next() {
                let data: Data = row[2]
                result[row[0], default: [:]][row[1]] = try data.withUnsafeBytes { try BucketState.decodeCount($0) }
            }
            return result
        }
    }

    public func reset(fromBucket: Int64, logOffset: UInt64) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM bucket WHERE bucket >= ?", arguments: [fromBucket])
            try db.execute(sql: "DELETE FROM dedup_chunk WHERE bucket >= ?", arguments: [fromBucket])
            try db.execute(
                sql: "UPDATE checkpoint SET log_offset = ? WHERE name = 'aggregator'", arguments: [Int64(logOffset)])
        }
    }

    public func pruneIdentities(before bucket: Int64) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM dedup_chunk WHERE bucket < ?", arguments: [bucket])
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

    static func appendIds(_ data: Data, to ids: inout [UInt64]) {
        data.withUnsafeBytes { raw in
            for i in 0..<(raw.count / 8) {
                ids.append(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
            }
        }
    }
}
