import ArgumentParser
import Dispatch
import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

#if canImport(Glibc)
import Glibc
#endif

/// Issue #12: what deduplication costs per event when cameras number their passes (`seq`: a ledger of received
/// runs per camera) against `event_id` (an 8-byte identity per event per bucket).
///
/// Drives the real `BucketTable` and `SQLiteStore` as the aggregator does — one record per camera per flush
/// period, snapshot → commit → persisted → evict after each — with the fleet's true pacing: every camera sends
/// `--events-per-day` passes spread evenly over the day, so each flush carries what a real one would (≈ 11.6 events
/// per camera per second at 1 M/day). A share `--loss` of sequence numbers never arrives (gaps). Prints one JSON
/// line: events, in-memory figures, the store file; `bench/dedup.sh` adds the store's per-table bytes (`dbstat`).
struct Dedup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dedup state per event: seq ledgers vs event_id identities, through BucketTable + SQLiteStore (issue #12).")

    @Option var dataDir: String
    @Option var cameras = 1000
    @Option(help: "Passes each camera records (those lost included).") var eventsPerCamera = 5000
    @Option(help: "seq or event-id.") var identity = "seq"
    @Option(help: "Share of passes that never arrive (seq: each isolated loss is one more run).") var loss = 0.0
    @Option(help: "Each camera's rate; sets how many events one flush carries.") var eventsPerDay = 1_000_000
    @Option(help: "Flush period (the aggregator's default: 1 s).") var flushMs: Int64 = 1000
    @Option var seed: UInt64 = 12

    func run() async throws {
        guard identity == "seq" || identity == "event-id" else { throw ValidationError("--identity seq|event-id") }
        let sequenced = identity == "seq"
        let root = URL(fileURLWithPath: dataDir)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let path = root.appendingPathComponent("store.sqlite").path
        let names = (1...cameras).map { "KV\(String(format: "%05d", $0))" }
        let spacing = 86_400_000.0 / Double(eventsPerDay)
        let spanMs = Int64((Double(eventsPerCamera) * spacing).rounded(.up)) + flushMs
        // Event time ends a minute before now (nothing in the future), starting on a flush boundary.
        let t0 = (Int64(Date().timeIntervalSince1970 * 1000) - spanMs - 60_000) / flushMs * flushMs
        let steps = Int((spanMs + flushMs - 1) / flushMs)
        var rng = SplitMix(seed)
        // Each camera's phase within the first spacing, so the fleet's passes interleave.
        let phase = (0..<cameras).map { _ in Double(rng.next() % 1_000_000) / 1_000_000 * spacing }

        let heapBefore = HeapUsage.bytesInUse()
        let rssBefore = HeapUsage.rssBytes()
        var apply: Double = 0, commit: Double = 0
        var sent = 0, lost = 0, dropped = 0
        var maxHotIdentities = 0
        var table = BucketTable(policy: .overwrite, logOffset: 0, cameras: [])
        do {
            let store = try SQLiteStore(path: path)
            var next = [Int](repeating: 0, count: cameras)  // next pass index per camera
            var offset: UInt64 = 0
            for step in 0..<steps {
                let stepStart = t0 + Int64(step) * flushMs, stepEnd = stepStart + flushMs
                var records: [EventRecord] = []
                records.reserveCapacity(cameras)
                for c in 0..<cameras {
                    var events: [CameraEvent] = []
                    while next[c] < eventsPerCamera {
                        let i = next[c]
                        let ms = t0 + Int64(phase[c] + Double(i) * spacing)
                        guard ms < stepEnd else { break }
                        next[c] += 1
                        if loss > 0, Double(rng.next() >> 11) / Double(1 << 53) < loss {
                            lost += 1
                            continue
                        }
                        let speed = 40 + Double((i &* 7 &+ c) % 900) / 10
                        events.append(CameraEvent(
                            kvfvId: names[c], timestampMs: ms, speed: speed,
                            eventId: sequenced ? nil : "\(names[c])-\(i)", lane: i % 3 + 1, plate: "A\(i % 1000)BC77",
                            seq: sequenced ? Int64(i) : nil, seqEpoch: nil))
                    }
                    if !events.isEmpty { records.append(EventRecord(arrivalMs: stepEnd, events: events)) }
                }
                let a = DispatchTime.now().uptimeNanoseconds
                for record in records {
                    offset += 1
                    guard case .counted(let outcome) = table.apply(record, endOffset: offset, nowMs: stepEnd) else {
                        fatalError("a live record needed a store read")
                    }
                    sent += outcome.accepted
                    dropped += outcome.duplicates
                }
                let b = DispatchTime.now().uptimeNanoseconds
                let snapshot = table.takeSnapshot(nowMs: stepEnd)
                var c = StoreCommit(logOffset: snapshot.logOffset, timeMs: snapshot.timeMs)
                c.cameras = snapshot.cameras
                c.sequences = snapshot.sequences.map {
                    StoreCommit.Sequence(camera: $0.camera, chunks: $0.chunks, report: $0.report, reportArrivalMs: $0.reportArrivalMs)
                }
                c.buckets = snapshot.buckets.map {
                    StoreCommit.Bucket(key: $0.key, state: $0.state, addedIds: $0.addedIds, replacesIds: $0.replacesIds)
                }
                try store.commit(c)
                table.persisted(snapshot)
                maxHotIdentities = max(maxHotIdentities, table.hotIdentities)
                // The aggregator's defaults: idle buckets go after 10 minutes; at most 8 M identities in memory.
                table.evict(nowMs: stepEnd, idleMs: 600_000, maxIdentities: 8_000_000, workingSetMs: flushMs)
                let d = DispatchTime.now().uptimeNanoseconds
                apply += Double(b - a) / 1e9
                commit += Double(d - b) / 1e9
            }
        }
        let heapAfter = HeapUsage.bytesInUse()
        let rssAfter = HeapUsage.rssBytes()
        var runs = 0, maxRuns = 0
        for camera in table.cameras.values {
            let n = camera.sequence.ledger.epochs.values.reduce(0) { $0 + $1.count }
            runs += n
            maxRuns = max(maxRuns, n)
        }
        // The in-memory dedup structures on their own, rebuilt with the types the table uses, so that their bytes
        // are not mixed with bucket states: identities as `Set<UInt64>` per hot bucket, ledgers as runs, and the
        // last 1,024 content hashes per seq camera (`BucketTable.Camera.recentContent`, for conflicting resends).
        let structures = sequenced
            ? Self.ledgerBytes(table: table, cameras: cameras, eventsPerCamera: eventsPerCamera)
            : Self.identityBytes(hotIdentities: table.hotIdentities, buckets: table.hotBucketCount)
        let result: [String: Any] = [
            "identity": identity, "cameras": cameras, "events_per_camera": eventsPerCamera, "loss": loss,
            "events_per_day": eventsPerDay, "flush_ms": flushMs, "flushes": steps,
            "accepted": sent, "lost": lost, "duplicates": dropped,
            "hot_identities": table.hotIdentities, "max_hot_identities": maxHotIdentities, "hot_buckets": table.hotBucketCount,
            "ledger_runs": runs, "max_runs_per_camera": maxRuns,
            "heap_table_bytes": heapAfter.map { b in heapBefore.map { b - $0 } ?? -1 } ?? -1,
            "rss_delta_bytes": rssAfter - rssBefore,
            "dedup_structure_bytes": structures.total, "dedup_structure_detail": structures.detail,
            "apply_s": apply, "commit_s": commit, "store_file_bytes": Self.fileBytes(path),
        ]
        let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }

    /// Heap bytes of `Set<UInt64>` identity sets the size of the table's hot buckets (the same identities spread
    /// evenly), measured by building them.
    static func identityBytes(hotIdentities: Int, buckets: Int) -> (total: Int, detail: String) {
        guard buckets > 0 else { return (0, "no hot buckets") }
        let perBucket = hotIdentities / buckets
        var sets: [Set<UInt64>] = []
        sets.reserveCapacity(buckets)
        let arrayBytes = HeapUsage.bytesInUse() ?? 0
        var rng = SplitMix(7)
        for _ in 0..<buckets {
            var s: Set<UInt64> = []
            for _ in 0..<perBucket { s.insert(rng.next()) }
            sets.append(s)
        }
        let after = HeapUsage.bytesInUse() ?? 0
        withExtendedLifetime(sets) {}
        let bytes = after - arrayBytes
        return (bytes, String(format: "%d sets of %d identities: %.1f bytes/identity", buckets, perBucket, Double(bytes) / Double(max(1, perBucket * buckets))))
    }

    /// Heap bytes of the table's ledgers (copied run for run) and of 1,024 content hashes per camera.
    static func ledgerBytes(table: BucketTable, cameras: Int, eventsPerCamera: Int) -> (total: Int, detail: String) {
        var ledgers: [SequenceLedger] = []
        ledgers.reserveCapacity(cameras)
        let afterArray = HeapUsage.bytesInUse() ?? 0
        var runs = 0
        for camera in table.cameras.values {
            // A deep copy with its own storage: the ledger read back from its chunks, as a restart does.
            var chunks: [(key: SequenceLedger.ChunkKey, bytes: [UInt8])] = []
            for (epoch, list) in camera.sequence.ledger.epochs {
                runs += list.count
                guard let first = list.first, let last = list.last else { continue }
                for chunk in (first.lo / SequenceLedger.chunkSpan)...(last.hi / SequenceLedger.chunkSpan) {
                    let key = SequenceLedger.ChunkKey(epoch: epoch, chunk: chunk)
                    chunks.append((key, camera.sequence.ledger.chunk(key)))
                }
            }
            let copy = try! SequenceLedger(chunks: chunks)
            precondition(copy == camera.sequence.ledger)
            ledgers.append(copy)
        }
        let afterLedgers = HeapUsage.bytesInUse() ?? 0
        // A fixed ring of (key, content hash) per seq camera, as `BucketTable.Camera.recentContent` holds it.
        var recent: [[(SequenceKey, UInt64)]] = []
        recent.reserveCapacity(cameras)
        let perCamera = BucketTable.Camera.recentSequenceCount
        let beforeRecent = HeapUsage.bytesInUse() ?? 0
        for c in 0..<cameras {
            recent.append((0..<perCamera).map { i in (SequenceKey(epoch: 0, seq: Int64(i)), UInt64(c &* 31 &+ i)) })
        }
        let afterRecent = HeapUsage.bytesInUse() ?? 0
        withExtendedLifetime((ledgers, recent)) {}
        let ledgerBytes = afterLedgers - afterArray, recentBytes = afterRecent - beforeRecent
        return (ledgerBytes + recentBytes, "ledgers \(ledgerBytes) bytes (\(runs) runs), recent content hashes \(recentBytes) bytes (\(perCamera) per camera)")
    }

    static func fileBytes(_ path: String) -> Int {
        [path, path + "-wal"].reduce(0) { total, p in
            total + ((try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.intValue ?? 0)
        }
    }
}

/// The C library's count of heap bytes in use (`mallinfo2`: `uordblks` + `hblkhd`), and the process's RSS.
enum HeapUsage {
    /// `nil` where it cannot be read. `mallinfo2` returns a 10-word struct, which Swift cannot declare for C, so it
    /// is called through `dlsym` with the struct's return slot passed as the hidden first argument — how the
    /// x86-64 System V ABI returns a struct this large (in `rdi`); other architectures get `nil`.
    static func bytesInUse() -> Int? {
        #if arch(x86_64) && canImport(Glibc)
        // RTLD_DEFAULT is a null handle in glibc.
        guard let symbol = dlsym(nil, "mallinfo2") else { return nil }
        typealias MallInfo2 = @convention(c) (UnsafeMutablePointer<Int>) -> Void
        let call = unsafeBitCast(symbol, to: MallInfo2.self)
        var words = [Int](repeating: 0, count: 10)
        words.withUnsafeMutableBufferPointer { call($0.baseAddress!) }
        // arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost
        return words[7] + words[4]
        #else
        return nil
        #endif
    }

    static func rssBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// A small deterministic generator (SplitMix64), so runs are repeatable.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Issue #12: one camera's ledger after days of lossy delivery. A ledger keeps one run per permanent loss and is
/// never pruned, and some of its paths walk every run: `chunk(_:)` (each flush, per changed chunk, under the table
/// lock), `gaps` (every flush for the fleet-wide gauge, and every windows query through `completeness(of:)`).
/// Prints, per age: runs, heap bytes, and the time of those paths for this one camera (a fleet multiplies them).
struct LedgerScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-scale", abstract: "One camera's sequence ledger after N days at --events-per-day with --loss: size and per-flush costs.")

    @Option var eventsPerDay = 1_000_000
    @Option(parsing: .upToNextOption) var days: [Int] = [1, 7]
    @Option var loss = 0.01
    @Option var seed: UInt64 = 12

    func run() async throws {
        let spacing = 86_400_000.0 / Double(eventsPerDay)
        for d in days {
            var rng = SplitMix(seed)
            let n = d * eventsPerDay
            let t0 = Int64(Date().timeIntervalSince1970 * 1000) - Int64(d) * 86_400_000
            let heapBefore = HeapUsage.bytesInUse() ?? 0
            var ledger = SequenceLedger()
            let started = DispatchTime.now().uptimeNanoseconds
            for i in 0..<n {
                if loss > 0, Double(rng.next() >> 11) / Double(1 << 53) < loss { continue }
                ledger.insert(epoch: 0, seq: Int64(i), timeMs: t0 + Int64(Double(i) * spacing))
            }
            let insertNs = Double(DispatchTime.now().uptimeNanoseconds - started) / Double(n)
            let heap = (HeapUsage.bytesInUse() ?? 0) - heapBefore
            let runs = ledger.epochs[0]?.count ?? 0
            let last = SequenceLedger.ChunkKey(epoch: 0, seq: Int64(n - 1))
            let chunkNs = Self.median(20) { _ = ledger.chunk(last) }
            let gapsNs = Self.median(10) { _ = ledger.gaps.count }
            let dayStart = (t0 + Int64(d - 1) * 86_400_000) / 300_000 * 300_000
            let windows = (0..<288).map { (fromMs: dayStart + Int64($0) * 300_000, toMs: dayStart + Int64($0 + 1) * 300_000) }
            let sequence = CameraSequence(ledger: ledger)
            let completenessNs = Self.median(10) { _ = sequence.completeness(of: windows) }
            print(String(
                format: "%d day(s) at %d/day, loss %.3f%%: %d runs, heap %.2f MB (%.1f bytes/run), insert %.0f ns/event; chunk(last) %.3f ms (every flush, per camera); gaps %.3f ms; completeness(288 windows) %.3f ms; chunk bytes %d",
                d, eventsPerDay, loss * 100, runs, Double(heap) / 1e6, Double(heap) / Double(max(1, runs)), insertNs,
                chunkNs / 1e6, gapsNs / 1e6, completenessNs / 1e6, ledger.chunk(last).count))
            withExtendedLifetime(ledger) {}
        }
    }

    static func median(_ rounds: Int, _ body: () -> Void) -> Double {
        var ns: [Double] = []
        for _ in 0..<rounds {
            let s = DispatchTime.now().uptimeNanoseconds
            body()
            ns.append(Double(DispatchTime.now().uptimeNanoseconds - s))
        }
        return ns.sorted()[ns.count / 2]
    }
}
