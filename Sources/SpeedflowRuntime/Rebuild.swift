import Foundation
import Logging
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore

/// Why a rebuild would lose data, and how to proceed anyway.
public struct RebuildError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// `speedflow rebuild`: recomputes the store of the data directory from its log under `policy` (after lowering
/// the speed limits, or to repair a damaged store). A damaged store is moved aside, never deleted; the days
/// before the log's start that still verify are carried over. Run with the server stopped (the directory is
/// locked while serving).
public enum Rebuild {
    /// Returns once the store is rebuilt; `note` gets every line of the account (what was found, what was
    /// kept, progress). Throws `RebuildError` where going on would drop data, unless `discardUnrecoverable`.
    /// - Parameter excludingWriters: credential ids whose log records are left out (a compromised token's
    ///   writes): exact afterwards for every bucket the retained log covers.
    public static func run(
        dataDir: String, policy: ValidationPolicy, lateGraceMs: Int64 = EngineConfiguration().lateGraceMs, discardUnrecoverable: Bool, excludingWriters: Set<String> = [], logger: Logger,
        note: @escaping (String) -> Void
    ) throws {
        let storePath = DataDirectory.storeFile(dataDir)

        // A store SQLite cannot even open is moved aside before opening a new one.
        var damaged: String?
        let log: SegmentLog, store: SQLiteStore
        do {
            (log, store) = try DataDirectory.open(dataDir, logger: logger)
        } catch let error as StoreError where error.code == .corrupt {
            note(error.message)
            damaged = try SQLiteStore.moveAside(storePath)
            (log, store) = try DataDirectory.open(dataDir, logger: logger)
        }

        // Records set aside by `log quarantine` cannot be recomputed: a rebuild would drop their events from the store.
        let setAside = log.quarantined.filter { $0.range.upperBound > log.startOffset.value }
        if !setAside.isEmpty {
            note("the log has \(setAside.count) quarantined range(s): \(setAside.map(\.description).joined(separator: "; "))")
            guard discardUnrecoverable else {
                throw RebuildError(
                    "events in quarantined log records cannot be recomputed, so a rebuild would drop them from the store. Restore the log from a backup, or pass --discard-unrecoverable to rebuild without them.")
            }
        }

        // If retention removed segments, the log covers event times from (oldest retained arrival − skew) on.
        let start = log.startOffset
        var firstBucket = Int64.min
        if start.value > 0 {
            var firstArrival: Int64?
            try? log.read(from: start) { payload, _ in
                if firstArrival == nil { firstArrival = (try? EventRecord.decode(payload))?.arrivalMs }
                throw CancellationError()
            }
            if let firstArrival {
                firstBucket = Bucket.index(ofTimestamp: firstArrival + policy.maxClockSkewMs + Bucket.durationMs - 1)
            }
        }

        if damaged == nil {
            let began = Date()
            var problems: [String]
            do {
                problems = try store.checkIntegrity(summaries: true)
            } catch let error as StoreError {
                problems = [error.message]
            }
            note("integrity check of the store: \(problems.isEmpty ? "sound" : "\(problems.count)+ problems") (\(String(format: "%.1f", Date().timeIntervalSince(began))) s)")
            if !problems.isEmpty {
                for p in problems { note("  \(p)") }
                damaged = try store.quarantine(reason: problems.prefix(3).joined(separator: "; "))
            }
        }
        if let damaged {
            note("the damaged store is kept at \(damaged)")
            if firstBucket != .min {
                // Days are the unit of verification: carry over whole days before the log's first full day.
                let perDay = 86_400_000 / Bucket.durationMs
                firstBucket = (firstBucket + perDay - 1).floorDiv(perDay) * perDay
                let report = try store.salvage(from: damaged, before: firstBucket)
                note(report.description)
                if report.days == 0 && report.damagedDays.isEmpty && !report.unreadable.isEmpty && !discardUnrecoverable {
                    throw RebuildError("""
                        nothing before \(Timestamp.format(Bucket.start(ofIndex: firstBucket))) could be read from the damaged store, \
                        and the log no longer covers it: restore store.sqlite from a backup, or rerun with \
                        --discard-unrecoverable to rebuild without those days (they will read as empty)
                        """)
                }
            }
        }

        // Reset first, then build the engine: it loads its state from the reset store.
        try store.reset(fromBucket: firstBucket, logOffset: start.value)
        var configuration = EngineConfiguration(policy: policy)
        configuration.lateGraceMs = lateGraceMs
        let engine = try Engine(log: log, store: store, configuration: configuration, logger: logger)
        let cutoff = firstBucket == .min ? Int64.min : Bucket.start(ofIndex: firstBucket)
        let maxSpeed = policy.maxSpeed
        let minSpeed = policy.minSpeed
        let began = Date()
        let excluded = try engine.recover(
            filter: { $0.timestampMs >= cutoff && $0.speed >= minSpeed && $0.speed <= maxSpeed }, excludingWriters: excludingWriters,
            rejectionsFrom: firstBucket,
            progress: { done, total, events in
                let pct = total == 0 ? 100 : Double(done) * 100 / Double(total)
                let rate = Double(events) / max(Date().timeIntervalSince(began), 0.001)
                note("\(String(format: "%.1f", pct))% of \(total) log bytes, \(events) events (\(Int(rate))/s)")
            })
        if !excludingWriters.isEmpty {
            note("left out \(excluded) events written by \(excludingWriters.sorted().joined(separator: ", ")) (their identities are free again: the cameras' own copies, if in the log, now count)")
            if firstBucket != .min {
                note("buckets before \(Timestamp.format(Bucket.start(ofIndex: firstBucket))) (older than the retained log) are kept as they were and may still include such events")
            }
        }
        try log.close()
        let remaining = (try? store.checkIntegrity(summaries: true, limit: 100)) ?? ["the rebuilt store cannot be checked"]
        for p in remaining { note("WARNING: the rebuilt store is not sound: \(p)") }
        let marked = (try? store.markedDamagedDays()) ?? []
        if !marked.isEmpty {
            note("WARNING: \(marked.count) camera-days before the log's start were damaged and answer store_corrupt; restore store.sqlite from a backup to recover them:")
            for d in marked { note("  \(d)") }
        }
    }
}
