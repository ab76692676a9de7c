import Foundation
import Logging
import SpeedflowLog
import SpeedflowStore

#if canImport(Glibc)
import Glibc
#endif

/// The embedded data directory: `log/` (segments), `store.sqlite`, and `FORMAT`, the version of the whole.
///
/// Every on-disk format change bumps `currentFormat` and teaches `open` to upgrade the previous one, so no
/// data directory is ever stranded: opening an older one copies what the upgrade rewrites to
/// `backups/format-<N>-<time>/` first, then upgrades; a newer one is refused before anything is touched.
/// `Tests/IntegrationTests/Fixtures/format1` is a directory written by the last format-1 release; the
/// upgrade test opens it and must answer exactly what that release answered.
public enum DataDirectory {
    /// 1: before `FORMAT` existed (a01ce8f and earlier): `.seg` log segments without acknowledged marks.
    /// 2: `.log` segments (header with the acknowledged offset, record magic, padding for quarantined bytes).
    /// 3: log records name their writer (`EventRecord` version 3: the credential id); version-2 records stay as
    /// they are and are still read, so the upgrade from 2 rewrites nothing (older binaries refuse the directory).
    /// 4: events may carry sequence numbers and records camera reports (`EventRecord` version 4, written only
    /// for records that have them), bucket states late counts (`BucketState` version 2), and the store the
    /// sequence ledgers (SQLite migration `v4-sequences`); nothing older is rewritten.
    /// 5: bucket states keep per-lane figures and the count of whole speeds per bin (`BucketState` version 3,
    /// for over-the-limit counts); log records may carry per-camera rejection tallies (`EventRecord` version 5,
    /// written only for records that have them) and the store keeps them (SQLite migration `v5-camera-rejection`);
    /// states and records written before stay as they are (lanes and whole counts unknown).
    public static let currentFormat = 5

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// Where a data directory lives unless told otherwise.
    public static let defaultPath = "./data"

    /// The SQLite store of the data directory at `path` (written by `serve`, or by a single aggregator for an
    /// API node to read).
    public static func storeFile(_ path: String) -> String {
        URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("store.sqlite").path
    }

    /// The SQLite store of one Kafka partition an aggregator owns (`aggregate/<topic>-<partition>.sqlite`);
    /// creates its folder.
    public static func partitionStoreFile(_ path: String, topic: String, partition: Int32) throws -> String {
        let dir = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("aggregate", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("\(topic)-\(partition).sqlite").path
    }

    /// Opens (creating if needed, upgrading if older) the data directory at `path`: the log and the SQLite store.
    public static func open(
        _ path: String, logConfiguration: SegmentLog.Configuration = .init(), logger: Logger
    ) throws -> (log: SegmentLog, store: SQLiteStore) {
        let log = try openLog(path, logConfiguration: logConfiguration, logger: logger)
        return (log, try SQLiteStore(path: storeFile(path), logger: logger))
    }

    /// Opens (creating if needed, upgrading if older) the log of the data directory at `path`, for `serve`
    /// whatever its store. An upgrade copies the directory's SQLite store (if any) to `backups/` first, before
    /// anything opens it: its migrations rewrite it.
    public static func openLog(
        _ path: String, logConfiguration: SegmentLog.Configuration = .init(), logger: Logger
    ) throws -> SegmentLog {
        let (log, found, root) = try checkFormatAndOpenLog(path, logConfiguration: logConfiguration, logger: logger)
        let storeFile = root.appendingPathComponent("store.sqlite")
        if found < currentFormat && FileManager.default.fileExists(atPath: storeFile.path) {
            // Keep the directory's lock (the log holds it) and copy the store first.
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
            let backup = root.appendingPathComponent("backups/format-\(found)-\(stamp)", isDirectory: true)
            try FileManager.default.createDirectory(at: backup, withIntermediateDirectories: true)
            for suffix in ["", "-wal", "-shm"] {
                let file = URL(fileURLWithPath: storeFile.path + suffix)
                if FileManager.default.fileExists(atPath: file.path) {
                    try FileManager.default.copyItem(at: file, to: backup.appendingPathComponent(file.lastPathComponent))
                }
            }
            logger.notice(
                "Upgrading data directory; the store as it was is copied first",
                metadata: ["data.format.from": "\(found)", "data.format.to": "\(currentFormat)", "data.backup": "\(backup.path)"])
        }
        try markCurrent(root, found: found)
        return log
    }

    /// Checks the format and opens the log (which takes the directory's lock). Opening an older log changes
    /// none of its records: new ones go to a new segment.
    static func checkFormatAndOpenLog(
        _ path: String, logConfiguration: SegmentLog.Configuration, logger: Logger
    ) throws -> (SegmentLog, Int, URL) {
        let root = URL(fileURLWithPath: path, isDirectory: true)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let formatFile = root.appendingPathComponent("FORMAT")
        let logDir = root.appendingPathComponent("log", isDirectory: true)
        let found: Int
        if let text = try? String(contentsOf: formatFile, encoding: .utf8) {
            guard let n = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), n > 0 else {
                throw Error(description: "\(formatFile.path) does not hold a format number ('\(text.prefix(40))')")
            }
            found = n
        } else {
            let used = FileManager.default.fileExists(atPath: logDir.path)
                || FileManager.default.fileExists(atPath: root.appendingPathComponent("store.sqlite").path)
            found = used ? 1 : currentFormat
        }
        guard found <= currentFormat else {
            throw Error(
                description: """
                    \(path) was written by a newer speedflow (data format \(found)); this binary reads formats up to \
                    \(currentFormat). Run the newer version on it (downgrading a data directory is not supported), or \
                    point --data-dir elsewhere. Nothing was changed.
                    """)
        }
        let log = try SegmentLog(directory: logDir, configuration: logConfiguration, logger: logger)
        return (log, found, root)
    }

    static func markCurrent(_ root: URL, found: Int) throws {
        let formatFile = root.appendingPathComponent("FORMAT")
        if found != currentFormat || !FileManager.default.fileExists(atPath: formatFile.path) {
            try writeAtomically(Data("\(currentFormat)\n".utf8), to: formatFile)
        }
    }

    /// Temp file, fsync, rename, fsync of the directory: the file is either the old or the new one.
    static func writeAtomically(_ data: Data, to url: URL) throws {
        let tmp = url.appendingPathExtension("tmp")
        try data.write(to: tmp)
        let fd = Glibc.open(tmp.path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            Glibc.close(fd)
        }
        guard rename(tmp.path, url.path) == 0 else {
            throw Error(description: "cannot write \(url.path): \(String(cString: strerror(errno)))")
        }
        let dir = Glibc.open(url.deletingLastPathComponent().path, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            Glibc.close(dir)
        }
    }
}
