import Foundation
import GRDB
import SpeedflowAggregation
import SpeedflowModel

/// A camera's UTC day: the unit the store's integrity summary is kept and checked in.
struct DayKey: Hashable, Comparable {
    var camera: Int64
    var day: Int64

    static func < (a: DayKey, b: DayKey) -> Bool { (a.camera, a.day) < (b.camera, b.day) }
}

/// What a camera-day's bucket rows add up to: how many rows, Σcount, and a wrapping sum of per-row digests
/// (each over camera, bucket number and the state's bytes). Order-independent and updatable in place, so a
/// commit moves it by (new row − old row) in the same transaction. A missing row changes `buckets`, a
/// damaged, foreign or moved one changes `digest`.
struct DaySummary: Equatable {
    var buckets: Int64 = 0
    var events: Int64 = 0
    var digest: UInt64 = 0

    /// Written by `salvage` for a day that could not be verified beyond the log's horizon: it reads as corrupt
    /// for good (until restored from a backup), instead of as the empty day its missing rows would suggest.
    static let unverifiable = DaySummary(buckets: -1, events: -1, digest: 0)
    var isUnverifiable: Bool { buckets < 0 }

    mutating func add(camera: Int64, bucket: Int64, state: UnsafeRawBufferPointer, count: Int64) {
        buckets += 1
        events += count
        digest &+= Self.rowDigest(camera: camera, bucket: bucket, state)
    }

    /// Takes out a row as it was read (a count that does not decode is taken as 0, leaving the day mismatched).
    mutating func remove(camera: Int64, bucket: Int64, state: UnsafeRawBufferPointer) {
        buckets -= 1
        events -= (try? BucketState.decodeCount(state)) ?? 0
        digest &-= Self.rowDigest(camera: camera, bucket: bucket, state)
    }

    mutating func merge(_ d: DaySummary) {
        buckets += d.buckets
        events += d.events
        digest &+= d.digest
    }

    /// A 64-bit mix of a row (not cryptographic: it detects damage, not forgery). ~200-byte states hash in tens
    /// of nanoseconds, so checking a camera-day's 288 rows costs microseconds.
    static func rowDigest(camera: Int64, bucket: Int64, _ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = fmix(UInt64(bitPattern: camera) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(bitPattern: bucket)) ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = ((h ^ (w &* 0x87C3_7B91_1142_53D5)) << 31 | (h ^ (w &* 0x87C3_7B91_1142_53D5)) >> 33) &* 0x4CF5_AD43_2745_937F
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        return fmix(h ^ tail &* 0x52DC_E729_DA3E_D0A5)
    }

    private static func fmix(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }
}

/// What `SQLiteStore.salvage` carried over from a damaged store.
public struct SalvageReport: Sendable, CustomStringConvertible {
    public var cameras = 0
    /// Camera-days copied after they verified against their summaries, and their bucket rows.
    public var days = 0
    public var buckets = 0
    /// Camera-days that failed their check or could not be read: kept as `unverifiable`, so they answer
    /// `store_corrupt` instead of a number.
    public var damagedDays: [String] = []
    /// What could not be read at all (whole tables, cameras).
    public var unreadable: [String] = []

    public var description: String {
        var s = "salvaged \(cameras) cameras, \(days) camera-days (\(buckets) buckets) that verified"
        if !damagedDays.isEmpty {
            s += "; \(damagedDays.count) camera-days damaged (they answer store_corrupt): "
                + damagedDays.prefix(20).joined(separator: "; ") + (damagedDays.count > 20 ? "; …" : "")
        }
        if !unreadable.isEmpty { s += "; unreadable: " + unreadable.joined(separator: "; ") }
        return s
    }
}

extension SQLiteStore {
    static let bucketsPerDay: Int64 = 86_400_000 / Bucket.durationMs

    /// The database file.
    public var filePath: String { path }

    /// Closes the database (checkpointing its WAL); later calls fail. For tools and tests that then touch the file.
    public func close() throws { try pool.close() }

    public func onCorruption(_ handler: @escaping @Sendable (StoreError) -> Void) {
        corruptionHandler.withLock { $0 = handler }
    }

    // MARK: - Errors

    static func isCorruption(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_CORRUPT || error.resultCode == .SQLITE_NOTADB
    }

    /// Runs `body`, turning SQLite's "malformed"/"not a database" into `StoreError.corrupt` and reporting every
    /// corruption to the handler (one log line and one metric per detection, wherever it was found).
    func guarded<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw reported(error, what)
        }
    }

    func guarded<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw reported(error, what)
        }
    }

    private func reported(_ error: any Error, _ what: String) -> any Error {
        let corrupt: StoreError
        if let e = error as? StoreError, e.code == .corrupt {
            corrupt = e
        } else if let e = error as? DatabaseError, Self.isCorruption(e) {
            corrupt = StoreError(.corrupt, "SQLite reports \(path) damaged while \(what): \(e.message ?? "\(e)")")
        } else {
            return error
        }
        corruptionHandler.withLock { $0 }?(corrupt)
        return corrupt
    }

    static func cameraName(_ db: Database, _ camera: Int64) throws -> String {
        let name = try? String.fetchOne(db, sql: "SELECT kvfv_id FROM camera WHERE id = ?", arguments: [camera])
        return name.map { "camera \($0)" } ?? "camera #\(camera)"
    }

    static func dayName(_ day: Int64) -> String { String(Timestamp.format(day * 86_400_000).prefix(10)) }

    static func decode(_ data: Data?, camera: Int64, bucket: Int64, _ db: Database, lanes: Bool = true) throws -> BucketState {
        do {
            return try (data ?? Data()).withUnsafeBytes { try BucketState.decode($0, lanes: lanes) }
        } catch {
            throw StoreError(
                .corrupt,
                "the state of bucket \(Timestamp.format(Bucket.start(ofIndex: bucket))) of \(try cameraName(db, camera)) does not decode",
                camera: camera, day: bucket.floorDiv(bucketsPerDay))
        }
    }

    static func mismatch(_ db: Database, _ key: DayKey, actual: DaySummary, expected: DaySummary) throws -> StoreError {
        let what = "\(try cameraName(db, key.camera)), \(dayName(key.day)) (UTC)"
        let message: String
        if expected.isUnverifiable {
            message = "\(what) was damaged beyond the log's horizon when the store was salvaged; its numbers are unknown (restore store.sqlite from a backup)"
        } else if actual.buckets != expected.buckets || actual.events != expected.events {
            message = "\(what): \(actual.buckets) bucket rows holding \(actual.events) events where the day's summary records \(expected.buckets) rows holding \(expected.events) events; rows are missing or damaged"
        } else {
            message = "\(what): a bucket row's content differs from what was committed (digest mismatch); a row is damaged"
        }
        return StoreError(.corrupt, message + "; " + StoreError.repairHint, camera: key.camera, day: key.day)
    }

    // MARK: - Checked reads

    /// Reads `camera`'s rows of the UTC days `days`, checks each day against its summary (rows, Σcount, digest),
    /// and returns the decoded states of the buckets in `wanted`, ascending.
    static func verifiedStates(
        _ db: Database, camera: Int64, days: ClosedRange<Int64>, wanted: Range<Int64>, lanes: Bool = true
    ) throws -> [(bucket: Int64, state: BucketState)] {
        var expected: [Int64: DaySummary] = [:]
        let summaries = try Row.fetchCursor(
            try db.cachedStatement(
                sql: "SELECT day, buckets, events, digest FROM bucket_day WHERE camera = ? AND day >= ? AND day <= ?"),
            arguments: [camera, days.lowerBound, days.upperBound])
        while let r = try summaries.next() {
            expected[r[0]] = DaySummary(buckets: r[1], events: r[2], digest: UInt64(bitPattern: r[3]))
        }
        let rows = try Row.fetchCursor(
            try db.cachedStatement(
                sql: "SELECT bucket, state FROM bucket WHERE camera = ? AND bucket >= ? AND bucket < ? ORDER BY bucket"),
            arguments: [camera, days.lowerBound * bucketsPerDay, (days.upperBound + 1) * bucketsPerDay])
        var result: [(bucket: Int64, state: BucketState)] = []
        var day: Int64?
        var actual = DaySummary()
        func close(_ day: Int64) throws {
            let want = expected.removeValue(forKey: day) ?? DaySummary()
            if want != actual {
                throw try mismatch(db, DayKey(camera: camera, day: day), actual: actual, expected: want)
            }
        }
        while let row = try rows.next() {
            let bucket: Int64 = row[0]
            let d = bucket.floorDiv(bucketsPerDay)
            if d != day {
                if let day { try close(day) }
                day = d
                actual = DaySummary()
            }
            try row.withUnsafeData(atIndex: 1) { data in
                let data = data ?? Data()
                if wanted.contains(bucket) {
                    let state = try decode(data, camera: camera, bucket: bucket, db, lanes: lanes)
                    data.withUnsafeBytes { actual.add(camera: camera, bucket: bucket, state: $0, count: state.count) }
                    result.append((bucket, state))
                } else {
                    try data.withUnsafeBytes { raw in
                        guard let count = try? BucketState.decodeCount(raw) else {
                            throw StoreError(
                                .corrupt,
                                "the state of bucket \(Timestamp.format(Bucket.start(ofIndex: bucket))) of \(try cameraName(db, camera)) does not decode",
                                camera: camera, day: d)
                        }
                        actual.add(camera: camera, bucket: bucket, state: raw, count: count)
                    }
                }
            }
        }
        if let day { try close(day) }
        // Days the summary knows and no row is left of.
        if let (d, want) = expected.min(by: { $0.key < $1.key }), want != DaySummary() {
            throw try mismatch(db, DayKey(camera: camera, day: d), actual: DaySummary(), expected: want)
        }
        return result
    }

    /// Every camera's counts per bucket in `range`; the whole UTC days around it checked (rows and Σcount).
    /// With `cameras`, theirs only (index ranges: a page of the fleet view reads in proportion to it).
    static func verifiedCounts(_ db: Database, buckets range: Range<Int64>, cameras only: [Int64]? = nil) throws -> [Int64: [Int64: Int64]] {
        let days = range.lowerBound.floorDiv(bucketsPerDay)...(range.upperBound - 1).floorDiv(bucketsPerDay)
        var expected: [DayKey: DaySummary] = [:]
        let someCameras = only.map { " AND camera IN (" + $0.map { _ in "?" }.joined(separator: ",") + ")" } ?? ""
        let summaries = try Row.fetchCursor(
            db, sql: "SELECT camera, day, buckets, events FROM bucket_day WHERE day >= ? AND day <= ?" + someCameras,
            arguments: StatementArguments([days.lowerBound, days.upperBound] + (only ?? [])))
        while let r = try summaries.next() {
            expected[DayKey(camera: r[0], day: r[1])] = DaySummary(buckets: r[2], events: r[3])
        }
        let rows = try Row.fetchCursor(
            db, sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ?" + someCameras + " ORDER BY camera, bucket",
            arguments: StatementArguments([days.lowerBound * bucketsPerDay, (days.upperBound + 1) * bucketsPerDay] + (only ?? [])))
        var result: [Int64: [Int64: Int64]] = [:]
        var key: DayKey?
        var actual = DaySummary()
        func close(_ key: DayKey) throws {
            var want = expected.removeValue(forKey: key) ?? DaySummary()
            want.digest = 0
            if want != actual { throw try mismatch(db, key, actual: actual, expected: want) }
        }
        while let row = try rows.next() {
            let camera: Int64 = row[0], bucket: Int64 = row[1]
            let k = DayKey(camera: camera, day: bucket.floorDiv(bucketsPerDay))
            if k != key {
                if let key { try close(key) }
                key = k
                actual = DaySummary()
            }
            let count = try row.withUnsafeData(atIndex: 2) { data in
                try (data ?? Data()).withUnsafeBytes { raw -> Int64 in
                    guard let n = try? BucketState.decodeCount(raw) else {
                        throw StoreError(
                            .corrupt,
                            "the state of bucket \(Timestamp.format(Bucket.start(ofIndex: bucket))) of \(try cameraName(db, camera)) does not decode",
                            camera: camera, day: k.day)
                    }
                    return n
                }
            }
            actual.buckets += 1
            actual.events += count
            if range.contains(bucket) { result[camera, default: [:]][bucket] = count }
        }
        if let key { try close(key) }
        if let (k, want) = expected.filter({ $0.value.buckets != 0 || $0.value.events != 0 }).min(by: { $0.key < $1.key }) {
            throw try mismatch(db, k, actual: DaySummary(), expected: want)
        }
        return result
    }

    // MARK: - Keeping the summaries

    /// Adds per-day deltas to the stored summaries (an unverifiable day stays so).
    static func apply(_ deltas: [DayKey: DaySummary], _ db: Database) throws {
        guard !deltas.isEmpty else { return }
        let read = try db.cachedStatement(sql: "SELECT buckets, events, digest FROM bucket_day WHERE camera = ? AND day = ?")
        let write = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO bucket_day (camera, day, buckets, events, digest) VALUES (?, ?, ?, ?, ?)")
        let delete = try db.cachedStatement(sql: "DELETE FROM bucket_day WHERE camera = ? AND day = ?")
        for (key, delta) in deltas {
            var s = DaySummary()
            if let r = try Row.fetchOne(read, arguments: [key.camera, key.day]) {
                s = DaySummary(buckets: r[0], events: r[1], digest: UInt64(bitPattern: r[2]))
            }
            if s.isUnverifiable { continue }
            s.merge(delta)
            if s == DaySummary() {
                try delete.execute(arguments: [key.camera, key.day])
            } else {
                try write.execute(arguments: [key.camera, key.day, s.buckets, s.events, Int64(bitPattern: s.digest)])
            }
        }
    }

    /// Before `reset` deletes buckets from `fromBucket` on: whole days lose their summary; a partly kept day
    /// has the deleted rows (as read) taken out, so damage in its kept part stays visible.
    static func forgetSummaries(fromBucket: Int64, _ db: Database) throws {
        guard fromBucket != .min else {
            try db.execute(sql: "DELETE FROM bucket_day")
            return
        }
        let day = fromBucket.floorDiv(bucketsPerDay)
        guard fromBucket != day * bucketsPerDay else {
            try db.execute(sql: "DELETE FROM bucket_day WHERE day >= ?", arguments: [day])
            return
        }
        var deltas: [DayKey: DaySummary] = [:]
        let rows = try Row.fetchCursor(
            db, sql: "SELECT camera, bucket, state FROM bucket WHERE bucket >= ? AND bucket < ?",
            arguments: [fromBucket, (day + 1) * bucketsPerDay])
        while let row = try rows.next() {
            let camera: Int64 = row[0], bucket: Int64 = row[1]
            try row.withUnsafeData(atIndex: 2) { data in
                (data ?? Data()).withUnsafeBytes {
                    deltas[DayKey(camera: camera, day: day), default: DaySummary()].remove(camera: camera, bucket: bucket, state: $0)
                }
            }
        }
        try apply(deltas, db)
        try db.execute(sql: "DELETE FROM bucket_day WHERE day > ?", arguments: [day])
    }

    /// Migration: summaries of every camera-day from the rows as they are.
    static func fillDaySummaries(_ db: Database) throws {
        let insert = try db.makeStatement(
            sql: "INSERT INTO bucket_day (camera, day, buckets, events, digest) VALUES (?, ?, ?, ?, ?)")
        var key: DayKey?
        var summary = DaySummary()
        func flush() throws {
            guard let key else { return }
            try insert.execute(arguments: [key.camera, key.day, summary.buckets, summary.events, Int64(bitPattern: summary.digest)])
        }
        let rows = try Row.fetchCursor(db, sql: "SELECT camera, bucket, state FROM bucket ORDER BY camera, bucket")
        while let row = try rows.next() {
            let camera: Int64 = row[0], bucket: Int64 = row[1]
            let k = DayKey(camera: camera, day: bucket.floorDiv(bucketsPerDay))
            if k != key {
                try flush()
                key = k
                summary = DaySummary()
            }
            try row.withUnsafeData(atIndex: 2) { data in
                (data ?? Data()).withUnsafeBytes {
                    summary.add(camera: camera, bucket: bucket, state: $0, count: (try? BucketState.decodeCount($0)) ?? 0)
                }
            }
        }
        try flush()
    }

    // MARK: - Whole-store checks

    /// `PRAGMA quick_check` (b-tree structure, page by page: O(file size)), and with `summaries` every
    /// camera-day against its summary (one ordered pass over bucket rows and summaries). Read-only, in one read
    /// transaction beside the writer (WAL). At most `limit` problems are listed.
    public func checkIntegrity(summaries: Bool) throws -> [String] {
        try checkIntegrity(summaries: summaries, limit: 20)
    }

    public func checkIntegrity(summaries: Bool, limit: Int) throws -> [String] {
        try guarded("checking integrity") {
            try pool.read { db in
                var problems: [String] = []
                let quick = try String.fetchAll(db, sql: "PRAGMA quick_check(\(limit))")
                if quick != ["ok"] { problems += quick.map { "quick_check: \($0)" } }
                if summaries && problems.isEmpty {
                    problems += try Self.verifyAllDays(db, limit: limit)
                    problems += try Self.verifySequenceLedgers(db, limit: limit - problems.count)
                }
                return problems
            }
        }
    }

    /// The stored ledger chunks per camera (`filter`: a `WHERE` clause on `camera`, or empty for all).
    static func ledgerChunks(_ db: Database, filter: String) throws -> [Int64: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])]] {
        var chunks: [Int64: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT camera, epoch, chunk, runs FROM sequence_chunk" + filter) {
            let data: Data = row[3]
            chunks[row[0], default: []].append((SequenceLedger.ChunkKey(epoch: row[1], chunk: row[2]), [UInt8](data)))
        }
        return chunks
    }

    /// Every camera's sequence ledger decodes (a damaged one could let a resend count twice).
    static func verifySequenceLedgers(_ db: Database, limit: Int) throws -> [String] {
        guard limit > 0 else { return [] }
        let chunks = try ledgerChunks(db, filter: "")
        var problems: [String] = []
        for (camera, list) in chunks.sorted(by: { $0.key < $1.key }) where problems.count < limit {
            if (try? SequenceLedger(chunks: list)) == nil {
                problems.append("the sequence ledger of \(try cameraName(db, camera)) does not decode: resends of its numbered passes could count twice")
            }
        }
        return problems
    }

    static func verifyAllDays(_ db: Database, limit: Int) throws -> [String] {
        var problems: [String] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT camera, bucket, state FROM bucket ORDER BY camera, bucket")
        let sums = try Row.fetchCursor(db, sql: "SELECT camera, day, buckets, events, digest FROM bucket_day ORDER BY camera, day")
        var pending: (key: DayKey, summary: DaySummary)? = try sums.next().map {
            (DayKey(camera: $0[0], day: $0[1]), DaySummary(buckets: $0[2], events: $0[3], digest: UInt64(bitPattern: $0[4])))
        }
        func nextSummary() throws {
            pending = try sums.next().map {
                (DayKey(camera: $0[0], day: $0[1]), DaySummary(buckets: $0[2], events: $0[3], digest: UInt64(bitPattern: $0[4])))
            }
        }
        // Days a salvage marked unverifiable were reported then; reads answer them as store_corrupt, but they
        // are known damage, not news (`markedDamagedDays` lists them).
        func close(_ key: DayKey, _ actual: DaySummary) throws {
            while let p = pending, p.key < key {
                if !p.summary.isUnverifiable {
                    problems.append(try mismatch(db, p.key, actual: DaySummary(), expected: p.summary).message)
                }
                try nextSummary()
            }
            var want = DaySummary()
            if let p = pending, p.key == key {
                want = p.summary
                try nextSummary()
            }
            if want != actual && !want.isUnverifiable {
                problems.append(try mismatch(db, key, actual: actual, expected: want).message)
            }
        }
        var key: DayKey?
        var actual = DaySummary()
        while problems.count < limit, let row = try rows.next() {
            let camera: Int64 = row[0], bucket: Int64 = row[1]
            let k = DayKey(camera: camera, day: bucket.floorDiv(bucketsPerDay))
            if k != key {
                if let key { try close(key, actual) }
                key = k
                actual = DaySummary()
            }
            try row.withUnsafeData(atIndex: 2) { data in
                try (data ?? Data()).withUnsafeBytes { raw in
                    guard let n = try? BucketState.decodeCount(raw) else {
                        problems.append(
                            "the state of bucket \(Timestamp.format(Bucket.start(ofIndex: bucket))) of \(try cameraName(db, camera)) does not decode")
                        return
                    }
                    actual.add(camera: camera, bucket: bucket, state: raw, count: n)
                }
            }
        }
        if let key, problems.count < limit { try close(key, actual) }
        while problems.count < limit, let p = pending {
            if !p.summary.isUnverifiable {
                problems.append(try mismatch(db, p.key, actual: DaySummary(), expected: p.summary).message)
            }
            try nextSummary()
        }
        return problems
    }

    /// Camera-days a salvage marked unverifiable (damaged beyond the log's horizon): they answer store_corrupt.
    public func markedDamagedDays(limit: Int = 100) throws -> [String] {
        try guarded("listing damaged days") {
            try pool.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT camera, day FROM bucket_day WHERE buckets < 0 ORDER BY camera, day LIMIT ?", arguments: [limit]
                ).map { "\(try Self.cameraName(db, $0[0])), \(Self.dayName($0[1])) (UTC)" }
            }
        }
    }

    // MARK: - Repair

    /// Closes the database, moves its files aside (`store.sqlite.corrupt-<UTC time>`, with its `-wal`/`-shm`),
    /// and opens a new empty store at the same path. Only while nothing else uses the store (at start).
    public func quarantine(reason: String) throws -> String? {
        let path = self.path
        return try database.withLock { pool throws -> String in
            // Closed first: a connection closing later would checkpoint into, then delete, the new store's WAL.
            try pool.close()
            let aside = try Self.moveAside(path)
            pool = try Self.open(path: path)
            logger.error(
                "Store moved aside", metadata: ["store.path": "\(path)", "store.moved_to": "\(aside)", "reason": "\(reason)"])
            return aside
        }
    }

    /// Moves a database's files aside (never deletes them); returns the new path of the main file.
    public static func moveAside(_ path: String) throws -> String {
        let fm = FileManager.default
        let stamp = Timestamp.format(Int64(Date().timeIntervalSince1970 * 1000))
            .replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "").prefix(15)
        var aside = "\(path).corrupt-\(stamp)Z"
        var n = 2
        while fm.fileExists(atPath: aside) {
            aside = "\(path).corrupt-\(stamp)Z-\(n)"
            n += 1
        }
        for suffix in ["", "-wal", "-shm"] where fm.fileExists(atPath: path + suffix) {
            try fm.moveItem(atPath: path + suffix, toPath: aside + suffix)
        }
        return aside
    }

    /// Copies into this (new, empty) store what of the damaged store at `damagedPath` lies before `limit` (a
    /// UTC day boundary: the log covers from there on) and verifies: cameras, every camera-day whose rows match
    /// its summary, with their identities. A day that fails, or cannot be read, gets an `unverifiable`
    /// summary so it answers `store_corrupt`, never the empty day its missing rows would suggest.
    public func salvage(from damagedPath: String, before limit: Int64) throws -> SalvageReport {
        precondition(limit == .max || limit.floorDiv(Self.bucketsPerDay) * Self.bucketsPerDay == limit, "limit must start a UTC day")
        var report = SalvageReport()
        var config = Configuration()
        config.readonly = true
        let source: DatabaseQueue
        do {
            source = try DatabaseQueue(path: damagedPath, configuration: config)
        } catch {
            report.unreadable.append("the damaged store cannot be opened: \(error)")
            return report
        }
        defer { try? source.close() }
        let limitDay = limit == .max ? Int64.max : limit.floorDiv(Self.bucketsPerDay)
        let hasSummaries = (try? source.read { try $0.tableExists("bucket_day") }) ?? false
        if !hasSummaries { report.unreadable.append("the damaged store has no day summaries (older format): its days cannot be verified") }

        var cameraRows: [Row] = []
        do {
            cameraRows = try source.read { try Row.fetchAll($0, sql: "SELECT id, kvfv_id, last_event_ms, last_arrival_ms FROM camera") }
        } catch {
            report.unreadable.append("camera table: \(error)")
        }
        var cameraIds = Set(cameraRows.map { $0[0] as Int64 })
        for sql in ["SELECT DISTINCT camera FROM bucket_day", "SELECT DISTINCT camera FROM bucket"] where hasSummaries || sql.hasSuffix("bucket") {
            do {
                cameraIds.formUnion(try source.read { try Int64.fetchAll($0, sql: sql) })
            } catch {
                report.unreadable.append("\(sql): \(error)")
            }
        }
        let prunedBefore = try? source.read {
            try Int64.fetchOne($0, sql: "SELECT value FROM meta WHERE name = 'identities_pruned_before'")
        }
        let names = Dictionary(cameraRows.map { ($0[0] as Int64, $0[1] as String) }, uniquingKeysWith: { a, _ in a })
        func label(_ camera: Int64, _ day: Int64) -> String { "\(names[camera] ?? "#\(camera)") \(Self.dayName(day))" }

        try pool.write { db in
            let cam = try db.makeStatement(
                sql: "INSERT OR REPLACE INTO camera (id, kvfv_id, last_event_ms, last_arrival_ms) VALUES (?, ?, ?, ?)")
            for r in cameraRows {
                try cam.execute(arguments: [r[0] as DatabaseValue, r[1] as DatabaseValue, r[2] as DatabaseValue, r[3] as DatabaseValue])
                report.cameras += 1
            }
            if let mark = prunedBefore {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta (name, value) VALUES ('identities_pruned_before', ?)", arguments: [mark])
            }
        }
        for camera in cameraIds.sorted() {
            // Summaries, then rows, of this camera's days before the limit; a read error leaves the rest unknown.
            var expected: [Int64: DaySummary] = [:]
            var summariesComplete = hasSummaries
            if hasSummaries {
                do {
                    for r in try source.read({
                        try Row.fetchAll($0, sql: "SELECT day, buckets, events, digest FROM bucket_day WHERE camera = ? AND day < ?", arguments: [camera, limitDay])
                    }) {
                        expected[r[0]] = DaySummary(buckets: r[1], events: r[2], digest: UInt64(bitPattern: r[3]))
                    }
                } catch {
                    summariesComplete = false
                    report.unreadable.append("summaries of \(names[camera] ?? "#\(camera)"): \(error)")
                }
            }
            var days: [Int64: [(bucket: Int64, state: Data)]] = [:]
            var rowsComplete = true
            do {
                try source.read { db in
                    let rows = try Row.fetchCursor(
                        db, sql: "SELECT bucket, state FROM bucket WHERE camera = ? AND bucket < ? ORDER BY bucket",
                        arguments: [camera, limit])
                    while let row = try rows.next() {
                        let bucket: Int64 = row[0]
                        days[bucket.floorDiv(Self.bucketsPerDay), default: []].append((bucket, row[1] ?? Data()))
                    }
                }
            } catch {
                rowsComplete = false
                report.unreadable.append("buckets of \(names[camera] ?? "#\(camera)") after \(days.keys.max().map(Self.dayName) ?? "the start"): \(error)")
            }
            var good: [Int64: [(bucket: Int64, state: Data)]] = [:]
            var bad: Set<Int64> = []
            for day in Set(days.keys).union(expected.keys) {
                var actual = DaySummary()
                var decodes = true
                for (bucket, state) in days[day] ?? [] {
                    state.withUnsafeBytes { raw in
                        guard let n = try? BucketState.decodeCount(raw), (try? BucketState.decode(raw)) != nil else {
                            decodes = false
                            return
                        }
                        actual.add(camera: camera, bucket: bucket, state: raw, count: n)
                    }
                }
                let lastRead = days.keys.max() ?? .min
                let verifiable = summariesComplete && (rowsComplete || day < lastRead)
                if verifiable && decodes && expected[day] ?? DaySummary() == actual {
                    good[day] = days[day]
                } else {
                    bad.insert(day)
                }
            }
            // A camera whose scan broke off: its days past the break are unknown too.
            if !rowsComplete, let lastRead = days.keys.max() { bad.insert(lastRead) }
            var chunks: [(bucket: Int64, ids: Data)] = []
            if !good.isEmpty {
                do {
                    chunks = try source.read {
                        try Row.fetchAll(
                            $0, sql: "SELECT bucket, ids FROM dedup_chunk WHERE camera = ? AND bucket < ?", arguments: [camera, limit]
                        ).map { ($0[0], $0[1] ?? Data()) }
                    }
                } catch {
                    report.unreadable.append("identities of \(names[camera] ?? "#\(camera)") (late events for its old buckets will be refused as store_corrupt): \(error)")
                }
            }
            try pool.write { db in
                let insert = try db.makeStatement(sql: "INSERT INTO bucket (camera, bucket, state) VALUES (?, ?, ?)")
                let chunk = try db.makeStatement(sql: "INSERT INTO dedup_chunk (camera, bucket, ids) VALUES (?, ?, ?)")
                let summary = try db.makeStatement(
                    sql: "INSERT OR REPLACE INTO bucket_day (camera, day, buckets, events, digest) VALUES (?, ?, ?, ?, ?)")
                for (day, rows) in good.sorted(by: { $0.key < $1.key }) {
                    var s = DaySummary()
                    for (bucket, state) in rows {
                        try insert.execute(arguments: [camera, bucket, state])
                        state.withUnsafeBytes { s.add(camera: camera, bucket: bucket, state: $0, count: (try? BucketState.decodeCount($0)) ?? 0) }
                    }
                    if s != DaySummary() {
                        try summary.execute(arguments: [camera, day, s.buckets, s.events, Int64(bitPattern: s.digest)])
                    }
                    report.days += 1
                    report.buckets += rows.count
                }
                for (bucket, ids) in chunks where good[bucket.floorDiv(Self.bucketsPerDay)] != nil {
                    try chunk.execute(arguments: [camera, bucket, ids])
                }
                for day in bad.sorted() {
                    let u = DaySummary.unverifiable
                    try summary.execute(arguments: [camera, day, u.buckets, u.events, Int64(bitPattern: u.digest)])
                    report.damagedDays.append(label(camera, day))
                }
            }
        }
        return report
    }
}
