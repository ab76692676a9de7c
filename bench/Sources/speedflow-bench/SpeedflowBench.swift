import ArgumentParser
import Dispatch
import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowClickHouse
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore

/// Benchmarks that print figures. The HTTP figures come from `bench/run.sh` (wrk against a real server);
/// this binary builds the large query data set and measures the store and aggregation paths in-process.
@main
struct SpeedflowBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speedflow-bench",
        abstract: "Speedflow benchmarks (figures, never pass/fail).",
        subcommands: [Populate.self, Query.self, Aggregate.self, Encode.self, Dedup.self, LedgerScale.self, StateSize.self])
}

/// Which store a benchmark reads or fills: the data dir's SQLite, or ClickHouse with `--clickhouse-url`.
struct BenchStore: ParsableArguments {
    @Option(help: "ClickHouse URL(s) (as for serve); without it the SQLite store in --data-dir.") var clickhouseUrl: String?
    @Option var clickhouseDatabase = "speedflow_bench"

    var name: String { clickhouseUrl == nil ? "SQLite" : "ClickHouse" }

    func open(dataDir: String) throws -> any StoreWriter {
        if let clickhouseUrl {
            var logger = Logger(label: "bench")
            logger.logLevel = .warning
            let client = ClickHouseClient(topology: try ClickHouseTopology(parsing: clickhouseUrl), logger: logger)
            return try ClickHouseStore(client: client, database: clickhouseDatabase, logger: logger)
        }
        let root = URL(fileURLWithPath: dataDir)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return try SQLiteStore(path: root.appendingPathComponent("store.sqlite").path)
    }
}

/// Writes `cameras × days` of 5-minute buckets straight into a data directory's store, as the engine would.
struct Populate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fill a store with synthetic buckets (default 1,000 cameras × 30 days).")

    @Option var dataDir: String
    @Option var cameras = 1000
    @Option var days = 30
    @Option(help: "Events per 5-minute bucket (1 M/day/camera ≈ 3,472).") var eventsPerBucket = 100
    @Option(help: "Lanes the events are spread over (per-lane state, issue #13); 0: no lane.") var lanes = 3
    @Option(help: "Share of speeds that are whole km/h (the rest at 0.1 km/h).") var wholeShare = 0.1
    @OptionGroup var target: BenchStore

    func run() async throws {
        let store = try target.open(dataDir: dataDir)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let lastBucket = Bucket.index(ofTimestamp: now)
        let firstBucket = lastBucket - Int64(days * 288)
        var rng = SystemRandomNumberGenerator()
        // A few hundred distinct states, reused: building states is not what we measure.
        let templates: [BucketState] = (0..<256).map { _ in
            var s = BucketState()
            let base = Double.random(in: 50...110, using: &rng)
            for i in 0..<eventsPerBucket {
                let v = max(1, base + Double.random(in: -25...25, using: &rng))
                let speed = Double.random(in: 0..<1, using: &rng) < wholeShare ? v.rounded(.down) : (v * 10).rounded() / 10
                s.add(speed, lane: lanes == 0 ? nil : 1 + i % lanes)
            }
            return s
        }
        let began = Date()
        var written = 0
        if target.clickhouseUrl != nil {
            // ClickHouse: one commit per day of all cameras, so each insert is one day partition (one commit per
            // camera would put a part into every day partition per insert and outrun the merges).
            let records = (1...cameras).map {
                CameraRecord(id: Int64($0), kvfvId: String(format: "KV%05d", $0), lastEventMs: now, lastArrivalMs: now)
            }
            var day = firstBucket
            while day <= lastBucket {
                let end = min(lastBucket + 1, (day / 288 + 1) * 288)
                var commit = StoreCommit(logOffset: 0, timeMs: now)
                commit.cameras = records
                for c in 1...cameras {
                    for b in day..<end {
                        let state = templates[Int(b & 255)]
                        commit.buckets.append(.init(key: BucketKey(camera: Int64(c), bucket: b), state: state, addedIds: [], delta: state))
                    }
                }
                try store.commit(commit)
                written += commit.buckets.count
                day = end
                FileHandle.standardError.write(Data("populate: \(written) buckets (\(Int(Double(written) / Date().timeIntervalSince(began)))/s)\n".utf8))
            }
            print("populated \(written) buckets (\(cameras) cameras × \(days) days) in \(String(format: "%.1f", Date().timeIntervalSince(began))) s; store \(store.sizeInBytes() / 1_048_576) MiB")
            return
        }
        for c in 1...cameras {
            // Offset 0: the data set has no log, and a store that counted past its log's end is refused at start.
            var commit = StoreCommit(logOffset: 0, timeMs: now)
            commit.cameras = [CameraRecord(id: Int64(c), kvfvId: String(format: "KV%05d", c), lastEventMs: now, lastArrivalMs: now)]
            for b in firstBucket...lastBucket {
                let state = templates[Int(b & 255)]
                commit.buckets.append(.init(key: BucketKey(camera: Int64(c), bucket: b), state: state, addedIds: [], delta: state))
            }
            try store.commit(commit)
            written += commit.buckets.count
            if c % 50 == 0 {
                let rate = Double(written) / Date().timeIntervalSince(began)
                FileHandle.standardError.write(Data("populate: \(c)/\(cameras) cameras, \(written) buckets (\(Int(rate))/s)\n".utf8))
            }
        }
        print("populated \(written) buckets (\(cameras) cameras × \(days) days) in \(String(format: "%.1f", Date().timeIntervalSince(began))) s; store \(store.sizeInBytes() / 1_048_576) MiB")
    }
}

/// One camera-day at 5m through the engine's query path (memory + SQLite + window merge), no HTTP.
struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure in-process query latency for one camera-day at 5m.")

    @Option var dataDir: String
    @Option var queries = 20_000
    @Option var cameras = 1000
    @Option(help: "Queries of all cameras over one day.") var fleetQueries = 20
    @Option(help: "Days the store holds (as given to populate): queried days are drawn from those.") var days = 30
    @OptionGroup var target: BenchStore

    func run() async throws {
        let root = URL(fileURLWithPath: dataDir)
        let log = try SegmentLog(directory: root.appendingPathComponent("log"))
        let store = try target.open(dataDir: dataDir)
        let engine = try Engine(log: log, store: store)
        let storeName = target.name
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var latencies: [Double] = []
        latencies.reserveCapacity(queries)
        var checksum: Int64 = 0
        for i in 0..<queries {
            let camera = String(format: "KV%05d", Int.random(in: 1...cameras))
            let day = now.floorDiv(86_400_000) - Int64.random(in: 1...Int64(max(1, days - 1)))
            let windows = try WindowPlanner.windows(fromMs: day * 86_400_000, toMs: (day + 1) * 86_400_000, interval: .fiveMinutes)
            let start = DispatchTime.now().uptimeNanoseconds
            let states = try await engine.windowStates(kvfvId: camera, windows: windows)
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            checksum &+= states?.reduce(0) { $0 + $1.count } ?? 0
            if i == 0 { precondition(states?.count == 288) }
        }
        latencies.sort()
        func p(_ q: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] }
        print("\(storeName): " + String(format: "query one camera-day at 5m (in-process, %d queries): p50 %.3f ms, p99 %.3f ms, max %.3f ms (checksum %lld)",
                     queries, p(0.5), p(0.99), latencies.last ?? 0, checksum))

        // All cameras over one day: every camera's 288 bucket aggregates (the store's fleet read).
        var fleet: [Double] = []
        var buckets = 0
        for _ in 0..<fleetQueries {
            let day = now.floorDiv(86_400_000) - Int64.random(in: 1...Int64(max(1, days - 1)))
            let range = Bucket.index(ofTimestamp: day * 86_400_000)..<Bucket.index(ofTimestamp: (day + 1) * 86_400_000)
            let start = DispatchTime.now().uptimeNanoseconds
            let states = try await store.statesByCamera(buckets: range)
            fleet.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            buckets = states.values.reduce(0) { $0 + $1.count }
        }
        fleet.sort()
        print("\(storeName): " + String(format: "all cameras over one day (%d bucket states, %d queries): median %.1f ms, max %.1f ms",
                     buckets, fleetQueries, fleet[fleet.count / 2], fleet.last ?? 0))
    }
}

/// The pure aggregation path: validation-free events through dedup + bucket merge, no log, no HTTP.
struct Aggregate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure JSON decode + validation, and bucket-state add/merge rates.")

    @Option var events = 1_000_000

    func run() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var lines: [String] = []
        for i in 0..<500 {
            lines.append(
                "{\"kvfv_id\":\"KV\(i % 1000)\",\"timestamp\":\"\(Timestamp.format(now - Int64(i) * 1000))\",\"vehicle_speed\":\(60 + Double(i % 400) / 10),\"plate_number\":\"A123BC77\",\"event_id\":\"KV\(i)-\(i)\",\"lane\":\(i % 3)}")
        }
        let body = Data(lines.joined(separator: "\n").utf8)
        let rounds = max(1, events / 500)
        // Fast path (FastEventParser) and the JSONDecoder-only path it replaces; same results, different speed.
        var rates: [Bool: Double] = [:]
        for useFastPath in [true, false] {
            let started = Date()
            var decoded = 0
            for _ in 0..<rounds {
                decoded += try EventBatch.decode(
                    body, ndjson: true, policy: ValidationPolicy(), nowMs: now, useFastPath: useFastPath
                ).events.count
            }
            precondition(decoded == rounds * 500)
            rates[useFastPath] = Double(decoded) / Date().timeIntervalSince(started)
        }
        let fast = rates[true]!, oracle = rates[false]!
        print(String(format: "decode+validate NDJSON (500-event bodies), fast path: %.0f events/s on one core (%.2f µs/event)", fast, 1e6 / fast))
        print(String(format: "decode+validate NDJSON (500-event bodies), JSONDecoder only: %.0f events/s on one core (%.2f µs/event)", oracle, 1e6 / oracle))
        print(String(format: "fast path / JSONDecoder: %.1f×", fast / oracle))

        var state = BucketState()
        let start = Date()
        for i in 0..<events { state.add(40 + Double(i % 800) / 10) }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "BucketState.add: %.0f events/s (count %lld)", Double(events) / seconds, state.count))
    }
}

/// Issue #11: building a ClickHouse flush must take time linear in its size. Encodes one flush (deltas, their
/// identities, the raw events, the marker) of a late backlog — 40 cameras spread over 30 h of buckets — at
/// growing sizes; the time per event must stay flat (it grew with the size before: O(n²)).
struct Encode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure encoding one ClickHouse flush (RowBinary blocks) of 125k … 1M events: time per event must stay flat.")

    @Option(help: "Largest flush, in events (halved down to an eighth of it).") var events = 1_000_000
    @Option(help: "Shards the flush is split over.") var shards = 1
    @Option(help: "Repetitions per size (the median is printed).") var rounds = 3

    func run() async throws {
        let topology = ClickHouseTopology(shards: (0..<shards).map { ["http://127.0.0.1:\(18000 + $0)"] })
        let cameras = 40
        let names = (1...cameras).map { "KV\(String(format: "%05d", $0))" }
        let base = Bucket.index(ofTimestamp: Int64(Date().timeIntervalSince1970 * 1000)) - 30 * 12
        for size in [events / 8, events / 4, events / 2, events] {
            // Events per (camera, bucket) as a 30 h backlog of 40 cameras has them.
            var buckets: [BucketKey: [CameraEvent]] = [:]
            for i in 0..<size {
                let camera = i % cameras
                let bucket = base + Int64((i / cameras) % (30 * 12))
                let ms = bucket * Bucket.durationMs + Int64(i % 300_000)
                buckets[BucketKey(camera: Int64(camera + 1), bucket: bucket), default: []].append(CameraEvent(
                    kvfvId: names[camera], timestampMs: ms, speed: 40 + Double(i % 900) / 10, eventId: "\(names[camera])-\(i)",
                    lane: i % 3 + 1, plate: "A\(i % 1000)BC77"))
            }
            var commit = StoreCommit(logOffset: UInt64(size) * 120, timeMs: Int64(Date().timeIntervalSince1970 * 1000))
            commit.cameras = names.enumerated().map { CameraRecord(id: Int64($0.offset + 1), kvfvId: $0.element) }
            for (key, events) in buckets {
                var delta = BucketState()
                for e in events { delta.add(e.speed) }
                commit.buckets.append(StoreCommit.Bucket(
                    key: key, state: delta, addedIds: events.map(\.identity), delta: delta, events: events))
            }
            var seconds: [Double] = []
            var bytes = 0
            for _ in 0..<rounds {
                let started = DispatchTime.now().uptimeNanoseconds
                let blocks = try ClickHouseStore.encode(commit, topology: topology, writer: "bench") { names[Int($0) - 1] }
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
                bytes = blocks.shards.reduce(0) { $0 + $1.cameras.count + $1.events.count + $1.deltas.count }
            }
            let median = seconds.sorted()[seconds.count / 2]
            print(String(
                format: "encode one flush of %7d events (%d buckets, %d shard(s)): median %.3f s, %.0f ns/event, %.1f MB",
                size, buckets.count, shards, median, median * 1e9 / Double(size), Double(bytes) / 1e6))
        }
    }
}
