import Foundation
import Logging
import Metrics
import SpeedflowLog
import SpeedflowStore
import Synchronization

/// Aggregators whose background integrity check is running (one at a time per aggregator).
private let integrityChecksRunning = Mutex<Set<ObjectIdentifier>>([])

extension Aggregator {
    /// Stores up to this size are checked in full before the engine opens; a bigger one after start, in the
    /// background (the per-read checks guard every answer meanwhile), so a restart stays under 2 s.
    /// `PRAGMA quick_check` + the summary pass read ~1 GB/s here (see the README's integrity section).
    /// `SPEEDFLOW_STORE_CHECK_AT_OPEN_MAX_BYTES` overrides it (0: always in the background; for fault-injection
    /// tests of the run-time answers, and for operators who prefer a fast start over an early repair).
    public static let synchronousCheckMaxBytes: Int64 =
        ProcessInfo.processInfo.environment["SPEEDFLOW_STORE_CHECK_AT_OPEN_MAX_BYTES"].flatMap { Int64($0) } ?? 256 << 20

    /// At open, before anything reads the store: routes the store's corruption reports to the log and the
    /// `speedflow_store_corruptions_total` counter, and checks a small store in full. A damaged store is moved
    /// aside (kept) and rebuilt from the log when the log still holds every event ever accepted (it starts
    /// at offset 0); otherwise the engine refuses to open, naming the repair.
    static func checkStoreAtOpen(_ store: any StoreWriter, completeLog: (any Log)?, logger: Logger) throws {
        store.onCorruption { error in
            Counter(label: "speedflow_store_corruptions_total").increment()
            logger.error(
                "Store corruption detected; the affected data is answered as store_corrupt",
                metadata: ["reason": "\(error.reason)", "error": "\(error.message)"])
        }
        guard store.sizeInBytes() <= synchronousCheckMaxBytes else { return }
        let problems: [String]
        do {
            problems = try store.checkIntegrity(summaries: true)
        } catch let error as StoreError where error.code == .corrupt {
            problems = [error.message]
        }
        guard !problems.isEmpty else { return }
        let summary = problems.prefix(3).joined(separator: "; ")
        // Rebuilt only from a log that still holds every event ever accepted: from offset 0 and with nothing set
        // aside (quarantined log records are in no replay).
        guard let log = completeLog, log.startOffset.value == 0, log.quarantined.isEmpty, log.endOffset.value > 0 else {
            throw StoreError(
                .corrupt,
                "the store failed its integrity check at start (\(summary)) and the log no longer holds every event (retention removed its start), so it cannot be rebuilt automatically: \(StoreError.repairHint)")
        }
        guard let aside = try store.quarantine(reason: summary) else {
            throw StoreError(.corrupt, "the store failed its integrity check at start (\(summary)): \(StoreError.repairHint)")
        }
        Counter(label: "speedflow_store_corruptions_total").increment()
        logger.error(
            "The store failed its integrity check at start; it was moved aside and is rebuilt from the log",
            metadata: [
                "store.problems": "\(summary)", "store.moved_to": "\(aside)",
                "log.bytes": "\(log.endOffset.value - log.startOffset.value)",
            ])
    }

    /// Checks the whole store (quick_check + every camera-day against its summary) in the background, so flushes
    /// and queries go on meanwhile; damage is logged and counted, and reads of the damaged days answer
    /// store_corrupt. Run after start for a store too big to check at open, and hourly by maintenance.
    func checkStoreInBackground(why: String) {
        guard store is SQLiteStore else { return }
        let id = ObjectIdentifier(self)
        guard integrityChecksRunning.withLock({ $0.insert(id).inserted }) else { return }
        inBackground { [self] in
            defer { _ = integrityChecksRunning.withLock { $0.remove(id) } }
            let began = DispatchTime.now().uptimeNanoseconds
            let problems: [String]
            do {
                problems = try store.checkIntegrity(summaries: true)
            } catch let error as StoreError where error.code == .corrupt {
                // Already reported by the store.
                return
            } catch {
                logger.error("Store integrity check failed to run", metadata: ["error": "\(error)"])
                return
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
            if problems.isEmpty {
                logger.info(
                    "Store integrity check passed",
                    metadata: ["store.check": "\(why)", "store.check.seconds": "\(String(format: "%.2f", seconds))"])
            } else {
                Counter(label: "speedflow_store_corruptions_total").increment()
                logger.error(
                    "Store integrity check found damage; the affected data is answered as store_corrupt",
                    metadata: [
                        "store.check": "\(why)", "store.problems": "\(problems.joined(separator: "; "))",
                        "store.repair": "\(StoreError.repairHint)",
                    ])
            }
        } cancelled: {
            _ = integrityChecksRunning.withLock { $0.remove(id) }
        }
    }

    /// After start: the full check of a store too big to check at open.
    func checkStoreAfterStart() {
        if store.sizeInBytes() > Self.synchronousCheckMaxBytes { checkStoreInBackground(why: "start") }
    }
}
