import Metrics
import SpeedflowModel
import Synchronization

/// Counters behind `/stats`, the dashboard's ingest panel and the Prometheus metrics.
///
/// Every number is also a swift-metrics instrument; this type keeps the few figures the dashboard needs
/// (per-second rates and the lateness distribution) that Prometheus can only give as raw counters.
public final class IngestStats: Sendable {
    /// Upper bounds (seconds) of the lateness histogram buckets; one more bucket holds the rest.
    public static let latenessBounds: [Double] = [1, 10, 60, 600, 3600, 21_600, 86_400]

    struct State {
        var accepted: Int64 = 0
        var duplicates: Int64 = 0
        var rejected: [RejectionReason: Int64] = [:]
        var lateness = [Int64](repeating: 0, count: IngestStats.latenessBounds.count + 1)
        /// Per-second counts over the last `window` seconds: (second, accepted, duplicates, rejected).
        var seconds: [(second: Int64, accepted: Int64, duplicates: Int64, rejected: Int64)] = []
    }

    static let window: Int64 = 10
    private let state = Mutex(State())
    public let startedMs: Int64

    private let acceptedCounter = Counter(label: "speedflow_events_accepted_total")
    private let duplicateCounter = Counter(label: "speedflow_events_duplicate_total")
    private let latenessRecorder = Recorder(label: "speedflow_event_lateness_seconds", aggregate: true)
    private let rejectedCounters: [RejectionReason: Counter] = Dictionary(
        uniqueKeysWithValues: RejectionReason.allCases.map {
            ($0, Counter(label: "speedflow_events_rejected_total", dimensions: [("reason", $0.rawValue)]))
        })

    public init(nowMs: Int64) { startedMs = nowMs }

    func record(outcome: IngestOutcome, latenessMs: [Int64], nowMs: Int64) {
        acceptedCounter.increment(by: outcome.accepted)
        duplicateCounter.increment(by: outcome.duplicates)
        for l in latenessMs { latenessRecorder.record(Double(l) / 1000) }
        state.withLock { s in
            s.accepted += Int64(outcome.accepted)
            s.duplicates += Int64(outcome.duplicates)
            for l in latenessMs {
                let seconds = Double(l) / 1000
                let i = Self.latenessBounds.firstIndex { seconds <= $0 } ?? Self.latenessBounds.count
                s.lateness[i] += 1
            }
            Self.bump(&s, nowMs: nowMs) { $0.accepted += Int64(outcome.accepted); $0.duplicates += Int64(outcome.duplicates) }
        }
    }

    public func record(rejections: [Rejection], nowMs: Int64) {
        guard !rejections.isEmpty else { return }
        for r in rejections { rejectedCounters[r.reason]?.increment() }
        state.withLock { s in
            for r in rejections { s.rejected[r.reason, default: 0] += 1 }
            Self.bump(&s, nowMs: nowMs) { $0.rejected += Int64(rejections.count) }
        }
    }

    private static func bump(
        _ s: inout State, nowMs: Int64,
        _ change: (inout (second: Int64, accepted: Int64, duplicates: Int64, rejected: Int64)) -> Void
    ) {
        let second = nowMs / 1000
        if s.seconds.last?.second != second {
            s.seconds.append((second, 0, 0, 0))
            s.seconds.removeAll { $0.second <= second - window }
        }
        change(&s.seconds[s.seconds.count - 1])
    }

    /// A point-in-time copy for `/stats`.
    public struct Snapshot: Sendable {
        public var accepted: Int64
        public var duplicates: Int64
        public var rejected: [RejectionReason: Int64]
        public var lateness: [Int64]
        public var acceptedPerSecond: Double
        public var duplicatesPerSecond: Double
        public var rejectedPerSecond: Double
    }

    public func snapshot(nowMs: Int64) -> Snapshot {
        state.withLock { s in
            // Rates over the last complete seconds of the window.
            let current = nowMs / 1000
            let recent = s.seconds.filter { $0.second < current && $0.second >= current - Self.window }
            let span = Double(Self.window)
            return Snapshot(
                accepted: s.accepted, duplicates: s.duplicates, rejected: s.rejected, lateness: s.lateness,
                acceptedPerSecond: Double(recent.reduce(0) { $0 + $1.accepted }) / span,
                duplicatesPerSecond: Double(recent.reduce(0) { $0 + $1.duplicates }) / span,
                rejectedPerSecond: Double(recent.reduce(0) { $0 + $1.rejected }) / span)
        }
    }
}
