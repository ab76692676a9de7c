import Dispatch
import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore
import Synchronization

/// The ClickHouse store: bucket aggregates, dedup identities and raw events in ClickHouse, sharded by camera.
///
/// ClickHouse has no multi-table transactions; an INSERT of one block into one table is atomic. So each flush
/// writes, per shard, one block to `bucket_delta` holding
///   - per changed bucket, the *delta* (aggregate of just the events new since the last flush) together with
///     their identities, and
///   - a marker row (`kvfv_id = ''`) carrying the log offset the flush reaches.
/// A bucket's state is the merge of its deltas; its dedup set the union of their identities. Because a delta
/// and its identities land together or not at all, the identities stored always describe exactly the events
/// counted — whatever crashed when. Restart replays the log from the lowest marker of all shards; events
/// already counted on a shard are found in its identities and skipped. A failed flush is retried verbatim
/// (same rows, same `flush` number), and rows are unique per (camera, bucket, writer, flush) — collapsed by
/// ReplacingMergeTree, read with FINAL, and dropped at insert by replicated block dedup — so a retry of a
/// flush that did land in part cannot count twice.
///
/// Camera rows go in before the block (so a camera with counted deltas is always known) and raw events
/// too (deduplicated by identity in their sorting key, so replays and retries collapse).
public final class ClickHouseStore: StoreWriter {
    public let client: ClickHouseClient
    public let schema: ClickHouseSchema
    /// Whose offsets the markers carry: "embedded" for `serve`'s own log.
    public let writer: String
    let retentionDays: Int?
    let logger: Logger
    let db: String

    struct Names {
        var byId: [Int64: String] = [:]
        var byName: [String: Int64] = [:]
        var nextId: Int64 = 1
    }
    private let names = Mutex(Names())
    /// Which buckets the store holds, per camera name (see `StoredBuckets`).
    private let stored = Mutex<[String: StoredBuckets]>([:])
    private let cachedSize = Mutex<(bytes: Int64, atMs: Int64)>((0, 0))
    /// Each shard's newest marker as the last `logOffset()` found it (see `rejectionsStoredUpTo`).
    let shardMarkers = Mutex<[UInt64]>([])

    public var commitPolicy: CommitPolicy { .appendDeltas }

    public init(
        client: ClickHouseClient, database: String = "speedflow", writer: String = "embedded",
        retentionDays: Int? = nil, logger: Logger = Logger(label: "speedflow.clickhouse")
    ) throws {
        self.client = client
        self.db = database
        self.schema = ClickHouseSchema(database: database, replicated: client.topology.isReplicated)
        self.writer = writer
        self.retentionDays = retentionDays
        self.logger = logger
        _ = try schema.migrate(client, logger: logger)
    }

    var shardCount: Int { client.topology.shards.count }

    // MARK: - Recovery

    /// The lowest of the shards' newest markers: every shard holds everything before it.
    public func logOffset() throws -> UInt64 {
        var lowest = UInt64.max
        var markers: [UInt64] = []
        defer { shardMarkers.withLock { $0 = markers } }
        for shard in 0..<shardCount {
            try waitForInflightInserts(shard: shard)
            // The newest marker any reachable replica has (one that missed replication is behind, not wrong).
            var best: UInt64?
            var lastError: (any Error)?
            for node in client.topology.shards[shard] {
                do {
                    let out = try client.call(
                        node: node,
                        sql: "SELECT max(flush) FROM \(db).bucket_delta WHERE kvfv_id = '' AND writer = \(sqlString(writer)) FORMAT RowBinary"
                    )
                    var r = RowBinaryReader(out)
                    let v = try r.uint64()
                    best = max(best ?? 0, v)
                } catch {
                    lastError = error
                }
            }
            guard let best else { throw lastError ?? ClickHouseError(kind: .unreachable, message: "shard \(shard + 1) unreachable") }
            markers.append(best)
            lowest = min(lowest, best)
        }
        return lowest == .max ? 0 : lowest
    }

    /// An INSERT a killed predecessor sent completely may still be committing; reading offsets before it lands
    /// would replay (and count) its events again. Wait until no INSERT into our tables is running.
    func waitForInflightInserts(shard: Int) throws {
        let sql = """
            SELECT count() FROM system.processes
            WHERE query LIKE 'INSERT INTO \(db).%' AND query NOT LIKE '%system.processes%' FORMAT RowBinary
            """
        for node in client.topology.shards[shard] {
            let deadline = DispatchTime.now() + .seconds(60)
            while DispatchTime.now() < deadline {
                guard let out = try? client.call(node: node, sql: sql, timeout: .seconds(5)) else { break }
                var r = RowBinaryReader(out)
                if (try? r.uint64()) == 0 { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// A shard can be ahead of the lowest marker (a commit that landed on it and not on another): the replay
    /// from the lowest marker must not add its cameras' rejection counts again (they have no identities).
    public func rejectionsStoredUpTo() throws -> (@Sendable (_ kvfvId: String) -> UInt64)? {
        let markers = shardMarkers.withLock { $0 }
        guard markers.count == shardCount, Set(markers).count > 1 else { return nil }
        let topology = client.topology
        return { name in markers[topology.shard(of: name)] }
    }

    public func cameras() throws -> [CameraRecord] {
        var latest: [String: (event: Int64, arrival: Int64)] = [:]
        // Every reachable replica: one that lags its peer must not hide a camera or make its newest event older.
        for shard in 0..<shardCount {
            var outs: [[UInt8]] = []
            var lastError: (any Error)?
            for node in client.topology.shards[shard] {
                do {
                    outs.append(try client.call(
                        node: node,
                        sql: "SELECT kvfv_id, max(last_event_ms), max(last_arrival_ms) FROM \(db).camera GROUP BY kvfv_id FORMAT RowBinary"
                    ))
                } catch {
                    lastError = error
                }
            }
            if outs.isEmpty { throw lastError ?? ClickHouseError(kind: .unreachable, message: "shard \(shard + 1) unreachable") }
            for out in outs {
                var r = RowBinaryReader(out)
                while !r.isAtEnd {
                    let name = try r.string()
                    let event = try r.int64()
                    let arrival = try r.int64()
                    let old = latest[name]
                    latest[name] = (max(old?.event ?? .min, event), max(old?.arrival ?? .min, arrival))
                }
            }
        }
        return names.withLock { n in
            latest.keys.sorted().map { name in
                let id = n.byName[name] ?? {
                    let id = n.nextId
                    n.nextId += 1
                    n.byName[name] = id
                    n.byId[id] = name
                    return id
                }()
                let t = latest[name]!
                return CameraRecord(
                    id: id, kvfvId: name, lastEventMs: t.event == 0 ? nil : t.event,
                    lastArrivalMs: t.arrival == 0 ? nil : t.arrival)
            }
        }
    }

    private func name(of camera: Int64) -> String? { names.withLock { $0.byId[camera] } }

    /// The newest version of every ledger chunk and report (`SequenceRows`), from every reachable replica.
    public func sequences(cameras wanted: [Int64]?) throws -> [Int64: CameraSequence] {
        if let wanted, wanted.isEmpty { return [:] }
        var only = ""
        if let wanted {
            only = " AND kvfv_id IN (" + wanted.compactMap { name(of: $0) }.map(sqlString).joined(separator: ",") + ")"
            if only == " AND kvfv_id IN ()" { return [:] }
        }
        var newest: [String: [Int64: (version: UInt64, bytes: [UInt8])]] = [:]
        for shard in 0..<shardCount {
            let (answers, _) = try everyReachableReplica(
                of: shard,
                sql: "SELECT kvfv_id, bucket, events, state FROM \(db).bucket_delta WHERE day = toDate(0) AND bucket < 0\(only) FORMAT RowBinary")
            for out in answers {
                var r = RowBinaryReader(out)
                while !r.isAtEnd {
                    let name = try r.string()
                    let slot = try r.int64()
                    let version = try r.uint64()
                    let bytes = Array(try r.blob())
                    // Rejection rows of arrivals on 1970-01-01 (only tests have those) share the day.
                    if RejectionRows.isSlot(slot) { continue }
                    if let held = newest[name]?[slot], held.version >= version { continue }
                    newest[name, default: [:]][slot] = (version, bytes)
                }
            }
        }
        var result: [Int64: CameraSequence] = [:]
        for (name, slots) in newest {
            guard let id = names.withLock({ $0.byName[name] }) else { continue }
            var chunks: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])] = []
            var sequence = CameraSequence()
            for (slot, row) in slots {
                if slot == SequenceRows.reportSlot {
                    guard let (report, arrival) = SequenceRows.decodeReport(row.bytes, kvfvId: name) else {
                        throw StoreError(.corrupt, "the sequence report of camera \(name) does not decode", camera: id)
                    }
                    sequence.report = report
                    sequence.reportArrivalMs = arrival
                } else {
                    chunks.append((SequenceRows.key(ofSlot: slot), row.bytes))
                }
            }
            do {
                sequence.ledger = try SequenceLedger(chunks: chunks)
            } catch {
                throw StoreError(.corrupt, "the sequence ledger of camera \(name) does not decode", camera: id)
            }
            result[id] = sequence
        }
        return result
    }

    // MARK: - Buckets

    public func loadBucket(_ key: BucketKey) throws -> StoredBucket? {
        try loadBuckets([key])[key]
    }

    /// The deltas and identities of many buckets: first which of them exist at all (`StoredBuckets`: read once
    /// per camera, then kept by this writer's commits, so a bucket never written costs no read), then those that
    /// do, in one read per shard. Each read goes to every reachable replica of the shard and every flush is
    /// counted once: a replica that missed parts written to its peer during a failover (replication is
    /// asynchronous) must not make already-counted events look new.
    public func loadBuckets(_ keys: [BucketKey]) throws -> [BucketKey: StoredBucket] {
        let named = keys.compactMap { key in name(of: key.camera).map { (key: key, name: $0) } }
        guard !named.isEmpty else { return [:] }
        try cover(named.map { ($0.name, $0.key.bucket) })
        let existing = stored.withLock { s in named.filter { s[$0.name]?.buckets.contains($0.key.bucket) == true } }
        var found: [BucketKey: StoredBucket] = [:]
        for (shard, wanted) in Dictionary(grouping: existing, by: { client.topology.shard(of: $0.name) }) {
            // Bounded reads: ClickHouse refuses SQL over `max_query_size` (256 KiB by default).
            for start in stride(from: 0, to: wanted.count, by: Self.keysPerQuery) {
                let chunk = wanted[start..<min(wanted.count, start + Self.keysPerQuery)]
                found.merge(try readBuckets(shard: shard, chunk)) { a, _ in a }
            }
        }
        return found
    }

    /// Keys (or camera names) per read, so a read's SQL stays far below ClickHouse's `max_query_size`.
    static let keysPerQuery = 2000

    /// One read of `wanted` buckets of `shard`, from every reachable replica, each (writer, flush) once.
    private func readBuckets(shard: Int, _ wanted: ArraySlice<(key: BucketKey, name: String)>) throws -> [BucketKey: StoredBucket] {
        let keyOf = Dictionary(wanted.map { (BucketName(name: $0.name, bucket: $0.key.bucket), $0.key) }) { a, _ in a }
        let days = Set(wanted.map { ($0.key.bucket * Bucket.durationMs).floorDiv(86_400_000) }).sorted()
        let sql = """
            SELECT kvfv_id, bucket, writer, flush, state, ids FROM \(db).bucket_delta
            WHERE kvfv_id IN (\(Set(wanted.map(\.name)).sorted().map(sqlString).joined(separator: ",")))
            AND day IN (\(days.map { "toDate(\($0 * 86_400))" }.joined(separator: ",")))
            AND (kvfv_id, bucket) IN (\(wanted.map { "(\(sqlString($0.name)), \($0.key.bucket))" }.joined(separator: ",")))
            FORMAT RowBinary
            """
        var rows: [BucketKey: [DeltaRowKey: (state: BucketState, ids: [UInt64])]] = [:]
        for out in try everyReachableReplica(of: shard, sql: sql).answers {
            var r = RowBinaryReader(out)
            while !r.isAtEnd {
                let name = try r.string()
                let bucket = try r.int64()
                let row = DeltaRowKey(writer: try r.string(), flush: try r.uint64())
                let blob = try r.blob()
                let ids = try r.uint64Array()
                guard let key = keyOf[BucketName(name: name, bucket: bucket)], rows[key]?[row] == nil else { continue }
                rows[key, default: [:]][row] = (try blob.withUnsafeBytes { try BucketState.decode($0) }, ids)
            }
        }
        var found: [BucketKey: StoredBucket] = [:]
        for (key, deltas) in rows {
            var state = BucketState()
            var ids: [UInt64] = []
            // In (writer, flush) order, as `readStates` merges them: the same sums to the last bit.
            for row in deltas.keys.sorted() {
                state.merge(deltas[row]!.state)
                ids.append(contentsOf: deltas[row]!.ids)
            }
            found[key] = StoredBucket(state: state, ids: ids, chunkCount: 1)
        }
        return found
    }

    /// Makes `StoredBuckets` cover each (camera, bucket): a camera whose existing buckets are not known that far
    /// back is read — a week before the oldest bucket asked for, so a backlog reaching further back costs few
    /// reads — in one query per shard (per `keysPerQuery` cameras).
    private func cover(_ wanted: [(name: String, bucket: Int64)]) throws {
        let lookBack: Int64 = 7 * 288
        let needed = stored.withLock { s -> [String: Int64] in
            var needed: [String: Int64] = [:]
            for (name, bucket) in wanted where bucket < s[name]?.coveredFrom ?? .max {
                needed[name] = min(needed[name] ?? .max, bucket - lookBack)
            }
            return needed
        }
        for (shard, names) in Dictionary(grouping: needed.keys.sorted(), by: { client.topology.shard(of: $0) }) {
            for start in stride(from: 0, to: names.count, by: Self.keysPerQuery) {
                let chunk = names[start..<min(names.count, start + Self.keysPerQuery)]
                try cover(shard: shard, chunk, from: chunk.map { needed[$0]! }.min()!)
            }
        }
    }

    private func cover(shard: Int, _ names: ArraySlice<String>, from: Int64) throws {
        let sql = """
            SELECT kvfv_id, bucket FROM \(db).bucket_delta
            WHERE kvfv_id IN (\(names.map(sqlString).joined(separator: ",")))
            AND day >= toDate(\((from * Bucket.durationMs).floorDiv(86_400_000) * 86_400)) AND bucket >= \(from)
            GROUP BY kvfv_id, bucket FORMAT RowBinary
            """
        var existing: [String: [Int64]] = [:]
        let (answers, everyReplica) = try everyReachableReplica(of: shard, sql: sql)
        for out in answers {
            var r = RowBinaryReader(out)
            while !r.isAtEnd {
                let name = try r.string()
                existing[name, default: []].append(try r.int64())
            }
        }
        // Commits add to the same sets (before they insert), so a commit racing this read is never lost. With a
        // replica down the answer serves this read only (as a bucket read would): the missing replica may hold
        // parts its peer has not fetched, so the cameras stay uncovered and are read again next time.
        stored.withLock { s in
            for name in names {
                s[name, default: StoredBuckets()].buckets.formUnion(existing[name] ?? [])
                if everyReplica { s[name]!.coveredFrom = min(s[name]!.coveredFrom ?? .max, from) }
            }
        }
    }

    /// `sql`'s answer from every replica of `shard` that answers, and whether all did; throws when none does.
    private func everyReachableReplica(of shard: Int, sql: String) throws -> (answers: [[UInt8]], everyReplica: Bool) {
        var answers: [[UInt8]] = []
        var lastError: (any Error)?
        for node in client.topology.shards[shard] {
            do {
                answers.append(try client.call(node: node, sql: sql, timeout: .seconds(10)))
            } catch {
                lastError = error
            }
        }
        if answers.isEmpty { throw lastError ?? ClickHouseError(kind: .unreachable, message: "no replica of shard \(shard + 1) reachable") }
        return (answers, lastError == nil)
    }

    public func commit(_ commit: StoreCommit) throws {
        names.withLock { n in
            for c in commit.cameras where n.byId[c.id] == nil {
                n.byId[c.id] = c.kvfvId
                n.byName[c.kvfvId] = c.id
                n.nextId = max(n.nextId, c.id + 1)
            }
        }
        let blocks = try Self.encode(commit, topology: client.topology, writer: writer) { name(of: $0) }
        // Known to exist before the insert is sent: "exists" for a bucket whose insert then fails costs one read
        // that finds nothing; "absent" for one that landed would count its events again.
        stored.withLock { s in
            for (name, buckets) in blocks.buckets { s[name, default: StoredBuckets()].buckets.formUnion(buckets) }
        }
        for (s, shard) in blocks.shards.enumerated() {
            if !shard.cameras.isEmpty {
                _ = try client.run(shard: s, sql: "INSERT INTO \(db).camera FORMAT RowBinary", body: shard.cameras)
            }
            if !shard.events.isEmpty {
                _ = try client.run(shard: s, sql: "INSERT INTO \(db).events FORMAT RowBinary", body: shard.events)
            }
            // One block, however many rows: the insert is atomic only within a block.
            _ = try client.run(
                shard: s,
                sql: "INSERT INTO \(db).bucket_delta FORMAT RowBinary", body: shard.deltas,
                settings: ["max_insert_block_size": "1000000000"], timeout: .seconds(120))
        }
        refreshSizeIfStale(nowMs: commit.timeMs)
    }

    /// What a commit inserts, per shard: camera rows, raw events, and the `bucket_delta` block (deltas and the
    /// marker, its last row).
    package struct Blocks {
        package struct Shard {
            package var cameras: [UInt8] = []
            package var events: [UInt8] = []
            package var deltas: [UInt8] = []
        }
        package var shards: [Shard]
        /// The buckets written, by camera name.
        var buckets: [String: [Int64]] = [:]
    }

    /// Encodes `commit` as RowBinary blocks, in time linear in its size (`bench`: `speedflow-bench encode`). Each
    /// shard's writer is appended to in place: a copy taken out of the array and written back (as before issue
    /// #11) made every append copy the block so far — O(n²), 30 s for an 80,000-event flush.
    package static func encode(
        _ commit: StoreCommit, topology: ClickHouseTopology, writer: String, name: (Int64) -> String?
    ) throws -> Blocks {
        let shardCount = topology.shards.count
        var cameraRows = Array(repeating: RowBinaryWriter(), count: shardCount)
        var eventRows = Array(repeating: RowBinaryWriter(), count: shardCount)
        var deltaRows = Array(repeating: RowBinaryWriter(), count: shardCount)
        var written: [String: [Int64]] = [:]

        for c in commit.cameras {
            let s = topology.shard(of: c.kvfvId)
            cameraRows[s].string(c.kvfvId)
            cameraRows[s].int64(c.lastEventMs ?? 0)
            cameraRows[s].int64(c.lastArrivalMs ?? 0)
        }
        for b in commit.buckets where b.delta.count > 0 {
            guard let name = name(b.key.camera) else {
                throw ClickHouseError(kind: .format, message: "bucket of camera #\(b.key.camera), which this store does not know")
            }
            written[name, default: []].append(b.key.bucket)
            let s = topology.shard(of: name)
            deltaRows[s].date(ms: b.key.bucket * Bucket.durationMs)
            deltaRows[s].string(name)
            deltaRows[s].int64(b.key.bucket)
            deltaRows[s].string(writer)
            deltaRows[s].uint64(commit.logOffset)
            deltaRows[s].uint64(UInt64(b.delta.count))
            deltaRows[s].float64(b.delta.sum)
            deltaRows[s].float64(b.delta.min)
            deltaRows[s].float64(b.delta.max)
            deltaRows[s].blob(b.delta.encoded())
            deltaRows[s].uint64Array(b.addedIds)
            for event in b.events {
                eventRows[s].date(ms: event.timestampMs)
                eventRows[s].string(name)
                eventRows[s].int64(event.timestampMs)
                eventRows[s].uint64(event.identity)
                eventRows[s].float64(event.speed)
                eventRows[s].nullableString(event.eventId)
                eventRows[s].nullableInt32(event.lane.map { Int32(clamping: $0) })
                eventRows[s].nullableString(event.plate)
                eventRows[s].nullableString(event.extra)
            }
        }
        // Sequence ledgers travel in the same atomic block as the deltas they go with (see `SequenceRows`).
        for q in commit.sequences {
            guard let name = name(q.camera) else {
                throw ClickHouseError(kind: .format, message: "sequence ledger of camera #\(q.camera), which this store does not know")
            }
            let s = topology.shard(of: name)
            for c in q.chunks {
                SequenceRows.write(
                    &deltaRows[s], name: name, slot: SequenceRows.slot(of: c.key), version: commit.logOffset, bytes: c.bytes)
            }
            if let r = q.report {
                SequenceRows.write(
                    &deltaRows[s], name: name, slot: SequenceRows.reportSlot, version: commit.logOffset,
                    bytes: SequenceRows.encode(r, arrivalMs: q.reportArrivalMs ?? 0))
            }
        }
        // Rejection counts too: added to the stored ones, so they must land exactly with the marker.
        for r in commit.rejections {
            guard let name = name(r.key.camera) else {
                throw ClickHouseError(kind: .format, message: "rejections of camera #\(r.key.camera), which this store does not know")
            }
            guard RejectionRows.holds(bucket: r.key.bucket) else {
                throw ClickHouseError(kind: .format, message: "rejections of camera \(name) in bucket \(r.key.bucket), before 1970")
            }
            RejectionRows.write(&deltaRows[topology.shard(of: name)], name: name, writer: writer, flush: commit.logOffset, r)
        }
        var blocks = Blocks(shards: [], buckets: written)
        for s in 0..<shardCount {
            // The marker: this shard holds everything before `logOffset`. Last row of the same atomic block.
            deltaRows[s].date(ms: commit.timeMs)
            deltaRows[s].string("")
            deltaRows[s].int64(Bucket.index(ofTimestamp: commit.timeMs))
            deltaRows[s].string(writer)
            deltaRows[s].uint64(commit.logOffset)
            deltaRows[s].uint64(0)
            deltaRows[s].float64(0)
            deltaRows[s].float64(0)
            deltaRows[s].float64(0)
            deltaRows[s].blob([])
            deltaRows[s].uint64Array([])
            blocks.shards.append(.init(cameras: cameraRows[s].bytes, events: eventRows[s].bytes, deltas: deltaRows[s].bytes))
        }
        return blocks
    }

    // MARK: - Queries

    /// Rows ordered by (bucket, writer, flush), merged per bucket; a row repeated (a retried flush whose first
    /// attempt landed, not yet collapsed by ReplacingMergeTree — which is why no `FINAL` is needed) counts once.
    private func mergeRows(_ out: [UInt8], lanes: Bool = true) throws -> [(bucket: Int64, state: BucketState)] {
        var r = RowBinaryReader(out)
        var result: [(bucket: Int64, state: BucketState)] = []
        var previous: (bucket: Int64, row: DeltaRowKey)?
        while !r.isAtEnd {
            let bucket = try r.int64()
            let row = DeltaRowKey(writer: try r.string(), flush: try r.uint64())
            let blob = try r.blob()
            if let previous, previous.bucket == bucket, previous.row == row { continue }
            previous = (bucket, row)
            let state = try blob.withUnsafeBytes { try BucketState.decode($0, lanes: lanes) }
            if let last = result.last, last.bucket == bucket {
                result[result.count - 1].state.merge(state)
            } else {
                result.append((bucket, state))
            }
        }
        return result
    }

    public func readStates(camera: Int64, buckets range: Range<Int64>, lanes: Bool) async throws -> [(bucket: Int64, state: BucketState)] {
        guard let name = name(of: camera), !range.isEmpty else { return [] }
        let out = try await client.query(
            shard: client.topology.shard(of: name),
            sql: """
                SELECT bucket, writer, flush, state FROM \(db).bucket_delta
                WHERE kvfv_id = \(sqlString(name)) AND \(dayFilter(range))
                AND bucket >= \(range.lowerBound) AND bucket < \(range.upperBound)
                ORDER BY bucket, writer, flush FORMAT RowBinary
                """)
        return try mergeRows(out, lanes: lanes)
    }

    /// The `day` bound of a bucket range: ClickHouse skips other day partitions instead of looking a camera up in
    /// each (a camera-day read 30 ms without it on 1,000 cameras × 7 days, 4 ms with it).
    private func dayFilter(_ range: Range<Int64>) -> String {
        let firstDay = (range.lowerBound * Bucket.durationMs).floorDiv(86_400_000)
        let lastDay = ((range.upperBound - 1) * Bucket.durationMs).floorDiv(86_400_000)
        return "day >= toDate(\(firstDay * 86_400)) AND day <= toDate(\(lastDay * 86_400))"
    }

    /// `WHERE` for a bucket range over all cameras.
    private func rangeFilter(_ range: Range<Int64>) -> String {
        "kvfv_id != '' AND \(dayFilter(range)) AND bucket >= \(range.lowerBound) AND bucket < \(range.upperBound)"
    }

    public func statesByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await states(buckets: range, cameras: nil)
    }

    public func statesByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: BucketState]] {
        try await states(buckets: range, cameras: cameras)
    }

    /// `AND kvfv_id IN (…)` for a page of cameras (names are `[A-Za-z0-9._-]`, quoted anyway); `nil`: no filter.
    private func cameraFilter(_ cameras: [Int64]?) -> String? {
        guard let cameras else { return "" }
        let names = cameras.compactMap { name(of: $0) }
        guard !names.isEmpty else { return nil }
        return " AND kvfv_id IN (" + names.map(sqlString).joined(separator: ",") + ")"
    }

    private func states(buckets range: Range<Int64>, cameras: [Int64]?) async throws -> [Int64: [Int64: BucketState]] {
        guard !range.isEmpty, let only = cameraFilter(cameras) else { return [:] }
        var result: [Int64: [Int64: BucketState]] = [:]
        for shard in 0..<shardCount {
            // No `FINAL` and no `ORDER BY` (each costs ClickHouse more than the read itself): rows are put in
            // (camera, bucket, writer, flush) order here — usually they come that way — so deltas merge in the
            // order `readStates` merges them (the same sums to the last bit, whatever order a ClickHouse version
            // returns), and a repeated row (a retried flush not yet collapsed) is skipped.
            let out = try await client.query(
                shard: shard,
                sql: "SELECT kvfv_id, bucket, writer, flush, state FROM \(db).bucket_delta WHERE \(rangeFilter(range))\(only) FORMAT RowBinary")
            let ids = names.withLock { $0.byName }
            var rows: [(name: String, bucket: Int64, row: DeltaRowKey, blob: ArraySlice<UInt8>)] = []
            var inOrder = true
            var r = RowBinaryReader(out)
            while !r.isAtEnd {
                let next = (name: try r.string(), bucket: try r.int64(), row: DeltaRowKey(writer: try r.string(), flush: try r.uint64()), blob: try r.blob())
                if inOrder, let last = rows.last, (next.name, next.bucket, next.row) < (last.name, last.bucket, last.row) { inOrder = false }
                rows.append(next)
            }
            if !inOrder { rows.sort { ($0.name, $0.bucket, $0.row) < ($1.name, $1.bucket, $1.row) } }
            var i = 0
            while i < rows.count {
                let first = rows[i]
                // The fleet view reads the current window's figures only.
                var state = try first.blob.withUnsafeBytes { try BucketState.decode($0, lanes: false) }
                var j = i + 1
                while j < rows.count, rows[j].name == first.name, rows[j].bucket == first.bucket {
                    if rows[j].row != rows[j - 1].row { state.merge(try rows[j].blob.withUnsafeBytes { try BucketState.decode($0, lanes: false) }) }
                    j += 1
                }
                if let id = ids[first.name] { result[id, default: [:]][first.bucket] = state }
                i = j
            }
        }
        return result
    }

    public func countsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        try await counts(buckets: range, cameras: nil)
    }

    public func countsByCamera(_ cameras: [Int64], buckets range: Range<Int64>) async throws -> [Int64: [Int64: Int64]] {
        try await counts(buckets: range, cameras: cameras)
    }

    private func counts(buckets range: Range<Int64>, cameras: [Int64]?) async throws -> [Int64: [Int64: Int64]] {
        guard !range.isEmpty, let only = cameraFilter(cameras) else { return [:] }
        var result: [Int64: [Int64: Int64]] = [:]
        for shard in 0..<shardCount {
            let out = try await client.query(
                shard: shard,
                sql: """
                    SELECT kvfv_id, bucket, sum(events) FROM \(db).bucket_delta FINAL WHERE \(rangeFilter(range))\(only)
                    GROUP BY kvfv_id, bucket FORMAT RowBinary
                    """)
            var r = RowBinaryReader(out)
            let ids = names.withLock { $0.byName }
            while !r.isAtEnd {
                let name = try r.string()
                let bucket = try r.int64()
                let count = try r.uint64()
                guard let id = ids[name] else { continue }
                result[id, default: [:]][bucket] = Int64(count)
            }
        }
        return result
    }

    // MARK: - Rejections

    /// `WHERE` for the rejection rows of arrival buckets in `range` (clamped to what `RejectionRows` holds);
    /// `nil`: none can be there.
    private func rejectionFilter(_ range: Range<Int64>) -> String? {
        let lower = max(range.lowerBound, 0), upper = min(range.upperBound, RejectionRows.bucketLimit)
        guard lower < upper else { return nil }
        // Slots descend as buckets ascend.
        return "\(dayFilter(lower..<upper)) AND bucket >= \(RejectionRows.slot(of: upper - 1)) AND bucket <= \(RejectionRows.slot(of: lower))"
    }

    public func rejections(camera: Int64, buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        guard let name = name(of: camera), let filter = rejectionFilter(range) else { return [:] }
        let out = try await client.query(
            shard: client.topology.shard(of: name),
            sql: "SELECT kvfv_id, bucket, writer, flush, state FROM \(db).bucket_delta WHERE kvfv_id = \(sqlString(name)) AND \(filter) FORMAT RowBinary")
        var result: [Int64: [RejectionReason: Int64]] = [:]
        try RejectionRows.read(out) { _, bucket, counts in result[bucket, default: [:]].merge(counts, uniquingKeysWith: +) }
        return result
    }

    public func rejectionsByCamera(buckets range: Range<Int64>) async throws -> [Int64: [RejectionReason: Int64]] {
        guard let filter = rejectionFilter(range) else { return [:] }
        var result: [Int64: [RejectionReason: Int64]] = [:]
        for shard in 0..<shardCount {
            let out = try await client.query(
                shard: shard,
                sql: "SELECT kvfv_id, bucket, writer, flush, state FROM \(db).bucket_delta WHERE kvfv_id != '' AND \(filter) FORMAT RowBinary")
            let ids = names.withLock { $0.byName }
            try RejectionRows.read(out) { name, _, counts in
                guard let id = ids[name] else { return }
                result[id, default: [:]].merge(counts, uniquingKeysWith: +)
            }
        }
        return result
    }

    // MARK: - Maintenance

    public func reset(fromBucket: Int64, logOffset: UInt64) throws {
        throw ClickHouseError(
            kind: .configuration,
            message: "rebuild works on the SQLite store; for ClickHouse, drop the database and replay into a new one")
    }

    /// Identities live in the delta rows and go with their day's partition (see `maintain`). What is forgotten
    /// here is only which buckets before `bucket` exist (`StoredBuckets`): events that old are too late anyway,
    /// and a camera asked for one again is read anew.
    public func pruneIdentities(before bucket: Int64) throws -> Int {
        stored.withLock { s in
            for name in s.keys {
                s[name]!.buckets = s[name]!.buckets.filter { $0 >= bucket }
                if let from = s[name]!.coveredFrom, from < bucket { s[name]!.coveredFrom = bucket }
            }
        }
        return 0
    }

    /// Retention: drops day partitions older than `retentionDays` from every table, on every shard.
    public func maintain(nowMs: Int64) throws -> String? {
        guard let retentionDays else { return nil }
        let cutoffDay = nowMs.floorDiv(86_400_000) - Int64(retentionDays)
        var dropped: [String] = []
        for shard in 0..<shardCount {
            let out = try client.run(
                shard: shard,
                sql: """
                    SELECT DISTINCT table, partition FROM system.parts
                    WHERE database = \(sqlString(db)) AND table IN ('bucket_delta', 'events') AND active
                    AND toDate(partition) < toDate(\(cutoffDay * 86_400)) AND toDate(partition) > toDate(0)
                    FORMAT TabSeparated
                    """)
            for line in String(decoding: out, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: "\t")
                guard parts.count == 2 else { continue }
                // On a replicated table one replica's DROP PARTITION replicates to the others.
                _ = try client.run(shard: shard, sql: "ALTER TABLE \(db).\(parts[0]) DROP PARTITION \(sqlString(String(parts[1])))")
                dropped.append("shard \(shard + 1) \(parts[0]) \(parts[1])")
            }
        }
        return dropped.isEmpty ? nil : "dropped \(dropped.joined(separator: ", "))"
    }

    /// Bytes ClickHouse holds for this database (all shards, one replica each), refreshed at most every 30 s
    /// by the flusher so `/stats` never waits on ClickHouse.
    public func sizeInBytes() -> Int64 { cachedSize.withLock { $0.bytes } }

    private func refreshSizeIfStale(nowMs: Int64) {
        guard cachedSize.withLock({ nowMs - $0.atMs >= 30_000 }) else { return }
        var total: Int64 = 0
        for shard in 0..<shardCount {
            guard
                let out = try? client.run(
                    shard: shard,
                    sql: "SELECT sum(bytes) FROM system.parts WHERE database = \(sqlString(db)) AND active FORMAT RowBinary")
            else { return }
            var r = RowBinaryReader(out)
            total += Int64(bitPattern: (try? r.uint64()) ?? 0)
        }
        cachedSize.withLock { $0 = (total, nowMs) }
    }
}

/// Which buckets of one camera the store holds. `buckets` holds every bucket from `coveredFrom` on (read from
/// every replica of the camera's shard; `nil`: not read yet, or not from every replica) and every bucket this
/// writer has written since it opened; a bucket at or after
/// `coveredFrom` that is not in it was never written, so a late event for it needs no read. Only this writer
/// writes its cameras (`serve` is the only writer; an aggregator owns its partition's cameras until it hands
/// them over, and the next owner opens a new store), so the sets stay true; they only ever grow.
struct StoredBuckets {
    var coveredFrom: Int64?
    var buckets: Set<Int64> = []
}

/// A row of `bucket_delta` within one bucket: unique per bucket, and the order deltas are merged in.
struct DeltaRowKey: Hashable, Comparable {
    var writer: String
    var flush: UInt64

    static func < (a: Self, b: Self) -> Bool { (a.writer, a.flush) < (b.writer, b.flush) }
}

struct BucketName: Hashable {
    var name: String
    var bucket: Int64
}

/// A camera's sequence ledger in ClickHouse: rows of `bucket_delta` itself, so a commit's ledger chunks land in
/// the same atomic block as its deltas and marker (a crash can never leave one without the other). A row is
/// `day` 1970-01-01 (never dropped by retention), `bucket` a negative slot naming the chunk (or the report),
/// writer `''` and flush 0 — so the versions of one chunk share a sort key and ReplacingMergeTree keeps the
/// last — and its version (the commit's log offset) in `events`, its bytes in `state`. Readers take the newest
/// version of each slot; every bucket query bounds `bucket` from below, so no query of figures sees these rows.
enum SequenceRows {
    /// The slot packs `epoch << 47 | chunk` (chunks of 2¹⁶ of 2⁶³ numbers: 2⁴⁷), so an epoch must stay within
    /// `ValidationPolicy.maxSeqEpoch`.
    static let reportSlot = Int64.min

    static func slot(of key: SequenceLedger.ChunkKey) -> Int64 { -1 - (key.epoch << 47 | key.chunk) }

    static func key(ofSlot slot: Int64) -> SequenceLedger.ChunkKey {
        let packed = -1 - slot
        return SequenceLedger.ChunkKey(epoch: packed >> 47, chunk: packed & ((1 << 47) - 1))
    }

    static func write(_ w: inout RowBinaryWriter, name: String, slot: Int64, version: UInt64, bytes: [UInt8]) {
        w.date(ms: 0)
        w.string(name)
        w.int64(slot)
        w.string("")
        w.uint64(0)
        w.uint64(version)
        w.float64(0)
        w.float64(0)
        w.float64(0)
        w.blob(bytes)
        w.uint64Array([])
    }

    static func encode(_ r: CameraReport, arrivalMs: Int64) -> [UInt8] {
        var out: [UInt8] = [1]
        out.appendVarint(UInt64(r.epoch))
        out.appendVarint(UInt64(r.seq))
        out.appendVarint(zigzag: r.timeMs)
        out.appendVarint(zigzag: arrivalMs)
        return out
    }

    static func decodeReport(_ bytes: [UInt8], kvfvId: String) -> (CameraReport, Int64)? {
        bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            guard (try? r.byte()) == 1, let epoch = try? r.nonNegative(), let seq = try? r.nonNegative(),
                let time = try? r.zigzag(), let arrival = try? r.zigzag()
            else { return nil }
            return (CameraReport(kvfvId: kvfvId, epoch: epoch, seq: seq, timeMs: time), arrival)
        }
    }
}

/// Rejection counts in ClickHouse: rows of `bucket_delta` itself, so a commit's counts land in the same atomic
/// block as its deltas and marker (ClickHouse inserts are atomic per block of one table). A row is one camera's
/// counts added in one arrival bucket by one flush: `day` the arrival bucket's day (retention drops it with the
/// day's partition), `bucket` a slot below every sequence slot (`slot(of:)`), `writer` and `flush` those of the
/// commit — unique per flush like a delta, so a retried flush collapses (ReplacingMergeTree) and a read counts
/// each (camera, slot, writer, flush) once, as it does deltas — the total in `events`, and the counts in
/// `state` (version 1, then per reason its code and count). Bucket queries bound `bucket` from below and the
/// sequence read skips these slots, so neither sees them.
enum RejectionRows {
    /// Arrival buckets `0 ..< bucketLimit` have slots (`bucketLimit` 5-minute buckets are ~10 million years).
    static let bucketLimit: Int64 = 1 << 40
    static let base: Int64 = -(1 << 62) - 1

    static func holds(bucket: Int64) -> Bool { bucket >= 0 && bucket < bucketLimit }
    static func slot(of bucket: Int64) -> Int64 { base - bucket }
    static func bucket(ofSlot slot: Int64) -> Int64 { base - slot }
    static func isSlot(_ slot: Int64) -> Bool { slot <= base && slot > base - bucketLimit }

    static func write(
        _ w: inout RowBinaryWriter, name: String, writer: String, flush: UInt64, _ r: StoreCommit.Rejections
    ) {
        let counts = r.counts.filter { $0.value > 0 }.sorted { $0.key.rawValue < $1.key.rawValue }
        var bytes: [UInt8] = [1]
        bytes.appendVarint(UInt64(counts.count))
        for (reason, n) in counts {
            bytes.appendString(reason.rawValue)
            bytes.appendVarint(UInt64(n))
        }
        w.date(ms: r.key.bucket * Bucket.durationMs)
        w.string(name)
        w.int64(slot(of: r.key.bucket))
        w.string(writer)
        w.uint64(flush)
        w.uint64(UInt64(counts.reduce(0) { $0 + $1.1 }))
        w.float64(0)
        w.float64(0)
        w.float64(0)
        w.blob(bytes)
        w.uint64Array([])
    }

    /// Rows of `kvfv_id, bucket, writer, flush, state`: each (camera, slot, writer, flush) once (a retried flush
    /// not collapsed yet repeats one), reason codes this version does not know skipped.
    static func read(_ out: [UInt8], _ row: (_ name: String, _ bucket: Int64, _ counts: [RejectionReason: Int64]) -> Void) throws {
        var r = RowBinaryReader(out)
        var seen: Set<RowKey> = []
        while !r.isAtEnd {
            let name = try r.string()
            let slot = try r.int64()
            let key = RowKey(name: name, slot: slot, row: DeltaRowKey(writer: try r.string(), flush: try r.uint64()))
            let blob = Array(try r.blob())
            guard isSlot(slot), seen.insert(key).inserted else { continue }
            guard let counts = decode(blob) else {
                throw StoreError(.corrupt, "rejection counts of camera \(name) do not decode")
            }
            row(name, bucket(ofSlot: slot), counts)
        }
    }

    static func decode(_ bytes: [UInt8]) -> [RejectionReason: Int64]? {
        bytes.withUnsafeBytes { raw -> [RejectionReason: Int64]? in
            var r = ByteReader(raw)
            guard (try? r.byte()) == 1, let n = try? r.varint(), n <= UInt64(raw.count) else { return nil }
            var counts: [RejectionReason: Int64] = [:]
            for _ in 0..<n {
                guard let code = try? r.string(), let count = try? r.nonNegative() else { return nil }
                if let reason = RejectionReason(rawValue: code) { counts[reason, default: 0] += count }
            }
            return counts
        }
    }

    struct RowKey: Hashable {
        var name: String
        var slot: Int64
        var row: DeltaRowKey
    }
}
