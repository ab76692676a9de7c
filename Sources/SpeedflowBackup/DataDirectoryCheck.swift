import Foundation
import GRDB
import Logging
import SpeedflowEngine
import SpeedflowLog
import SpeedflowStore

#if canImport(Glibc)
import Glibc
#endif

/// `speedflow check`: is a data directory (or a backup) sound, and can this binary open it? Read-only: it takes no
/// lock a server needs and writes nothing, so it runs beside a `serve` on the same directory.
public struct DataDirectoryCheck: Sendable {
    /// One finding that makes the directory unusable or its numbers doubtful.
    public struct Problem: Sendable, CustomStringConvertible {
        public var reason: String
        public var message: String
        public var description: String { "DAMAGED [\(reason)]: \(message)" }
    }

    /// What was looked at and found fine (for the report).
    public var notes: [String] = []
    public var problems: [Problem] = []
    /// The directory's format, and whether this binary opens it.
    public var format = 0
    public var canOpen = false
    public var serverRunning = false

    public var isSound: Bool { problems.isEmpty }

    mutating func problem(_ reason: String, _ message: String) { problems.append(Problem(reason: reason, message: message)) }

    /// Checks the data directory at `path`: formats, the SQLite store (`PRAGMA integrity_check` and the store's
    /// own verification of every camera-day), every log segment's records (CRCs, contiguity, nothing missing that
    /// `log/ACKED` vouches for), the store's checkpoint within the log, and the small files' syntax.
    public static func dataDirectory(_ path: String, logger: Logger) -> DataDirectoryCheck {
        var c = DataDirectoryCheck()
        let root = URL(fileURLWithPath: path).standardizedFileURL.path
        let logDir = URL(fileURLWithPath: root + "/log", isDirectory: true)
        let storePath = root + "/store.sqlite"
        guard FileManager.default.fileExists(atPath: logDir.path) || FileManager.default.fileExists(atPath: storePath) else {
            c.problem("not_a_data_directory", "\(root) is not a speedflow data directory (no log/ and no store.sqlite in it)")
            return c
        }
        guard c.checkFormat(root) else { return c }

        // A server holds log/LOCK. If none does, hold it while checking, so none starts meanwhile.
        var lockFd: Int32 = -1
        if FileManager.default.fileExists(atPath: logDir.path + "/LOCK") {
            lockFd = open(logDir.path + "/LOCK", O_RDONLY | O_CLOEXEC)
            if lockFd >= 0 && flock(lockFd, LOCK_EX | LOCK_NB) != 0 {
                c.serverRunning = true
                close(lockFd)
                lockFd = -1
            }
        }
        defer {
            if lockFd >= 0 {
                flock(lockFd, LOCK_UN)
                close(lockFd)
            }
        }
        c.notes.append(
            c.serverRunning
                ? "a server is running on it: checked read-only beside it (records appended meanwhile are not checked)"
                : "no server is running on it")

        // The store first: its checkpoint must lie within the log read after it (which only grows).
        var counted: UInt64?
        if FileManager.default.fileExists(atPath: storePath) {
            counted = c.checkStore(storePath, current: c.format == DataDirectory.currentFormat, logger: logger)
        } else {
            c.notes.append("store: none (a new data directory, or a store that is not SQLite)")
        }
        if FileManager.default.fileExists(atPath: logDir.path) {
            c.checkLog(logDir, counted: counted, expectComplete: false)
        } else if let counted, counted > 0 {
            c.problem("log_missing", "there is no log/ but the store has counted the log up to offset \(counted)")
        }
        c.checkSmallFiles(root)
        return c
    }

    /// Checks a backup: the manifest (its checksum; every file's presence, size and SHA-256; nothing else), the
    /// data format, the log copy (every record valid, its end the manifest's), the store copy (`PRAGMA
    /// integrity_check`; its checkpoint within the log). The store's per-day verification ran when the backup
    /// was taken (the manifest lists what it found), and the checksums prove the copy unchanged since.
    public static func backup(_ path: String) -> DataDirectoryCheck {
        var c = DataDirectoryCheck()
        let root = URL(fileURLWithPath: path).standardizedFileURL.path
        let manifest: BackupManifest
        do {
            manifest = try BackupManifest.load(root)
        } catch {
            c.problem(error.code.raw, error.message)
            return c
        }
        c.format = manifest.dataFormat
        c.canOpen = manifest.dataFormat <= DataDirectory.currentFormat
        c.notes.append(
            "backup of \(manifest.source), data format \(manifest.dataFormat) (this binary reads up to \(DataDirectory.currentFormat)): "
                + (c.canOpen ? "can be restored by this binary" : "needs a newer speedflow"))
        if !c.canOpen { c.problem("newer_format", "the backup holds data format \(manifest.dataFormat), newer than this binary's \(DataDirectory.currentFormat)") }
        c.notes.append("taken \(manifest.startedAt)–\(manifest.finishedAt); snapshot point (log read) \(manifest.snapshotAt)")
        for d in manifest.damage { c.problem("source_damaged", "the data directory was already damaged when backed up: \(d)") }
        let fileProblems = manifest.verifyFiles(in: root)
        for p in fileProblems { c.problem(p.code.raw, p.message) }
        c.notes.append("manifest: \(manifest.files.count) files, \(manifest.files.reduce(0) { $0 + $1.size }) bytes" + (fileProblems.isEmpty ? ", every checksum matches" : ""))
        guard fileProblems.isEmpty else { return c }

        var counted: UInt64?
        if let store = manifest.store {
            let path = root + "/" + store.file
            do {
                var config = Configuration()
                config.readonly = true
                let queue = try DatabaseQueue(path: path, configuration: config)
                let result = try queue.read { try String.fetchAll($0, sql: "PRAGMA integrity_check(100)") }
                try queue.close()
                if result == ["ok"] {
                    c.notes.append("store: PRAGMA integrity_check ok; counted the log up to offset \(store.logOffset)")
                } else {
                    for r in result { c.problem("store_corrupt", "integrity_check: \(r)") }
                }
            } catch {
                c.problem("store_corrupt", "\(store.file) cannot be read: \(error)")
            }
            counted = store.logOffset
        }
        if let log = manifest.log {
            let found = c.checkLog(URL(fileURLWithPath: root + "/log", isDirectory: true), counted: counted, expectComplete: true)
            if let found, found != log.end {
                c.problem("backup_inconsistent", "the log copy ends at offset \(found), the manifest says \(log.end)")
            }
        }
        return c
    }

    // MARK: - Parts

    /// `FORMAT` against this binary's. Returns whether to go on.
    mutating func checkFormat(_ root: String) -> Bool {
        if let text = try? String(contentsOfFile: root + "/FORMAT", encoding: .utf8) {
            guard let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 else {
                problem("format_unreadable", "\(root)/FORMAT does not hold a format number ('\(text.prefix(40))')")
                return false
            }
            format = n
        } else {
            format = 1
        }
        let current = DataDirectory.currentFormat
        if format > current {
            canOpen = false
            problem(
                "newer_format",
                "data format \(format): written by a newer speedflow; this binary reads formats up to \(current) and cannot open it (downgrading is not supported)")
            return false
        }
        canOpen = true
        notes.append(
            format == current
                ? "data format \(format) (this binary's): this binary opens it as it is"
                : "data format \(format), older than this binary's \(current): this binary opens it and upgrades it (the store is copied to backups/ first); take a backup before")
        return true
    }

    /// `PRAGMA integrity_check`, then (current format only: opening an older store would migrate it) the store's
    /// own verification; returns its checkpoint.
    mutating func checkStore(_ path: String, current: Bool, logger: Logger) -> UInt64? {
        var counted: UInt64?
        do {
            var config = Configuration()
            config.busyMode = .timeout(30)
            let queue = try DatabaseQueue(path: path, configuration: config)
            let (result, offset, migrations) = try queue.read { db in
                (
                    try String.fetchAll(db, sql: "PRAGMA integrity_check(100)"),
                    try? Int64.fetchOne(db, sql: "SELECT log_offset FROM checkpoint WHERE name = 'aggregator'"),
                    (try? String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")) ?? []
                )
            }
            try queue.close()
            counted = offset.map { UInt64($0) } ?? 0
            if result == ["ok"] {
                notes.append("store: PRAGMA integrity_check ok (schema: \(migrations.joined(separator: ", ")))")
            } else {
                for r in result { problem("store_corrupt", "integrity_check: \(r)") }
                return counted
            }
        } catch {
            problem("store_corrupt", "\(path) cannot be read: \(error)")
            return nil
        }
        guard current else {
            notes.append("store: per-day verification skipped (an older format; the upgrade verifies it when serve opens it)")
            return counted
        }
        do {
            let store = try SQLiteStore(path: path, logger: logger)
            defer { try? store.close() }
            let found = try store.checkIntegrity(summaries: true, limit: 20)
            for p in found { problem("store_corrupt", p) }
            let damaged = try store.markedDamagedDays()
            for d in damaged { problem("store_corrupt", "marked damaged by an earlier rebuild: \(d)") }
            if found.isEmpty && damaged.isEmpty { notes.append("store: every camera-day matches its summary") }
            counted = try store.logOffset()
        } catch {
            problem("store_corrupt", "\(error)")
        }
        return counted
    }

    /// Every segment's records; the store's checkpoint within the log. `expectComplete` (a backup): no
    /// unacknowledged tail allowed. Returns the log's end.
    @discardableResult
    mutating func checkLog(_ logDir: URL, counted: UInt64?, expectComplete: Bool) -> UInt64? {
        let v: LogFiles.Verification
        do {
            v = try LogFiles.verify(logDir)
        } catch {
            problem("log_unreadable", "\(logDir.path): \(error)")
            return nil
        }
        for d in v.damage {
            let note =
                counted.map { d.range.upperBound <= $0 }.map {
                    $0 ? " (the store already counts these events: only the raw copy is damaged)" : " (NOT counted by the store yet)"
                } ?? ""
            problem(d.kind == .missing ? "log_missing" : "log_corrupt", "\(d)\(note)")
        }
        if expectComplete && v.unacknowledgedTail > 0 {
            problem("log_corrupt", "the last segment ends with \(v.unacknowledgedTail) bytes that are not whole records")
        }
        let formats = Set(v.segments.map(\.formatVersion)).sorted().map(String.init).joined(separator: ", ")
        notes.append(
            "log: \(v.segments.count) segments (segment format \(formats)), offsets \(v.start)..<\(v.end), every record's CRC checked"
                + (v.unacknowledgedTail > 0 && !expectComplete ? "; \(v.unacknowledgedTail) bytes at the end not acknowledged yet (an append in progress, or a write a crash cut: serve cuts it at start)" : ""))
        for q in v.quarantined { notes.append("log: quarantined earlier: \(q)") }
        if let counted {
            if counted > v.end {
                problem(
                    "log_behind_store",
                    "the store has counted the log up to offset \(counted) but the log ends at \(v.end): acknowledged log records are missing")
            } else if counted < v.start && !v.segments.isEmpty {
                problem("log_missing", "the log starts at offset \(v.start), after the store's checkpoint \(counted): records the store has not counted are gone")
            } else {
                notes.append("store offset \(counted) ≤ log end \(v.end): replay covers the rest")
            }
        }
        return v.end
    }

    /// The credentials and the camera registry parse as JSON; the audit log line by line.
    mutating func checkSmallFiles(_ root: String) {
        for name in ["credentials.json", "cameras.json"] {
            guard let data = FileManager.default.contents(atPath: root + "/" + name) else { continue }
            if (try? JSONSerialization.jsonObject(with: data)) == nil {
                problem("file_corrupt", "\(name) is not valid JSON")
            } else {
                notes.append("\(name): valid JSON")
            }
        }
        if let data = FileManager.default.contents(atPath: root + "/audit.log") {
            let bad = data.split(separator: 0x0A).filter { (try? JSONSerialization.jsonObject(with: Data($0))) == nil }.count
            if bad > 0 { problem("file_corrupt", "audit.log: \(bad) lines are not valid JSON") } else { notes.append("audit.log: every line valid JSON") }
        }
    }

    /// The report, one finding per line.
    public var lines: [String] {
        notes.map { "ok: \($0)" } + problems.map(\.description) + [problems.isEmpty ? "sound" : "DAMAGED: \(problems.count) problem(s)"]
    }
}
