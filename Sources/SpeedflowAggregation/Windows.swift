import Foundation
import SpeedflowModel

/// The storage grain: every event lands in the 5-minute bucket of its event time (UTC).
public enum Bucket {
    public static let durationMs: Int64 = 300_000

    /// Bucket number: 5-minute periods since the epoch.
    @inline(__always)
    public static func index(ofTimestamp ms: Int64) -> Int64 { ms.floorDiv(durationMs) }

    @inline(__always)
    public static func start(ofIndex index: Int64) -> Int64 { index * durationMs }
}

/// A query's window size. `1d` is accepted as an alias of `24h`.
public enum WindowInterval: String, Sendable, CaseIterable {
    case fiveMinutes = "5m"
    case oneHour = "1h"
    case oneDay = "24h"

    public init?(parameter: String) {
        switch parameter {
        case "5m": self = .fiveMinutes
        case "1h", "60m": self = .oneHour
        case "24h", "1d": self = .oneDay
        default: return nil
        }
    }

    public var durationMs: Int64 {
        switch self {
        case .fiveMinutes: 300_000
        case .oneHour: 3_600_000
        case .oneDay: 86_400_000
        }
    }
}

/// A half-open time range `[startMs, endMs)` whose content is the buckets starting inside it.
public struct Window: Sendable, Hashable {
    public var startMs: Int64
    public var endMs: Int64

    public init(startMs: Int64, endMs: Int64) {
        self.startMs = startMs
        self.endMs = endMs
    }

    /// The bucket numbers this window sums: those whose start lies in `[startMs, endMs)`.
    public var buckets: Range<Int64> {
        let first = (startMs + Bucket.durationMs - 1).floorDiv(Bucket.durationMs)
        let end = (endMs + Bucket.durationMs - 1).floorDiv(Bucket.durationMs)
        return first..<Swift.max(first, end)
    }
}

/// Splits a query range into aligned windows.
public enum WindowPlanner {
    public static let maxWindows = 10_000

    public enum PlanError: Error, Sendable, Hashable {
        case emptyRange
        case tooManyWindows(Int)
    }

    /// Every window that intersects `[fromMs, toMs)`, aligned to UTC multiples of the interval; for `24h` with a
    /// time zone, aligned to local midnights (23 or 25 hours long across DST changes).
    public static func windows(
        fromMs: Int64, toMs: Int64, interval: WindowInterval, timeZone: TimeZone? = nil
    ) throws(PlanError) -> [Window] {
        guard fromMs < toMs else { throw .emptyRange }
        let d = interval.durationMs
        if interval == .oneDay, let tz = timeZone {
            return try localDays(fromMs: fromMs, toMs: toMs, timeZone: tz)
        }
        let first = fromMs.floorDiv(d)
        let last = (toMs + d - 1).floorDiv(d)
        let n = last - first
        guard n <= Int64(maxWindows) else { throw .tooManyWindows(Int(clamping: n)) }
        return (first..<last).map { Window(startMs: $0 * d, endMs: ($0 + 1) * d) }
    }

    static func localDays(fromMs: Int64, toMs: Int64, timeZone: TimeZone) throws(PlanError) -> [Window] {
        let estimate = (toMs - fromMs) / 86_400_000 + 2
        // The estimate only guards against runaway loops; the exact count decides below.
        guard estimate <= Int64(maxWindows) + 2 else { throw .tooManyWindows(Int(clamping: estimate)) }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        var start = calendar.startOfDay(for: Date(timeIntervalSince1970: Double(fromMs) / 1000))
        var result: [Window] = []
        while ms(start) < toMs {
            // Noon of the next day, then its midnight: robust where a DST jump lands on midnight itself.
            let noon = start.addingTimeInterval(36 * 3600)
            let next = calendar.startOfDay(for: noon)
            result.append(Window(startMs: ms(start), endMs: ms(next)))
            start = next
            guard result.count <= maxWindows else { throw .tooManyWindows(result.count) }
        }
        return result
    }
}
