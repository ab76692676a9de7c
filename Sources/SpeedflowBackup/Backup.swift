import Foundation
import GRDB
import Logging
import SpeedflowEngine
import SpeedflowFiles
import SpeedflowLog
import SpeedflowStore

#if canImport(Glibc)
import Glibc
#endif

/// `speedflow backup`: a consistent copy of a data directory, taken from its files while a `serve` may be
/// running on it and ingesting (no cooperation from the server needed).
///
/// Why it is consistent: the store (and any other SQLite file) is copied first, through SQLite's online backup API
/// — one read transaction, so one committed state, whatever the server writes meanwhile. Its checkpoint C was a
/// log offset already durable when it was committed, so the log, read *after* it, reaches at least C: a restore
/// replays C..end from the copied log, as after a crash. The log is read up to a consistent end (`LogFiles`): whole
/// records, the append in progress left out, so everything acknowledged before the log was read is in the
/// backup (the RPO). The segments that exist when the backup starts are opened first, so retention removing one
/// meanwhile cannot leave a hole between C and the copied log. The credentials and the camera registry are copied
/// under their locks (a writer replacing them waits), the audit log up to its last whole line.
public enum Backup {
    public struct Report: Sendable {
        public var manifest: BackupManifest
        public var directory: String
        public var bytes: Int
    }

    /// Takes a backup of the data directory `dataDir` into `target` (which must not exist or be empty): written to
    /// a hidden temporary sibling, fsync'd, then renamed, so `target` is either absent or complete.
    public static func run(dataDir: String, to target: String, logger: Logger) throws(BackupError) -> Report {
        let root = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        let targetPath = URL(fileURLWithPath: target).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: root + "/log") || FileManager.default.fileExists(atPath: root + "/store.sqlite") else {
            throw BackupError(.notADataDirectory, "\(root) is not a speedflow data directory (no log/ and no store.sqlite in it)")
        }
        let format = try dataFormat(root)
        guard format <= DataDirectory.currentFormat else {
            throw BackupError(
                .newerFormat,
                "\(root) was written by a newer speedflow (data format \(format); this binary knows up to \(DataDirectory.currentFormat)): back it up with that version")
        }
        guard FileIO.isAbsentOrEmpty(targetPath) else {
            throw BackupError(.targetNotEmpty, "\(targetPath) exists and is not empty: give a new directory for the backup")
        }
        if targetPath.hasPrefix(root + "/") && !targetPath.hasPrefix(root + "/backups/") {
            throw BackupError(.io, "\(targetPath) is inside the data directory: put backups elsewhere (or under \(root)/backups/, which backups leave out)")
        }
        let temporary = FileIO.sibling(of: targetPath, "partial")
        try? FileManager.default.removeItem(atPath: temporary)
        try FileIO.makeDirectory(temporary)
        do {
            let report = try take(root: root, format: format, into: temporary, logger: logger)
            try FileIO.publish(temporary, as: targetPath)
            return Report(manifest: report.manifest, directory: targetPath, bytes: report.bytes)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
    }

    static func dataFormat(_ root: String) throws(BackupError) -> Int {
        guard let text = try? String(contentsOfFile: root + "/FORMAT", encoding: .utf8) else { return 1 }
        guard let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 else {
            throw BackupError(.io, "\(root)/FORMAT does not hold a format number")
        }
        return n
    }

    /// Whether the data directory leaves `relative` out of backups: locks, temporary files, SQLite's side files
    /// (the online backup reads through them), what the log section copies itself, copies kept by upgrades and
    /// repairs (`backups/`, `*.corrupt-*`).
    static func isLeftOut(_ relative: String) -> Bool {
        let name = (relative as NSString).lastPathComponent
        if relative.hasPrefix("log/") || relative.hasPrefix("backups/") { return true }
        if name == "LOCK" || name.hasSuffix(".lock") || name.hasSuffix(".tmp") || name.hasPrefix(".") { return true }
        if name.hasSuffix("-wal") || name.hasSuffix("-shm") || name.hasSuffix("-journal") { return true }
        if name.contains(".corrupt-") { return true }
        return false
    }

    private static func take(root: String, format: Int, into temporary: String, logger: Logger) throws(BackupError) -> (manifest: BackupManifest, bytes: Int) {
        let started = Date()
        var files: [BackupManifest.File] = []
        var damage: [String] = []
        let logDir = URL(fileURLWithPath: root + "/log", isDirectory: true)
        let hasLog = FileManager.default.fileExists(atPath: logDir.path)

        // 1. Hold the segments that exist now: retention cannot take them away before they are copied.
        var held: [String: (segment: LogFiles.SegmentInfo, fd: Int32)] = [:]
        defer { for h in held.values { close(h.fd) } }
        if hasLog {
            for s in (try? LogFiles.segments(logDir)) ?? [] {
                let fd = open(s.url.path, O_RDONLY | O_CLOEXEC)
                if fd >= 0 { held[s.name] = (s, fd) }
            }
        }

        // 2. Every SQLite file, through the online backup API: store.sqlite first (its checkpoint must not pass
        // the log read after it).
        let everything = FileIO.files(under: root)
        let databases = everything.filter { $0.hasSuffix(".sqlite") && !isLeftOut($0) }
            .sorted { ($0 == "store.sqlite" ? 0 : 1, $0) < ($1 == "store.sqlite" ? 0 : 1, $1) }
        var store: BackupManifest.Store?
        for rel in databases {
            let target = temporary + "/" + rel
            try FileIO.makeDirectory((target as NSString).deletingLastPathComponent)
            let info = try copyDatabase(root + "/" + rel, to: target)
            if rel == "store.sqlite" {
                store = BackupManifest.Store(file: rel, logOffset: info.logOffset ?? 0, migrations: info.migrations)
                if format == DataDirectory.currentFormat {
                    damage += try verifyStore(target, logger: logger).map { "store: \($0)" }
                }
            }
            let (size, sha) = try FileIO.hash(target)
            files.append(.init(path: rel, size: size, sha256: sha))
        }

        // 3. The log, up to a consistent end, after the store.
        var logInfo: BackupManifest.Log?
        let snapshot = Date()
        if hasLog {
            try FileIO.makeDirectory(temporary + "/log")
            let acked = LogFiles.ackedMark(logDir)  // before the segments are read
            let now = (try? LogFiles.segments(logDir)) ?? []
            var segments = now
            for (name, h) in held where !now.contains(where: { $0.name == name }) {
                // Removed by retention since step 1: still readable through the held descriptor.
                segments.append(h.segment)
            }
            segments.sort { $0.base < $1.base }
            var previousEnd: UInt64?
            var start: UInt64 = segments.first?.base ?? 0
            var tail = 0
            for (i, segment) in segments.enumerated() {
                let last = i == segments.count - 1
                let data = try readAll(held[segment.name]?.fd, segment.url.path)
                let scan = LogFiles.scan(data, segment: segment, last: last, acked: last ? acked : nil)
                if let previousEnd, previousEnd != segment.base {
                    damage.append("log: segments not contiguous: \(previousEnd) before \(segment.name)")
                } else if previousEnd == nil {
                    start = segment.base
                }
                damage += scan.damage.map { "log: \($0)" }
                let rel = "log/" + segment.name
                let sha = try FileIO.write(scan.kept, to: temporary + "/" + rel, mode: 0o644)
                files.append(.init(path: rel, size: scan.kept.count, sha256: sha))
                previousEnd = scan.end
                tail += scan.unacknowledgedTail
            }
            let end = previousEnd ?? 0
            logInfo = BackupManifest.Log(start: start, end: end, segments: segments.count, unacknowledgedTailBytes: tail)
            if let store {
                guard store.logOffset <= end else {
                    throw BackupError(
                        .inconsistentSnapshot,
                        "the store's copy counted the log up to offset \(store.logOffset) but the log read after it ends at \(end); nothing was kept")
                }
                if store.logOffset < start {
                    damage.append("log: starts at offset \(start), after the store's checkpoint \(store.logOffset): records in between are missing")
                }
            }
            // Ranges quarantined earlier: their records (kept aside) are part of the history.
            let quarantine = root + "/log/quarantine"
            if FileManager.default.fileExists(atPath: quarantine) {
                try FileIO.makeDirectory(temporary + "/log/quarantine")
                for rel in FileIO.files(under: quarantine) where !rel.contains("/") {
                    let (size, sha) = try FileIO.copy(quarantine + "/" + rel, to: temporary + "/log/quarantine/" + rel, mode: 0o644)
                    files.append(.init(path: "log/quarantine/" + rel, size: size, sha256: sha))
                }
            }
        }

        // 4. Everything else: small files, under their locks where they have one.
        let credentials = "credentials.json"
        for rel in everything where !isLeftOut(rel) && !rel.hasSuffix(".sqlite") {
            let source = root + "/" + rel
            let target = temporary + "/" + rel
            try FileIO.makeDirectory((target as NSString).deletingLastPathComponent)
            let copy = { () throws(BackupError) -> (Int, String) in
                if rel == "audit.log" || rel.hasSuffix("/audit.log") {
                    // Append-only: up to its last whole line (a line being appended is not cut in two).
                    let data = FileManager.default.contents(atPath: source) ?? Data()
                    let end = (data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? data.startIndex
                    let kept = data[data.startIndex..<end]
                    return (kept.count, try FileIO.write(Data(kept), to: target))
                }
                var st = stat()
                let mode: mode_t = stat(source, &st) == 0 ? st.st_mode & 0o777 : 0o600
                return try FileIO.copy(source, to: target, mode: mode)
            }
            let lockOwner = rel.hasSuffix("audit.log") ? (rel as NSString).deletingLastPathComponent.appendingPathComponentIfAny(credentials) : rel
            let result: (Int, String)
            if FileManager.default.fileExists(atPath: root + "/" + lockOwner + ".lock") {
                result = try SharedFile.withLock(root + "/" + lockOwner, mode: 0o600, failure: { BackupError(.io, $0) }, copy)
            } else {
                result = try copy()
            }
            files.append(.init(path: rel, size: result.0, sha256: result.1))
        }

        // 5. The manifest, last: a backup without it is incomplete by definition.
        let stamp = ISO8601DateFormatter()
        stamp.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        files.sort { $0.path < $1.path }
        let manifest = BackupManifest(
            backupFormat: BackupManifest.currentBackupFormat, dataFormat: format, startedAt: stamp.string(from: started),
            snapshotAt: stamp.string(from: snapshot), finishedAt: stamp.string(from: Date()), source: root, store: store, log: logInfo,
            files: files, damage: damage)
        let data: Data
        do { data = try manifest.encoded() } catch { throw BackupError(.io, "cannot encode the manifest: \(error)") }
        try FileIO.write(data, to: temporary + "/" + BackupManifest.fileName, mode: 0o644)
        try FileIO.write(
            Data("\(FileIO.hex(of: data))  \(BackupManifest.fileName)\n".utf8), to: temporary + "/" + BackupManifest.checksumFileName, mode: 0o644)
        for dir in Set(files.map { ($0.path as NSString).deletingLastPathComponent }) where !dir.isEmpty {
            FileIO.fsyncPath(temporary + "/" + dir)
        }
        FileIO.fsyncPath(temporary)
        return (manifest, files.reduce(0) { $0 + $1.size })
    }

    static func readAll(_ fd: Int32?, _ path: String) throws(BackupError) -> Data {
        let own = fd == nil
        let fd = fd ?? open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .posix("open", path) }
        defer { if own { close(fd) } }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: FileIO.chunk)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, FileIO.chunk, off_t(data.count)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("read", path)
            }
            if n == 0 { return data }
            data.append(contentsOf: buffer[0..<n])
        }
    }

    struct DatabaseInfo {
        var logOffset: UInt64?
        var migrations: [String]
    }

    /// SQLite's online backup of `source` (read in one transaction beside any writer) into a new file `target`,
    /// left in rollback-journal mode: one self-contained file that a reader opens without creating side files.
    static func copyDatabase(_ source: String, to target: String) throws(BackupError) -> DatabaseInfo {
        do {
            var config = Configuration()
            config.busyMode = .timeout(30)
            let from = try DatabaseQueue(path: source, configuration: config)
            defer { try? from.close() }
            let to = try DatabaseQueue(path: target)
            do {
                try from.backup(to: to)
                try to.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
                let info = try to.read { db in
                    DatabaseInfo(
                        logOffset: try? Int64.fetchOne(db, sql: "SELECT log_offset FROM checkpoint WHERE name = 'aggregator'").map { UInt64($0) },
                        migrations: (try? String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")) ?? [])
                }
                try to.close()
                return info
            } catch {
                try? to.close()
                throw error
            }
        } catch {
            throw BackupError.sqlite(error, "backing up", source)
        }
    }

    /// The store's own verification (`PRAGMA quick_check` and every camera-day against its summary) on the copy.
    static func verifyStore(_ path: String, logger: Logger) throws(BackupError) -> [String] {
        do {
            let store = try SQLiteStore(path: path, logger: logger)
            let problems = try store.checkIntegrity(summaries: true, limit: 20)
            try store.close()
            // Opening it switched it to WAL: back to one self-contained file.
            let queue = try DatabaseQueue(path: path)
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            try queue.close()
            return problems
        } catch let e as StoreError {
            return ["\(e)"]
        } catch {
            throw BackupError.sqlite(error, "verifying", path)
        }
    }
}

extension String {
    /// `dir/name`, or `name` when `self` is empty.
    func appendingPathComponentIfAny(_ name: String) -> String { isEmpty ? name : self + "/" + name }
}
