import Foundation
import SpeedflowAggregation
import SpeedflowModel
import SpeedflowRegistry

/// A camera's health on one local day, in the spirit of PeMS detector diagnostics: a status, every reason that
/// applies, and the figures behind them, all recomputed from durable state (bucket states, the sequence ledger,
/// the per-camera rejection counts), so the history is the same after a restart and on every API node.
public struct DayHealth: Sendable {
    /// Why a day is not `ok`, most severe first (`status` is the first that applies).
    public enum Reason: String, Sendable, CaseIterable, Comparable {
        /// No pass counted that day.
        case down
        /// Passes, but (nearly) all at one speed: a frozen sensor.
        case stuck
        /// Many events stamped ahead of the server clock (`in_future` rejections).
        case clockSkew = "clock_skew"
        /// A large share of what the camera sent was rejected.
        case highRejection = "high_rejection"
        /// Fewer passes than a share of the registered expected daily volume.
        case insufficient
        /// Many of the camera's numbered passes of that day are known missing (gaps or backlog).
        case backlog
        /// Many passes in no registered lane.
        case unknownLane = "unknown_lane"

        public static func < (a: Reason, b: Reason) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// The thresholds, documented in the README ("Daily health").
    public struct Rules: Sendable {
        /// `insufficient` below this share of the expected volume (of the elapsed part of a partial day).
        public var insufficientShare = 0.5
        /// `stuck`: at least this many passes, all within 1 km/h.
        public var stuckMinimumCount: Int64 = 20
        /// `clock_skew`: at least this many `in_future` rejections and this share of what was sent.
        public var clockSkewMinimum: Int64 = 5
        public var clockSkewShare = 0.01
        /// `high_rejection`: at least this many rejections and this share of what was sent.
        public var rejectionMinimum: Int64 = 5
        public var rejectionShare = 0.05
        /// `backlog`: more known-missing passes than this, and than this share of the counted ones.
        public var backlogMinimum: Int64 = 10
        public var backlogShare = 0.01
        /// `unknown_lane`: more than this share of passes outside the registered lanes.
        public var unknownLaneShare = 0.05
        /// A partial day is judged `down` only after this much of it has passed.
        public var downAfterMs: Int64 = 3_600_000

        public init() {}
    }

    public var window: Window
    /// The local date, `YYYY-MM-DD`.
    public var date: String
    /// The day had not ended at the time of the assessment (figures so far; expectations scaled to the elapsed part).
    public var partial: Bool
    public var reasons: [Reason]
    public var status: String { reasons.first?.rawValue ?? "ok" }
    public var state: BucketState
    public var expected: Int64?
    /// `count / expected` (of the elapsed part for a partial day).
    public var volumeShare: Double?
    public var rejectedByReason: [RejectionReason: Int64]
    public var rejected: Int64 { rejectedByReason.values.reduce(0, +) }
    /// `rejected / (count + rejected)`.
    public var rejectionShare: Double? {
        let sent = state.count + rejected
        return sent > 0 ? Double(rejected) / Double(sent) : nil
    }
    /// Known-missing numbered passes of the day (`nil`: the camera does not number its passes).
    public var missing: Int64?
    /// Passes outside the registered lanes (no lane, lane 0, or above the registered count).
    public var unknownLaneCount: Int64

    /// Assesses one day from its figures. `elapsedMs`: how much of the day had passed; `unknownLaneCount`: the
    /// passes outside the registered lanes (`nil`: the camera has no registered lane count).
    public static func assess(
        window: Window, date: String, state: BucketState, rejections: [RejectionReason: Int64], missing: Int64?,
        expectedDaily: Int?, unknownLaneCount: Int64?, elapsedMs: Int64, rules: Rules = Rules()
    ) -> DayHealth {
        let length = max(1, window.endMs - window.startMs)
        let partial = elapsedMs < length
        let elapsed = Double(max(0, min(elapsedMs, length))) / Double(length)
        let unknown = unknownLaneCount ?? 0
        let rejected = rejections.values.reduce(0, +)
        let sent = state.count + rejected
        let inFuture = rejections[.inFuture] ?? 0
        let expected = expectedDaily.map { Int64((Double($0) * Double(length) / 86_400_000).rounded()) }
        let expectedSoFar = expected.map { Double($0) * elapsed }
        var reasons: [Reason] = []
        if state.count == 0 && (!partial || elapsedMs >= rules.downAfterMs) { reasons.append(.down) }
        if state.count >= rules.stuckMinimumCount, let lo = state.minSpeed, let hi = state.maxSpeed, hi - lo < 1 {
            reasons.append(.stuck)
        }
        if inFuture >= rules.clockSkewMinimum && Double(inFuture) >= rules.clockSkewShare * Double(sent) {
            reasons.append(.clockSkew)
        }
        if rejected >= rules.rejectionMinimum && Double(rejected) >= rules.rejectionShare * Double(sent) {
            reasons.append(.highRejection)
        }
        if let e = expectedSoFar, state.count > 0, Double(state.count) < rules.insufficientShare * e {
            reasons.append(.insufficient)
        }
        if let m = missing, m > rules.backlogMinimum, Double(m) > rules.backlogShare * Double(state.count) {
            reasons.append(.backlog)
        }
        if unknownLaneCount != nil, state.count > 0, Double(unknown) > rules.unknownLaneShare * Double(state.count) {
            reasons.append(.unknownLane)
        }
        return DayHealth(
            window: window, date: date, partial: partial, reasons: reasons.sorted(), state: state, expected: expected,
            volumeShare: expectedSoFar.flatMap { $0 > 0 ? Double(state.count) / $0 : nil }, rejectedByReason: rejections,
            missing: missing, unknownLaneCount: unknown)
    }
}

/// Local calendar days and months, as the health history and the reports name them.
public enum LocalCalendar {
    /// `YYYY-MM-DD` → local midnight (ms) in `zone`; `nil` if not a valid date.
    public static func startOfDay(_ text: String, in zone: TimeZone) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 10, parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            parts[0].count == 4, parts[1].count == 2, parts[2].count == 2
        else { return nil }
        return start(year: y, month: m, day: d, in: zone)
    }

    /// `YYYY-MM` → local midnight of its first day and of the next month's.
    public static func month(_ text: String, in zone: TimeZone) -> Window? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 7, parts.count == 2, let y = Int(parts[0]), let m = Int(parts[1]), parts[0].count == 4,
            let first = start(year: y, month: m, day: 1, in: zone),
            let next = start(year: m == 12 ? y + 1 : y, month: m == 12 ? 1 : m + 1, day: 1, in: zone)
        else { return nil }
        return Window(startMs: first, endMs: next)
    }

    static func start(year: Int, month: Int, day: Int, in zone: TimeZone) -> Int64? {
        guard (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let components = DateComponents(year: year, month: month, day: day)
        guard let date = calendar.date(from: components),
            calendar.component(.day, from: date) == day, calendar.component(.month, from: date) == month
        else { return nil }
        return Int64((calendar.startOfDay(for: date).timeIntervalSince1970 * 1000).rounded())
    }

    /// The local date of a moment, `YYYY-MM-DD`.
    public static func date(_ ms: Int64, in zone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(ms) / 1000))
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }
}

extension CameraQueries {
    /// Each local day of `[fromMs, toMs)` (local midnights in `zone`) of one camera, assessed; days that start after
    /// now are left out. `nil` for a camera never seen.
    public func health(
        kvfvId: String, fromMs: Int64, toMs: Int64, zone: TimeZone, info: CameraInfo?, rules: DayHealth.Rules = DayHealth.Rules()
    ) async throws -> [DayHealth]? {
        let now = clock()
        let days = try healthDays(fromMs: fromMs, toMs: toMs, zone: zone, now: now)
        guard !days.isEmpty else { return view.hotStates(kvfvId: kvfvId, buckets: 0..<0).map { _ in [] } }
        guard let found = try await cameraBuckets(kvfvId: kvfvId, windows: days, lanes: info?.lanes != nil) else { return nil }
        return try await assess(found, days: days, zone: zone, info: info, rules: rules, now: now)
    }

    /// A period's figures for `groups` (as `windowReports`) and the health of its local days (as `health`), from
    /// one read of the camera's buckets: a report row needs both. `nil` for a camera never seen.
    public func periodReport(
        kvfvId: String, period: Window, groups: [LaneGroup], limitAt: ((Int64) -> Int?)?, zone: TimeZone, info: CameraInfo?,
        rules: DayHealth.Rules = DayHealth.Rules()
    ) async throws -> (groups: [WindowReport], days: [DayHealth])? {
        let lanes = groups.contains { $0 != .camera } || info?.lanes != nil
        guard let found = try await cameraBuckets(kvfvId: kvfvId, windows: [period], lanes: lanes) else { return nil }
        let completeness = try view.sequences([found.camera])[found.camera]?.completeness(of: [(period.startMs, period.endMs)])
        let reports = groups.map { group in
            let figures = WindowFigures.fold(found.buckets, into: [period], group: group, limitAt: limitAt)[0]
            return WindowReport(window: period, state: figures.state, completeness: completeness?[0], compliance: figures.compliance)
        }
        let now = clock()
        let days = try healthDays(fromMs: period.startMs, toMs: period.endMs, zone: zone, now: now)
        return (reports, try await assess(found, days: days, zone: zone, info: info, rules: rules, now: now))
    }

    /// The local days of `[fromMs, toMs)` that have begun.
    private func healthDays(fromMs: Int64, toMs: Int64, zone: TimeZone, now: Int64) throws -> [Window] {
        let end = min(toMs, now + 1)
        // A range wholly in the future has no day to assess yet.
        return end > fromMs ? try WindowPlanner.windows(fromMs: fromMs, toMs: end, interval: .oneDay, timeZone: zone) : []
    }

    /// `days` assessed from the camera's buckets under them (lanes decoded when it registers lanes).
    private func assess(
        _ found: (camera: Int64, buckets: [(bucket: Int64, state: BucketState)]), days: [Window], zone: TimeZone, info: CameraInfo?,
        rules: DayHealth.Rules, now: Int64
    ) async throws -> [DayHealth] {
        guard let first = days.first, let last = days.last else { return [] }
        let registeredLanes = info?.lanes
        let figures = WindowFigures.fold(found.buckets, into: days)
        let unknownLane = registeredLanes.map {
            WindowFigures.fold(found.buckets, into: days, group: .unknown(registeredLanes: $0)).map(\.state.count)
        }
        let completeness = try view.sequences([found.camera])[found.camera]?.completeness(of: days.map { ($0.startMs, $0.endMs) })
        let rejections = try await self.rejections(camera: found.camera, buckets: first.buckets.lowerBound..<last.buckets.upperBound)
        return days.enumerated().map { i, day in
            var tally: [RejectionReason: Int64] = [:]
            for (bucket, reasons) in rejections where day.buckets.contains(bucket) {
                for (reason, n) in reasons { tally[reason, default: 0] += n }
            }
            return DayHealth.assess(
                window: day, date: LocalCalendar.date(day.startMs, in: zone), state: figures[i].state, rejections: tally,
                missing: completeness?[i].missing, expectedDaily: info?.expectedDailyVolume,
                unknownLaneCount: unknownLane?[i], elapsedMs: now - day.startMs, rules: rules)
        }
    }
}
