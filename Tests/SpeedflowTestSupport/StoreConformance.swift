import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore
import Testing

// The `Store` contract (Sources/SpeedflowStore/Store.swift), checked the same way against every implementation:
// SQLite in SpeedflowStoreTests, a ClickHouse node and the ClickHouse cluster in SpeedflowClickHouseTests. Each
// target runs `StoreContract.allCases` as the arguments of one test per backend, on a fresh, empty store per case.
// Everything the contract says lives in this one file.

/// A store implementation under test, and what it promises beyond the protocol's minimum.
public struct StoreUnderTest: Sendable {
    public var name: String
    /// Opens the store over its storage; called again to reopen it (a new instance over the same data).
    public var open: @Sendable () throws -> any StoreWriter
    /// Whether `reset(fromBucket:logOffset:)` works. A store without it (ClickHouse: `rebuild` is SQLite's) must
    /// throw and change nothing.
    public var resets: Bool
    /// Whether `pruneIdentities` drops identities itself. One that keeps them with their day's data (ClickHouse:
    /// dropped with the partition by `maintain`) returns 0 and keeps them.
    public var prunesIdentities: Bool
    /// Raw events the store holds, for a store that keeps them (`commitPolicy == .appendDeltas`); `nil` when it keeps none.
    public var storedEvents: (@Sendable () throws -> Int)?

    public init(
        name: String, resets: Bool, prunesIdentities: Bool, storedEvents: (@Sendable () throws -> Int)? = nil,
        open: @escaping @Sendable () throws -> any StoreWriter
    ) {
        self.name = name
        self.open = open
        self.resets = resets
        self.prunesIdentities = prunesIdentities
        self.storedEvents = storedEvents
    }
}

/// One clause of the `Store` contract per case.
public enum StoreContract: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case newStoreIsEmpty
    case commitLandsEverythingTogether
    case laterCommitsAddIdentities
    case readStatesAscendingAbsentOmitted
    case fleetReadsCoverTheRange
    case resetForgetsFromTheCut
    case pruneDropsOnlyOldIdentities
    case compactionReplacesIdentities
    case commitPolicy
    case sequencesLandWithTheCommit
    case rejectionsAddUpWithTheCommit

    public var testDescription: String {
        switch self {
        case .newStoreIsEmpty: "a new store is empty: offset 0, no cameras, no buckets"
        case .commitLandsEverythingTogether:
            "a commit lands states, identities, cameras and the log offset together; a reopened store sees them"
        case .laterCommitsAddIdentities:
            "later commits replace states and add identities; an empty commit still moves the offset; cameras follow"
        case .readStatesAscendingAbsentOmitted:
            "readStates: only the range, ascending, absent buckets omitted, across days; nothing for unknown cameras"
        case .fleetReadsCoverTheRange: "statesByCamera and countsByCamera: every camera's buckets in the range, none outside; the same for a page of cameras"
        case .resetForgetsFromTheCut:
            "reset(fromBucket:logOffset:) forgets buckets from the cut and sets the offset in one step (or throws, changing nothing)"
        case .pruneDropsOnlyOldIdentities: "pruneIdentities drops identities before the cut only; aggregates stay"
        case .compactionReplacesIdentities:
            "a bucket over many flushes reads back each identity once; replacesIds replaces its chunks with the whole set"
        case .sequencesLandWithTheCommit:
            "sequence ledger chunks and camera reports land with the commit; a newer chunk replaces the older; nothing else sees them"
        case .rejectionsAddUpWithTheCommit:
            "rejection counts land with the commit and add up per camera, arrival bucket and reason (a verbatim retry of a delta store's commit once); reads by camera and by range; figures untouched"
        case .commitPolicy:
            "delta stores merge deltas, keep raw events and count a commit retried verbatim once; overwrite stores need no deltas"
        }
    }

    /// Checks this clause on a fresh store of `subject`.
    public func verify(_ subject: StoreUnderTest, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let store = try subject.open()
        var w = ContractWriter()
        switch self {
        case .sequencesLandWithTheCommit:
            #expect(try store.sequences(cameras: nil).isEmpty, sourceLocation: sourceLocation)
            try w.commit(store, [("KVA", 0, [50]), ("KVB", 0, [60])])
            let a = try w.id("KVA"), b = try w.id("KVB")
            var ledgerA = SequenceLedger(), ledgerB = SequenceLedger()
            for seq in [Int64(0), 1, 2, 5, 6, 65_535, 65_536, 65_537] { ledgerA.insert(epoch: 0, seq: seq, timeMs: w.day0Ms + seq) }
            for seq in [Int64(7), 9] { ledgerA.insert(epoch: 3, seq: seq, timeMs: w.day0Ms + 100 + seq) }
            ledgerB.insert(epoch: 0, seq: 40, timeMs: w.day0Ms)
            func chunks(_ l: SequenceLedger, _ keys: [(Int64, Int64)]) -> [(key: SequenceLedger.ChunkKey, bytes: [UInt8])] {
                keys.map { let k = SequenceLedger.ChunkKey(epoch: $0.0, chunk: $0.1); return (k, l.chunk(k)) }
            }
            let reportA = CameraReport(kvfvId: "KVA", epoch: 3, seq: 12, timeMs: w.day0Ms + 500)
            var commit = StoreCommit(logOffset: w.offset + 10, timeMs: w.day0Ms + 86_400_000)
            commit.sequences = [
                StoreCommit.Sequence(camera: a, chunks: chunks(ledgerA, [(0, 0), (0, 1), (3, 0)]), report: reportA, reportArrivalMs: w.day0Ms + 600),
                StoreCommit.Sequence(camera: b, chunks: chunks(ledgerB, [(0, 0)])),
            ]
            try store.commit(commit)
            w.offset += 10
            // Later: the gap 3…4 of KVA closes; only chunk (0, 0) is rewritten.
            ledgerA.insert(epoch: 0, seq: 3, timeMs: w.day0Ms + 3)
            ledgerA.insert(epoch: 0, seq: 4, timeMs: w.day0Ms + 4)
            var later = StoreCommit(logOffset: w.offset + 10, timeMs: w.day0Ms + 86_400_000 + 1000)
            later.sequences = [StoreCommit.Sequence(camera: a, chunks: chunks(ledgerA, [(0, 0)]))]
            try store.commit(later)
            w.offset += 10
            for reader in [store, try subject.open()] {
                let ids = Dictionary(uniqueKeysWithValues: try reader.cameras().map { ($0.kvfvId, $0.id) })
                let all = try reader.sequences(cameras: nil)
                #expect(all[ids["KVA"]!]?.ledger == ledgerA, sourceLocation: sourceLocation)
                #expect(all[ids["KVA"]!]?.ledger.gaps.map(\.count) == [65_528, 1], sourceLocation: sourceLocation)
                #expect(all[ids["KVA"]!]?.report == reportA && all[ids["KVA"]!]?.reportArrivalMs == w.day0Ms + 600, sourceLocation: sourceLocation)
                #expect(all[ids["KVB"]!]?.ledger == ledgerB && all[ids["KVB"]!]?.report == nil, sourceLocation: sourceLocation)
                let onlyB = try reader.sequences(cameras: [ids["KVB"]!])
                #expect(Array(onlyB.keys) == [ids["KVB"]!], sourceLocation: sourceLocation)
                #expect(try reader.sequences(cameras: []).isEmpty, sourceLocation: sourceLocation)
            }
            // The figures are untouched by ledger rows.
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)

        case .rejectionsAddUpWithTheCommit:
            try w.commit(store, [("KVA", 0, [50]), ("KVB", 0, [60])])
            let a = try w.id("KVA"), b = try w.id("KVB")
            #expect(try await store.rejectionsByCamera(buckets: w.day0..<(w.day0 + 600)).isEmpty, sourceLocation: sourceLocation)
            var first = StoreCommit(logOffset: w.offset + 10, timeMs: w.day0Ms + 86_400_000)
            first.rejections = [
                StoreCommit.Rejections(key: BucketKey(camera: a, bucket: w.day0 + 3), counts: [.inFuture: 2, .tooLate: 1]),
                StoreCommit.Rejections(key: BucketKey(camera: b, bucket: w.day0 + 300), counts: [.speedOutOfRange: 5]),
            ]
            try store.commit(first)
            w.offset += 10
            var later = StoreCommit(logOffset: w.offset + 10, timeMs: w.day0Ms + 86_400_000 + 1000)
            later.rejections = [
                StoreCommit.Rejections(key: BucketKey(camera: a, bucket: w.day0 + 3), counts: [.inFuture: 4]),
                StoreCommit.Rejections(key: BucketKey(camera: a, bucket: w.day0 + 4), counts: [.missingField: 1]),
            ]
            try store.commit(later)
            // A delta store's failed commit is retried verbatim and may have landed: it counts once.
            if store.commitPolicy == .appendDeltas { try store.commit(later) }
            w.offset += 10
            for reader in [store, try subject.open()] {
                let ids = Dictionary(uniqueKeysWithValues: try reader.cameras().map { ($0.kvfvId, $0.id) })
                let ra = try #require(ids["KVA"]), rb = try #require(ids["KVB"])
                #expect(try reader.logOffset() == w.offset, sourceLocation: sourceLocation)
                #expect(
                    try await reader.rejections(camera: ra, buckets: w.day0..<(w.day0 + 288))
                        == [w.day0 + 3: [.inFuture: 6, .tooLate: 1], w.day0 + 4: [.missingField: 1]], sourceLocation: sourceLocation)
                #expect(
                    try await reader.rejections(camera: ra, buckets: (w.day0 + 4)..<(w.day0 + 5)) == [w.day0 + 4: [.missingField: 1]],
                    sourceLocation: sourceLocation)
                #expect(try await reader.rejections(camera: ra, buckets: (w.day0 + 5)..<(w.day0 + 600)).isEmpty, sourceLocation: sourceLocation)
                #expect(
                    try await reader.rejections(camera: rb, buckets: w.day0..<(w.day0 + 600)) == [w.day0 + 300: [.speedOutOfRange: 5]],
                    sourceLocation: sourceLocation)
                #expect(try await reader.rejections(camera: 999, buckets: w.day0..<(w.day0 + 600)).isEmpty, sourceLocation: sourceLocation)
                #expect(
                    try await reader.rejectionsByCamera(buckets: w.day0..<(w.day0 + 600))
                        == [ra: [.inFuture: 6, .tooLate: 1, .missingField: 1], rb: [.speedOutOfRange: 5]], sourceLocation: sourceLocation)
                #expect(
                    try await reader.rejectionsByCamera(buckets: (w.day0 + 4)..<(w.day0 + 301))
                        == [ra: [.missingField: 1], rb: [.speedOutOfRange: 5]], sourceLocation: sourceLocation)
                #expect(try await reader.rejectionsByCamera(buckets: (w.day0 + 5)..<(w.day0 + 5)).isEmpty, sourceLocation: sourceLocation)
                // Nothing else sees them: sequence state and figures are untouched.
                #expect(try reader.sequences(cameras: nil).isEmpty, sourceLocation: sourceLocation)
            }
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            if subject.resets {
                // A rebuild's reset forgets the rejection counts of arrival buckets from the cut (the replay recounts them).
                try store.reset(fromBucket: w.day0 + 4, logOffset: 1)
                w.forget(from: w.day0 + 4, offset: 1)
                #expect(
                    try await store.rejections(camera: a, buckets: w.day0..<(w.day0 + 288)) == [w.day0 + 3: [.inFuture: 6, .tooLate: 1]],
                    sourceLocation: sourceLocation)
                #expect(try await store.rejections(camera: b, buckets: w.day0..<(w.day0 + 600)).isEmpty, sourceLocation: sourceLocation)
            }

        case .newStoreIsEmpty:
            #expect(try store.logOffset() == 0)
            #expect(try store.cameras().isEmpty)
            #expect(try store.loadBucket(BucketKey(camera: 1, bucket: w.day0)) == nil)
            #expect(try await store.readStates(camera: 1, buckets: w.day0..<(w.day0 + 288)).isEmpty)
            #expect(try await store.statesByCamera(buckets: w.day0..<(w.day0 + 288)).isEmpty)
            #expect(try await store.countsByCamera(buckets: w.day0..<(w.day0 + 288)).isEmpty)

        case .commitLandsEverythingTogether:
            try w.commit(store, [("KVA", 0, [50, 61.5]), ("KVA", 7, [80]), ("KVB", 7, [30, 31, 32]), ("KVB", 300, [99.25])])
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            // A new instance over the same storage: same offset, cameras, buckets and identities.
            try await w.expectHeld(by: try subject.open(), reopened: true, sourceLocation: sourceLocation)

        case .laterCommitsAddIdentities:
            try w.commit(store, [("KVA", 3, [40, 41]), ("KVB", 3, [70])])
            try w.commit(store, [("KVA", 3, [42]), ("KVA", 4, [43])], arrivalMs: w.day0Ms + 86_400_000)
            try w.commit(store, [("KVA", 3, [44, 45, 46])], arrivalMs: w.day0Ms + 2 * 86_400_000)
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            // Nothing changed since, but the log moved on (records that were all duplicates): the offset follows.
            try w.commit(store, [])
            #expect(try store.logOffset() == w.offset, sourceLocation: sourceLocation)
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)

        case .readStatesAscendingAbsentOmitted:
            // Committed out of order; two days; a second camera with buckets in between.
            try w.commit(store, [("KVA", 300, [60]), ("KVA", 5, [61]), ("KVA", 0, [62, 63]), ("KVB", 1, [64]), ("KVB", 2, [65])])
            try w.commit(store, [("KVA", 287, [66]), ("KVA", 2, [67]), ("KVA", 288, [68])])
            let a = try w.id("KVA")
            let d = w.day0
            try await w.expectStates(store, camera: "KVA", d..<(d + 301), [0, 2, 5, 287, 288, 300], sourceLocation: sourceLocation)
            try await w.expectStates(store, camera: "KVA", (d + 1)..<(d + 5), [2], sourceLocation: sourceLocation)
            try await w.expectStates(store, camera: "KVA", (d + 286)..<(d + 290), [287, 288], sourceLocation: sourceLocation)
            try await w.expectStates(store, camera: "KVB", d..<(d + 288), [1, 2], sourceLocation: sourceLocation)
            #expect(try await store.readStates(camera: a, buckets: (d + 3)..<(d + 5)).isEmpty, sourceLocation: sourceLocation)
            #expect(try await store.readStates(camera: a, buckets: d..<d).isEmpty, sourceLocation: sourceLocation)
            #expect(try await store.readStates(camera: 999, buckets: d..<(d + 301)).isEmpty, sourceLocation: sourceLocation)

        case .fleetReadsCoverTheRange:
            try w.commit(store, [("KVA", 10, [50, 51]), ("KVA", 11, [52]), ("KVB", 11, [53, 54, 55]), ("KVC", 400, [56])])
            try w.commit(store, [("KVB", 11, [57]), ("KVC", 9, [58])])
            for range in [w.day0..<(w.day0 + 12), (w.day0 + 11)..<(w.day0 + 12), (w.day0 + 10)..<(w.day0 + 500), (w.day0 + 12)..<(w.day0 + 400)] {
                let want = try w.expectedByCamera(range)
                let states = try await store.statesByCamera(buckets: range)
                #expect(Set(states.keys) == Set(want.keys), "cameras in \(range)", sourceLocation: sourceLocation)
                for (camera, buckets) in want {
                    #expect(Set(states[camera].map { Array($0.keys) } ?? []) == Set(buckets.keys), "camera \(camera) in \(range)", sourceLocation: sourceLocation)
                    for (bucket, state) in buckets {
                        expectSameAggregate(states[camera]?[bucket], state, "camera \(camera) bucket \(bucket)", sourceLocation: sourceLocation)
                    }
                }
                let counts = try await store.countsByCamera(buckets: range)
                #expect(counts == want.mapValues { $0.mapValues(\.count) }, "counts in \(range)", sourceLocation: sourceLocation)
                // A page of the fleet: the same reads for some cameras only (one unknown, one without buckets here).
                let some = Array(want.keys.sorted().prefix(2)) + [999]
                let pageStates = try await store.statesByCamera(some, buckets: range)
                #expect(Set(pageStates.keys) == Set(some.filter { want[$0] != nil }), "page cameras in \(range)", sourceLocation: sourceLocation)
                for camera in some {
                    for (bucket, state) in want[camera] ?? [:] {
                        expectSameAggregate(pageStates[camera]?[bucket], state, "page: camera \(camera) bucket \(bucket)", sourceLocation: sourceLocation)
                    }
                }
                let pageCounts = try await store.countsByCamera(some, buckets: range)
                #expect(
                    pageCounts == want.filter { some.contains($0.key) }.mapValues { $0.mapValues(\.count) },
                    "page counts in \(range)", sourceLocation: sourceLocation)
            }

        case .resetForgetsFromTheCut:
            try w.commit(store, [("KVA", 1, [40]), ("KVA", 200, [41, 42]), ("KVA", 290, [43]), ("KVB", 201, [44])])
            try w.commit(store, [("KVA", 201, [45]), ("KVB", 1, [46])])
            let cut = w.day0 + 200
            guard subject.resets else {
                #expect(throws: (any Error).self, sourceLocation: sourceLocation) { try store.reset(fromBucket: cut, logOffset: 1) }
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
                break
            }
            try store.reset(fromBucket: cut, logOffset: 1)
            w.forget(from: cut, offset: 1)
            #expect(try store.logOffset() == 1, sourceLocation: sourceLocation)
            for key in [BucketKey(camera: try w.id("KVA"), bucket: cut), BucketKey(camera: try w.id("KVB"), bucket: cut + 1)] {
                #expect(try store.loadBucket(key) == nil, "bucket \(key) survived the reset", sourceLocation: sourceLocation)
            }
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            // Replay after the reset writes the forgotten buckets anew.
            try w.commit(store, [("KVA", 200, [41, 42]), ("KVA", 290, [43])])
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)

        case .pruneDropsOnlyOldIdentities:
            try w.commit(store, [("KVA", 1, [40, 41]), ("KVA", 2, [42]), ("KVA", 10, [43, 44]), ("KVB", 1, [45]), ("KVB", 11, [46])])
            try w.commit(store, [("KVA", 2, [47]), ("KVB", 10, [48])])
            let cut = w.day0 + 10
            let pruned = try store.pruneIdentities(before: cut)
            if subject.prunesIdentities {
                #expect(pruned > 0, sourceLocation: sourceLocation)
                w.dropIdentities(before: cut)
            } else {
                #expect(pruned == 0, sourceLocation: sourceLocation)
            }
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)

        case .compactionReplacesIdentities:
            for speed in stride(from: 40.0, to: 50, by: 1) { try w.commit(store, [("KVA", 5, [speed, speed + 0.5])]) }
            try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            let key = try w.key("KVA", 5)
            let stored = try #require(try store.loadBucket(key), sourceLocation: sourceLocation)
            // Many chunks mean "compact on next write" (the engine does above `Aggregator.maxChunks`); a store that
            // always reads as one chunk is never asked to.
            if stored.chunkCount > 1 {
                try w.commit(store, [("KVA", 5, [51])], replacingIds: true)
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
                #expect(try store.loadBucket(key)?.chunkCount == 1, "compacted into one chunk", sourceLocation: sourceLocation)
                try w.commit(store, [("KVA", 5, [52])])
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            } else {
                #expect(stored.chunkCount == 1, sourceLocation: sourceLocation)
            }

        case .commitPolicy:
            if store.commitPolicy == .appendDeltas {
                try w.commit(store, [("KVA", 20, [50, 60]), ("KVB", 20, [70])])
                try w.commit(store, [("KVA", 20, [55]), ("KVA", 21, [65])])
                // A flush whose answer was lost is retried verbatim (same offset, same rows): nothing counts twice.
                let retried = try #require(w.lastCommit, sourceLocation: sourceLocation)
                try store.commit(retried)
                try store.commit(retried)
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
                try w.commit(store, [("KVA", 20, [56])])
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
                if let storedEvents = subject.storedEvents {
                    #expect(try storedEvents() == w.events, "raw events kept once each", sourceLocation: sourceLocation)
                }
            } else {
                // An overwriting store takes whole states and identities; deltas and events are not needed.
                try w.commit(store, [("KVA", 20, [50, 60]), ("KVB", 20, [70])], withDeltas: false)
                try w.commit(store, [("KVA", 20, [55]), ("KVA", 21, [65])], withDeltas: false)
                try await w.expectHeld(by: store, sourceLocation: sourceLocation)
            }
        }
        // Whatever the clause did, the store's own check finds nothing wrong.
        #expect(try store.checkIntegrity(summaries: true) == [], "\(subject.name) checks clean", sourceLocation: sourceLocation)
    }
}

/// Writes commits the way the engine does (whole state, identities added since the last commit, the delta and
/// its events, changed cameras, a growing log offset) and remembers what the store must then hold.
struct ContractWriter {
    /// Buckets are numbered from the start of a fixed UTC day (2024-10-04).
    let day0: Int64 = 20_000 * 288
    var day0Ms: Int64 { day0 * 300_000 }
    var offset: UInt64 = 0
    var events = 0
    var lastCommit: StoreCommit?
    var cameras: [String: CameraRecord] = [:]
    var buckets: [BucketKey: (state: BucketState, ids: [UInt64])] = [:]
    /// Buckets whose identities the store may have dropped (pruned): only their aggregates are checked.
    var idsDropped: Set<BucketKey> = []

    func id(_ camera: String) throws -> Int64 { try #require(cameras[camera]).id }
    func key(_ camera: String, _ bucket: Int64) throws -> BucketKey { BucketKey(camera: try id(camera), bucket: day0 + bucket) }

    /// One flush: `speeds` become new events of `camera` in bucket `day0 + bucket`.
    mutating func commit(
        _ store: any StoreWriter, _ adds: [(camera: String, bucket: Int64, speeds: [Double])], arrivalMs: Int64? = nil,
        replacingIds: Bool = false, withDeltas: Bool = true
    ) throws {
        offset += 1 + UInt64(adds.count) * 100
        let arrival = arrivalMs ?? (day0Ms + 86_400_000)
        var commit = StoreCommit(logOffset: offset, timeMs: arrival)
        var changed: [BucketKey: StoreCommit.Bucket] = [:]
        var order: [BucketKey] = []
        var touched: [String] = []
        for add in adds {
            if cameras[add.camera] == nil {
                cameras[add.camera] = CameraRecord(id: Int64(cameras.count + 1), kvfvId: add.camera)
            }
            let key = BucketKey(camera: cameras[add.camera]!.id, bucket: day0 + add.bucket)
            if changed[key] == nil {
                order.append(key)
                changed[key] = StoreCommit.Bucket(key: key, state: buckets[key]?.state ?? BucketState(), addedIds: [])
            }
            var entry = changed[key]!
            var newestMs = cameras[add.camera]!.lastEventMs ?? .min
            for speed in add.speeds {
                events += 1
                let event = CameraEvent(
                    kvfvId: add.camera, timestampMs: key.bucket * 300_000 + Int64(events) % 300_000, speed: speed,
                    eventId: "\(add.camera)-\(events)", lane: 1)
                _ = entry.state.add(speed)
                entry.addedIds.append(event.identity)
                if withDeltas {
                    _ = entry.delta.add(speed)
                    entry.events.append(event)
                }
                newestMs = max(newestMs, event.timestampMs)
            }
            changed[key] = entry
            cameras[add.camera]!.lastEventMs = newestMs
            cameras[add.camera]!.lastArrivalMs = arrival
            if !touched.contains(add.camera) { touched.append(add.camera) }
        }
        for key in order {
            var b = changed[key]!
            let ids = (buckets[key]?.ids ?? []) + b.addedIds
            if replacingIds {
                // Compaction: the bucket's complete identity set, replacing its chunks.
                b.replacesIds = true
                b.addedIds = ids
            }
            buckets[key] = (b.state, ids)
            commit.buckets.append(b)
        }
        commit.cameras = touched.map { cameras[$0]! }
        try store.commit(commit)
        lastCommit = commit
    }

    mutating func forget(from bucket: Int64, offset: UInt64) {
        buckets = buckets.filter { $0.key.bucket < bucket }
        self.offset = offset
    }

    mutating func dropIdentities(before bucket: Int64) {
        idsDropped.formUnion(buckets.keys.filter { $0.bucket < bucket })
    }

    func expectedByCamera(_ range: Range<Int64>) throws -> [Int64: [Int64: BucketState]] {
        var result: [Int64: [Int64: BucketState]] = [:]
        for (key, b) in buckets where range.contains(key.bucket) { result[key.camera, default: [:]][key.bucket] = b.state }
        return result
    }

    /// `readStates` of `camera` over `range` (bucket numbers relative to `day0`) gives exactly `present`, ascending.
    func expectStates(
        _ store: any StoreWriter, camera: String, _ range: Range<Int64>, _ present: [Int64], sourceLocation: SourceLocation
    ) async throws {
        let got = try await store.readStates(camera: try id(camera), buckets: range)
        #expect(got.map { $0.bucket - day0 } == present, "\(camera) over \(range.lowerBound - day0)..<\(range.upperBound - day0)", sourceLocation: sourceLocation)
        for (bucket, state) in got {
            let want = try #require(buckets[BucketKey(camera: try id(camera), bucket: bucket)], sourceLocation: sourceLocation)
            expectSameAggregate(state, want.state, "\(camera) bucket \(bucket - day0)", sourceLocation: sourceLocation)
        }
    }

    /// The store holds exactly what was committed: offset, cameras (by name: a reopened store may number them
    /// anew), every bucket's aggregate and identities (each once) through `loadBucket` and `readStates`.
    func expectHeld(by store: any StoreWriter, reopened: Bool = false, sourceLocation: SourceLocation) async throws {
        #expect(try store.logOffset() == offset, "log offset", sourceLocation: sourceLocation)
        let stored = Dictionary(uniqueKeysWithValues: try store.cameras().map { ($0.kvfvId, $0) })
        let live = Set(buckets.keys.map(\.camera))
        #expect(Set(stored.keys).isSuperset(of: cameras.values.filter { live.contains($0.id) }.map(\.kvfvId)), sourceLocation: sourceLocation)
        var storeId: [Int64: Int64] = [:]
        for camera in cameras.values {
            guard let s = stored[camera.kvfvId] else { continue }
            if !reopened { #expect(s.id == camera.id, "\(camera.kvfvId) keeps its id", sourceLocation: sourceLocation) }
            #expect(s.lastEventMs == camera.lastEventMs && s.lastArrivalMs == camera.lastArrivalMs, "\(camera.kvfvId) times", sourceLocation: sourceLocation)
            storeId[camera.id] = s.id
        }
        var byCamera: [Int64: [(bucket: Int64, state: BucketState)]] = [:]
        for (key, want) in buckets {
            let camera = try #require(storeId[key.camera], "camera #\(key.camera) missing", sourceLocation: sourceLocation)
            byCamera[camera, default: []].append((key.bucket, want.state))
            let loaded = try #require(try store.loadBucket(BucketKey(camera: camera, bucket: key.bucket)), "bucket \(key) missing", sourceLocation: sourceLocation)
            expectSameAggregate(loaded.state, want.state, "bucket \(key)", sourceLocation: sourceLocation)
            if idsDropped.contains(key) {
                #expect(loaded.ids.isEmpty, "pruned identities of \(key)", sourceLocation: sourceLocation)
            } else {
                #expect(loaded.ids.count == want.ids.count && Set(loaded.ids) == Set(want.ids), "identities of \(key)", sourceLocation: sourceLocation)
            }
        }
        let all = day0..<(day0 + 2 * 288)
        for (camera, want) in byCamera {
            let got = try await store.readStates(camera: camera, buckets: all)
            #expect(got.map(\.bucket) == want.map(\.bucket).sorted(), "buckets of camera \(camera)", sourceLocation: sourceLocation)
        }
    }
}

/// The same aggregate up to the order of floating-point additions (a delta store merges per-flush deltas):
/// counts, extremes and percentiles exactly, sums and moments to 1e-9.
public func expectSameAggregate(
    _ got: BucketState?, _ want: BucketState, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let got else {
        Issue.record("\(what): missing", sourceLocation: sourceLocation)
        return
    }
    #expect(got.count == want.count, "\(what): count", sourceLocation: sourceLocation)
    #expect(got.minSpeed == want.minSpeed && got.maxSpeed == want.maxSpeed, "\(what): min/max", sourceLocation: sourceLocation)
    #expect([15, 50, 85].map(got.percentile) == [15, 50, 85].map(want.percentile), "\(what): percentiles", sourceLocation: sourceLocation)
    #expect(isClose(got.sum, want.sum) && isClose(got.sumInverse, want.sumInverse), "\(what): sums", sourceLocation: sourceLocation)
    #expect(isClose(got.mean, want.mean) && isClose(got.m2, want.m2, tolerance: 1e-6), "\(what): moments", sourceLocation: sourceLocation)
}
