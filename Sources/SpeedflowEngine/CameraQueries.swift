import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowStore

/// What queries read from memory: the cameras known and the buckets held (fresher than the store, or not yet
/// in it). A counting role's `Aggregator` is one; an API node's `StoreFollower` (cameras only) is the other.
public protocol CameraView: Sendable {
    /// The camera's store id and its in-memory states for bucket numbers in `range`; `nil` for a camera never
    /// seen.
    func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])?
    /// Every camera, with its in-memory event counts from bucket `lowest` on and its state in bucket `current`.
    func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow]
    /// One page of cameras in name order (see `CameraPageRequest`), rows as `cameraRows` gives them.
    func cameraPage(
        _ request: CameraPageRequest, countsFrom lowest: Int64, current: Int64,
        matches: (BucketTable.Camera) -> Bool
    ) -> CameraRowPage
    /// The sequence state of the given cameras (those that have one): memory where this view counts, else the store.
    func sequences(_ cameras: [Int64]) throws -> [Int64: CameraSequence]
    /// Rejection counts held in memory and not yet in the store (per camera, arrival bucket in `range`, reason;
    /// only `camera` when given), together with `read` of the store, taken so that no flush falls between them
    /// (see `CameraRejections.swift`; a view that counts nothing returns none and just reads).
    func unflushedRejections<Stored: Sendable>(
        camera: Int64?, buckets range: Range<Int64>, withStored read: () async throws -> Stored
    ) async throws -> (unflushed: [Int64: [Int64: [RejectionReason: Int64]]], stored: Stored)
}

/// Which cameras `GET /kvfv` lists: those whose name starts with `prefix`, after `after` in name order, at most
/// `limit`; with a `health` filter the cameras are checked in order and at most `scanLimit` of them per page,
/// so a rare health costs a few short pages rather than a scan of the fleet.
public struct CameraPageRequest: Sendable, Equatable {
    public var prefix: String
    public var after: String?
    public var limit: Int
    public var health: CameraStatus.Health?
    public var scanLimit: Int

    public static let defaultLimit = 100
    public static let maxLimit = 1000
    public static let defaultScanLimit = 10_000

    public init(
        prefix: String = "", after: String? = nil, limit: Int = Self.defaultLimit, health: CameraStatus.Health? = nil,
        scanLimit: Int = Self.defaultScanLimit
    ) {
        self.prefix = prefix
        self.after = after
        self.limit = limit
        self.health = health
        self.scanLimit = scanLimit
    }
}

/// A page of `CameraRow`s: `next` is the cursor of the page after it (`nil`: none), `matched` how many cameras
/// have the prefix, `total` the fleet.
public struct CameraRowPage: Sendable {
    public var rows: [CameraRow]
    public var next: String?
    public var matched: Int
    public var total: Int
}

/// A page of `GET /kvfv`. `matched` is `nil` under a health filter (counting it would read the whole fleet).
public struct CameraStatusPage: Sendable {
    public var cameras: [CameraStatus]
    public var next: String?
    public var matched: Int?
    public var total: Int
}

/// A camera as `CameraView` gives it to queries.
public struct CameraRow: Sendable {
    /// Record and counters (without its buckets).
    public var camera: BucketTable.Camera
    public var hotCounts: [Int64: Int64]
    public var hotCurrent: BucketState?
}

extension BucketTable {
    func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])? {
        guard let camera = kvfvIds[kvfvId] else { return nil }
        return (camera, hotStates(camera: camera, buckets: range))
    }

    func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow] {
        cameras.values.map { row($0, countsFrom: lowest, current: current) }
    }
}

extension BucketTable {
    func cameraPage(
        _ request: CameraPageRequest, countsFrom lowest: Int64, current: Int64, matches: (Camera) -> Bool
    ) -> CameraRowPage {
        let range = names.range(prefix: request.prefix, after: request.after)
        var rows: [CameraRow] = []
        rows.reserveCapacity(min(request.limit, 1024))
        var p = range.start
        var scanned = 0
        var lastScanned: String?
        while rows.count < request.limit, scanned < request.scanLimit, let name = names.name(at: p), name.hasPrefix(request.prefix) {
            scanned += 1
            lastScanned = name
            p = names.after(p)
            guard let id = kvfvIds[name], let camera = cameras[id], matches(camera) else { continue }
            rows.append(row(camera, countsFrom: lowest, current: current))
        }
        let more = names.name(at: p).map { $0.hasPrefix(request.prefix) } ?? false
        return CameraRowPage(rows: rows, next: more ? lastScanned : nil, matched: range.matched, total: names.count)
    }

    func row(_ camera: Camera, countsFrom lowest: Int64, current: Int64) -> CameraRow {
        var counts: [Int64: Int64] = [:]
        for (bucket, e) in camera.buckets where bucket >= lowest { counts[bucket] = e.state.count }
        // Without its buckets: the copy would keep every hot bucket's storage alive past the lock.
        var bare = camera
        bare.dropBuckets()
        return CameraRow(camera: bare, hotCounts: counts, hotCurrent: camera.buckets[current]?.state)
    }
}

/// A camera's row in `GET /kvfv`.
public struct CameraStatus: Sendable {
    public enum Health: String, Sendable { case live, silent, lagging, clockSkew = "clock_skew", stuck }
    public var kvfvId: String
    public var health: Health
    public var lastEventMs: Int64?
    public var lastArrivalMs: Int64?
    public var lagMs: Int64
    public var eventsLastHour: Int64
    public var eventsToday: Int64
    public var currentWindowStartMs: Int64
    public var current: BucketState
    public var accepted: Int64
    public var duplicates: Int64
    public var rejected: Int64
    /// Resends of a counted `seq` with different content (best effort; since start, on the counting node).
    public var conflictingDuplicates: Int64
    /// For a camera that numbers its passes: what arrived and what it reported (gaps, backlog).
    public var sequence: CameraSequence?
}

/// One window of a camera: its figures, and for a camera that numbers its passes how final they are.
public struct WindowReport: Sendable {
    public var window: Window
    public var state: BucketState
    /// `complete`: no known gap or backlog may hold passes of this window and the camera has told what it
    /// recorded up to its end; `missing`: how many known-missing passes may belong to it. `nil`: no `seq`.
    public var completeness: (complete: Bool, missing: Int64)?
    /// Passes over the speed limit, when the query gave a limit history and a limit was in force in the window.
    public var compliance: Compliance?

    public init(
        window: Window, state: BucketState, completeness: (complete: Bool, missing: Int64)? = nil,
        compliance: Compliance? = nil
    ) {
        self.window = window
        self.state = state
        self.completeness = completeness
        self.compliance = compliance
    }

    /// Vehicles per hour over the window.
    public var flowRate: Double { Double(state.count) * 3_600_000 / Double(max(1, window.endMs - window.startMs)) }
}

/// The read side of every role that answers queries: memory first (`CameraView`), then the store.
public struct CameraQueries: Sendable {
    public let view: any CameraView
    public let store: any StoreReader
    let configuration: EngineConfiguration
    let clock: @Sendable () -> Int64

    public init(
        view: any CameraView, store: any StoreReader, configuration: EngineConfiguration,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.view = view
        self.store = store
        self.configuration = configuration
        self.clock = clock
    }

    public var now: Int64 { clock() }

    /// Merged state of each window for one camera, reading memory (the freshest, including every acked event)
    /// and the store. Returns `nil` for a camera never seen.
    ///
    /// Memory is read first; a bucket not in memory then is persisted (only persisted buckets are evicted), so
    /// the store read that follows sees it.
    public func windowStates(kvfvId: String, windows: [Window]) async throws -> [BucketState]? {
        try await cameraWindowStates(kvfvId: kvfvId, windows: windows)?.states
    }

    /// Each window's figures and how final they are (`WindowReport`), for the passes of `groups` (one list of
    /// reports per group, in order) and with compliance under `limitAt` (the speed limit in force at a time, ms);
    /// `nil` for a camera never seen.
    public func windowReports(
        kvfvId: String, windows: [Window], groups: [LaneGroup], limitAt: ((Int64) -> Int?)? = nil
    ) async throws -> [[WindowReport]]? {
        let lanes = groups.contains { $0 != .camera }
        guard let found = try await cameraBuckets(kvfvId: kvfvId, windows: windows, lanes: lanes) else { return nil }
        let completeness = try view.sequences([found.camera])[found.camera]?.completeness(of: windows.map { ($0.startMs, $0.endMs) })
        return groups.map { group in
            let figures = WindowFigures.fold(found.buckets, into: windows, group: group, limitAt: limitAt)
            return windows.indices.map { i in
                WindowReport(
                    window: windows[i], state: figures[i].state, completeness: completeness?[i], compliance: figures[i].compliance)
            }
        }
    }

    /// Each window's figures for every pass of the camera (see the general form above).
    public func windowReports(kvfvId: String, windows: [Window]) async throws -> [WindowReport]? {
        try await windowReports(kvfvId: kvfvId, windows: windows, groups: [.camera])?.first
    }

    /// A camera's sequence state (ledger and report); `nil` for a camera never seen, empty for one without `seq`.
    public func sequence(kvfvId: String) throws -> CameraSequence? {
        guard let camera = view.hotStates(kvfvId: kvfvId, buckets: 0..<0)?.camera else { return nil }
        return try view.sequences([camera])[camera] ?? CameraSequence()
    }

    func cameraWindowStates(kvfvId: String, windows: [Window]) async throws -> (camera: Int64, states: [BucketState])? {
        guard let found = try await cameraBuckets(kvfvId: kvfvId, windows: windows, lanes: false) else { return nil }
        return (found.camera, WindowFigures.fold(found.buckets, into: windows).map(\.state))
    }

    /// The camera's buckets under `windows`, ascending: memory first, then the store (its lanes decoded only when
    /// `lanes`; memory's states have theirs).
    func cameraBuckets(
        kvfvId: String, windows: [Window], lanes: Bool
    ) async throws -> (camera: Int64, buckets: [(bucket: Int64, state: BucketState)])? {
        guard let first = windows.first, let last = windows.last else {
            return view.hotStates(kvfvId: kvfvId, buckets: 0..<0).map { ($0.camera, []) }
        }
        let range = first.buckets.lowerBound..<max(first.buckets.lowerBound, last.buckets.upperBound)
        guard let hot = view.hotStates(kvfvId: kvfvId, buckets: range) else { return nil }
        // The store's rows come ascending; memory's (a bucket not flushed yet, or newer than its row) win and are
        // few, so only then is the list sorted.
        let stored = try await store.readStates(camera: hot.camera, buckets: range, lanes: lanes)
        guard !hot.states.isEmpty else { return (hot.camera, stored) }
        var merged = stored.filter { hot.states[$0.bucket] == nil }
        merged.append(contentsOf: hot.states.map { (bucket: $0.key, state: $0.value) })
        merged.sort { $0.bucket < $1.bucket }
        return (hot.camera, merged)
    }

    /// Every camera with its health and recent figures.
    public func cameraStatuses() async throws -> [CameraStatus] {
        let now = clock()
        let currentBucket = Bucket.index(ofTimestamp: now)
        let dayStart = Bucket.index(ofTimestamp: now - now.floorDivMod(86_400_000).1)
        let hourStart = Bucket.index(ofTimestamp: now - 3_600_000) + 1
        let lowest = min(dayStart, hourStart)
        // Counts are all the day needs; the full state (histogram and all) only for the current bucket.
        let rows = view.cameraRows(countsFrom: lowest, current: currentBucket)
        let storedCounts = try await store.countsByCamera(buckets: lowest..<(currentBucket + 1))
        let storedCurrent = try await store.statesByCamera(buckets: currentBucket..<(currentBucket + 1))
        let sequences = try view.sequences(rows.map { $0.camera.record.id })
        return rows.map { row in
            status(
                row, nowMs: now, currentBucket: currentBucket, dayStart: dayStart, hourStart: hourStart,
                storedCounts: storedCounts, storedCurrent: storedCurrent, sequences: sequences)
        }.sorted { $0.kvfvId < $1.kvfvId }
    }

    /// One page of the fleet view: memory for the page's cameras, then the store for just those cameras, so the
    /// work is bounded by the page (and, under a health filter, by `scanLimit` records in memory).
    public func cameraPage(_ request: CameraPageRequest) async throws -> CameraStatusPage {
        let now = clock()
        let currentBucket = Bucket.index(ofTimestamp: now)
        let dayStart = Bucket.index(ofTimestamp: now - now.floorDivMod(86_400_000).1)
        let hourStart = Bucket.index(ofTimestamp: now - 3_600_000) + 1
        let lowest = min(dayStart, hourStart)
        let wanted = request.health
        let page = view.cameraPage(request, countsFrom: lowest, current: currentBucket) { camera in
            wanted.map { health(camera, nowMs: now) == $0 } ?? true
        }
        let ids = page.rows.map { $0.camera.record.id }
        let storedCounts = try await store.countsByCamera(ids, buckets: lowest..<(currentBucket + 1))
        let storedCurrent = try await store.statesByCamera(ids, buckets: currentBucket..<(currentBucket + 1))
        let sequences = try view.sequences(ids)
        let cameras = page.rows.map { row in
            status(
                row, nowMs: now, currentBucket: currentBucket, dayStart: dayStart, hourStart: hourStart,
                storedCounts: storedCounts, storedCurrent: storedCurrent, sequences: sequences)
        }
        return CameraStatusPage(
            cameras: cameras, next: page.next, matched: wanted == nil ? page.matched : nil, total: page.total)
    }

    func status(
        _ row: CameraRow, nowMs now: Int64, currentBucket: Int64, dayStart: Int64, hourStart: Int64,
        storedCounts: [Int64: [Int64: Int64]], storedCurrent: [Int64: [Int64: BucketState]],
        sequences: [Int64: CameraSequence]
    ) -> CameraStatus {
        let live = row.camera
        let id = live.record.id
        var today: Int64 = 0, lastHour: Int64 = 0
        var counts = storedCounts[id] ?? [:]
        for (b, n) in row.hotCounts { counts[b] = n }
        for (b, n) in counts {
            if b >= dayStart { today += n }
            if b >= hourStart { lastHour += n }
        }
        return CameraStatus(
            kvfvId: live.record.kvfvId, health: health(live, nowMs: now),
            lastEventMs: live.record.lastEventMs, lastArrivalMs: live.record.lastArrivalMs, lagMs: live.lagMs,
            eventsLastHour: lastHour, eventsToday: today,
            currentWindowStartMs: Bucket.start(ofIndex: currentBucket),
            current: row.hotCurrent ?? storedCurrent[id]?[currentBucket] ?? BucketState(),
            accepted: live.accepted, duplicates: live.duplicates, rejected: live.rejected,
            conflictingDuplicates: live.conflictingDuplicates, sequence: sequences[id])
    }

    func health(_ c: BucketTable.Camera, nowMs: Int64) -> CameraStatus.Health {
        if let arrival = c.record.lastArrivalMs, nowMs - arrival > configuration.silentAfterMs { return .silent }
        if c.record.lastArrivalMs == nil { return .silent }
        if let f = c.lastInFutureMs, nowMs - f < 3_600_000 { return .clockSkew }
        if c.looksStuck { return .stuck }
        if c.lagMs > configuration.laggingAfterMs { return .lagging }
        return .live
    }
}

extension Aggregator: CameraView {
    public func hotStates(kvfvId: String, buckets range: Range<Int64>) -> (camera: Int64, states: [Int64: BucketState])? {
        table.withLock { $0.hotStates(kvfvId: kvfvId, buckets: range) }
    }

    public func cameraRows(countsFrom lowest: Int64, current: Int64) -> [CameraRow] {
        table.withLock { $0.cameraRows(countsFrom: lowest, current: current) }
    }

    public func cameraPage(
        _ request: CameraPageRequest, countsFrom lowest: Int64, current: Int64, matches: (BucketTable.Camera) -> Bool
    ) -> CameraRowPage {
        table.withLock { $0.cameraPage(request, countsFrom: lowest, current: current, matches: matches) }
    }

    public func sequences(_ cameras: [Int64]) throws -> [Int64: CameraSequence] {
        table.withLock { t in
            var found: [Int64: CameraSequence] = [:]
            for id in cameras {
                if let s = t.cameras[id]?.sequence, !s.ledger.isEmpty || s.report != nil { found[id] = s }
            }
            return found
        }
    }
}
