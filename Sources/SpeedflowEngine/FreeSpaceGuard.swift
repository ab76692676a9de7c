import Foundation
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Refuses ingest (`503 insufficient_storage`) while the data directory's file system has less free space than
/// a threshold, so the disk never fills up under the log and the store: queries keep working, everything already
/// acknowledged stays intact, and ingest resumes by itself once space returns.
///
/// Why a threshold and not the disk's own `ENOSPC`: a full disk fails the log's append after the client waited
/// (the request is refused, nothing is lost, but every request pays a failing write and fsync), and it fails the
/// SQLite store's commits and checkpoints too, so the store falls behind the log and the WAL cannot shrink. Below
/// the threshold there is still room for the store to commit what was accepted, for `backup`, `rebuild` and a
/// format upgrade to write their copies, and for the operator to act.
///
/// Cheap: `statvfs` runs at most once per `intervalMs` (by whichever request comes first after it), never per
/// event; between checks a request reads one atomic flag.
public final class FreeSpaceGuard: Sendable {
    /// The free space to keep: the larger of `bytes` and `percent` of the file system's size.
    public struct Threshold: Sendable, Equatable, CustomStringConvertible {
        public var bytes: Int64
        public var percent: Double

        public init(bytes: Int64, percent: Double) {
            self.bytes = bytes
            self.percent = percent
        }

        /// Default: the larger of 1 GiB and 2% of the file system. 1 GiB leaves the store room to commit and
        /// checkpoint what was already accepted and a `backup` or `rebuild` room for their temporary files on a
        /// small disk; 2% stays below `SpeedflowDiskCritical` (3%) on a big one, so the alert fires first.
        public static let `default` = Threshold(bytes: 1 << 30, percent: 2)
        /// No guard.
        public static let off = Threshold(bytes: 0, percent: 0)

        public var isOff: Bool { bytes <= 0 && percent <= 0 }

        /// Bytes to keep free on a file system of `size` bytes.
        public func required(ofSize size: Int64) -> Int64 { max(bytes, Int64((Double(size) * percent / 100).rounded(.up))) }

        /// `1GiB`, `2%`, `1GiB,2%` (the larger of both), `0` (off).
        public static func parse(_ text: String) -> Threshold? {
            var t = Threshold(bytes: 0, percent: 0)
            for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if part.hasSuffix("%") {
                    guard let p = Double(part.dropLast()), p >= 0, p < 100 else { return nil }
                    t.percent = p
                    continue
                }
                let units: [(String, Int64)] = [
                    ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40), ("KB", 1000), ("MB", 1_000_000),
                    ("GB", 1_000_000_000), ("B", 1),
                ]
                if let (suffix, scale) = units.first(where: { part.hasSuffix($0.0) }) {
                    guard let v = Int64(part.dropLast(suffix.count)), v >= 0 else { return nil }
                    t.bytes = v * scale
                } else {
                    guard let v = Int64(part), v >= 0 else { return nil }
                    t.bytes = v
                }
            }
            return text.isEmpty ? nil : t
        }

        public var description: String {
            if isOff { return "0" }
            var parts: [String] = []
            if bytes > 0 {
                parts.append(
                    bytes % (1 << 30) == 0 ? "\(bytes >> 30)GiB" : bytes % (1 << 20) == 0 ? "\(bytes >> 20)MiB" : "\(bytes)")
            }
            if percent > 0 { parts.append((percent == percent.rounded() ? String(Int(percent)) : String(percent)) + "%") }
            return parts.joined(separator: ",")
        }
    }

    public struct Configuration: Sendable {
        /// A path on the file system to watch (the data directory).
        public var path: String
        public var threshold: Threshold
        /// How often free space is measured, at most. Default: 1 s.
        public var intervalMs: Int64

        public init(path: String, threshold: Threshold = .default, intervalMs: Int64 = 1000) {
            self.path = path
            self.threshold = threshold
            self.intervalMs = intervalMs
        }
    }

    struct Reading {
        var atNs: UInt64 = 0
        var avail: Int64 = .max
        var required: Int64 = 0
        var refusing = false
    }

    public let configuration: Configuration
    private let refusing = Atomic<Bool>(false)
    private let nextCheckNs = Atomic<UInt64>(0)
    private let reading = Mutex(Reading())
    private let refusedRequests = Counter(label: "speedflow_ingest_refused_total", dimensions: [("reason", "insufficient_storage")])
    private let refusingGauge = Gauge(label: "speedflow_free_space_guard_refusing")
    private let onChange: @Sendable (_ refusing: Bool, _ avail: Int64, _ required: Int64) -> Void

    /// - Parameter onChange: told when ingest starts or stops being refused (for a log line).
    public init(
        _ configuration: Configuration,
        onChange: @escaping @Sendable (_ refusing: Bool, _ avail: Int64, _ required: Int64) -> Void = { _, _, _ in }
    ) {
        self.configuration = configuration
        self.onChange = onChange
        refusingGauge.record(0)
        refresh(now: DispatchTime.now().uptimeNanoseconds)
    }

    /// Throws `insufficient_storage` while free space is below the threshold (measured at most once per interval).
    public func check() throws(IngestError) {
        let now = DispatchTime.now().uptimeNanoseconds
        if now >= nextCheckNs.load(ordering: .relaxed) { refresh(now: now) }
        if refusing.load(ordering: .relaxed) {
            refusedRequests.increment()
            let r = reading.withLock { $0 }
            throw IngestError(
                .insufficientStorage,
                "the data directory's file system has \(r.avail) bytes free, less than the \(r.required) kept free "
                    + "(--min-free-space \(configuration.threshold)); nothing was stored: resend later")
        }
    }

    /// Whether ingest is refused now (as of the last measurement).
    public var isRefusing: Bool { refusing.load(ordering: .relaxed) }

    private func refresh(now: UInt64) {
        let (changed, r) = reading.withLock { r -> (Bool, Reading) in
            // Another request measured meanwhile.
            guard now >= nextCheckNs.load(ordering: .relaxed) else { return (false, r) }
            nextCheckNs.store(now + UInt64(max(1, configuration.intervalMs)) * 1_000_000, ordering: .relaxed)
            var s = statvfs()
            guard statvfs(configuration.path, &s) == 0 else { return (false, r) }  // keep the last answer
            let avail = Int64(s.f_bavail) * Int64(s.f_frsize)
            let size = Int64(s.f_blocks) * Int64(s.f_frsize)
            let required = configuration.threshold.required(ofSize: size)
            let refuse = !configuration.threshold.isOff && avail < required
            let changed = refuse != r.refusing
            r = Reading(atNs: now, avail: avail, required: required, refusing: refuse)
            refusing.store(refuse, ordering: .relaxed)
            return (changed, r)
        }
        if changed {
            refusingGauge.record(r.refusing ? 1 : 0)
            onChange(r.refusing, r.avail, r.required)
        }
    }
}
