import Foundation
import Metrics
import Synchronization

/// Per-credential rate limits and a limit on failed authentications per client address, as token buckets.
///
/// A bucket holds up to `rate × burstSeconds` tokens and refills at `rate` per second. A request is let through
/// while its bucket is not empty and then takes what it costs, even into debt, so one batch larger than the
/// bucket (a camera flushing its backlog) still passes and the next request waits until the debt is repaid;
/// otherwise it is refused with the seconds until it would pass (`429` + `Retry-After`), and nothing of it is
/// stored. Limits live per credential id (so a camera's limit follows it across connections and, per node,
/// across requests); a node keeps at most `maxTracked` buckets, dropping full (idle) ones first.
public final class Quotas: Sendable {
    public struct Limits: Sendable, Hashable {
        /// Requests per second per credential. Default 50 (a camera sends one batch a second or so).
        public var requestsPerSecond: Double
        /// Events per second per credential. Default 20,000: a camera at 1 M passes a day (≈12/s) catches up a
        /// 6-hour backlog (≈250,000 events) in about 13 s.
        public var eventsPerSecond: Double
        /// Failed authentications per second per client address, and the burst (×`burstSeconds`) before `429`.
        public var failedAuthPerSecond: Double
        /// How many seconds of rate a bucket holds (the burst).
        public var burstSeconds: Double

        public init(requestsPerSecond: Double = 50, eventsPerSecond: Double = 20_000, failedAuthPerSecond: Double = 1, burstSeconds: Double = 10) {
            self.requestsPerSecond = requestsPerSecond
            self.eventsPerSecond = eventsPerSecond
            self.failedAuthPerSecond = failedAuthPerSecond
            self.burstSeconds = burstSeconds
        }
    }

    struct Bucket {
        var tokens: Double
        var updated: Double
    }

    public let limits: Limits
    let maxTracked: Int
    private let buckets = Mutex<[String: Bucket]>([:])
    private let clock: @Sendable () -> Double

    public init(limits: Limits = Limits(), maxTracked: Int = 100_000, clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limits = limits
        self.maxTracked = maxTracked
        self.clock = clock
    }

    public enum Kind: String, Sendable {
        case requests, events, failedAuth = "failed_auth"
    }

    /// Takes `cost` from `key`'s bucket of `kind` at `rate` per second: `nil` if let through, else the whole
    /// seconds to wait.
    public func take(_ kind: Kind, key: String, cost: Double = 1, rate: Double) -> Int? {
        guard rate > 0, rate.isFinite else { return nil }
        let capacity = rate * limits.burstSeconds
        let now = clock()
        let wait = buckets.withLock { buckets -> Int? in
            let id = kind.rawValue + "\u{0}" + key
            var b = buckets[id] ?? Bucket(tokens: capacity, updated: now)
            b.tokens = min(capacity, b.tokens + max(0, now - b.updated) * rate)
            b.updated = now
            guard b.tokens > 0 else {
                buckets[id] = b
                return Int((-b.tokens / rate).rounded(.down)) + 1  // the bucket is positive again only after that
            }
            b.tokens -= cost
            if buckets[id] == nil && buckets.count >= maxTracked { Self.evict(&buckets, now: now, rate: rate, capacity: capacity) }
            buckets[id] = b
            return nil
        }
        if wait != nil { Counter(label: "speedflow_http_throttled_total", dimensions: [("limit", kind.rawValue)]).increment() }
        return wait
    }

    /// Whether `key` may try (failed authentications so far leave its bucket non-empty), without taking.
    public func allows(_ kind: Kind, key: String, rate: Double) -> Int? {
        guard rate > 0 else { return nil }
        let capacity = rate * limits.burstSeconds
        let now = clock()
        return buckets.withLock { buckets -> Int? in
            guard let b = buckets[kind.rawValue + "\u{0}" + key] else { return nil }
            let tokens = min(capacity, b.tokens + max(0, now - b.updated) * rate)
            return tokens >= 1 ? nil : max(1, Int(((1 - tokens) / rate).rounded(.up)))
        }
    }

    /// Drops the buckets that have refilled (idle callers), or if none, an arbitrary half.
    static func evict(_ buckets: inout [String: Bucket], now: Double, rate: Double, capacity: Double) {
        let before = buckets.count
        buckets = buckets.filter { $0.value.tokens + (now - $0.value.updated) * rate < capacity }
        if buckets.count > before / 2 {
            for key in buckets.keys.prefix(buckets.count / 2) { buckets[key] = nil }
        }
    }
}
