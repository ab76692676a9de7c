import ArgumentParser
import Foundation
import SpeedflowBackup
import SpeedflowEngine
import SpeedflowRuntime

/// The data directory of `backup` and `check`: flag, then `SPEEDFLOW_DATA_DIR`, then `./data`.
struct DataDirOption: ParsableArguments {
    @Option(help: "The data directory. Default: ./data. Env: SPEEDFLOW_DATA_DIR.")
    var dataDir: String?

    var path: String { dataDir ?? ProcessInfo.processInfo.environment["SPEEDFLOW_DATA_DIR"] ?? DataDirectory.defaultPath }
}

/// Prints `error (<reason>): <message>` on stderr and exits 1.
func fail(_ error: BackupError) -> ExitCode {
    FileHandle.standardError.write(Data("\(error)\n".utf8))
    return ExitCode(1)
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a data directory consistently, while serve runs on it and ingests, with a manifest of checksums.",
        discussion: """
            Works from the files (no server cooperation; the server may be running or not): the SQLite store through \
            SQLite's online backup API first, then the log up to a consistent end (whole records; everything \
            acknowledged before the log is read is in the backup), then the credentials, audit log, camera registry \
            and any other file (under their locks). The store's checkpoint never passes the copied log's end, so a \
            restore replays the rest. Written to a hidden temporary directory beside DIR and renamed when complete: \
            DIR is either absent or a whole backup. DIR must not exist or be empty. Prints the manifest's summary; \
            exit 1 with `error (<reason>): …` when it cannot (target_not_empty, not_a_data_directory, newer_format, \
            insufficient_storage, io, inconsistent_snapshot). Damage found in the snapshot is listed in the \
            manifest and printed, and exits 1 (the backup is kept: a faithful copy).
            """)

    @OptionGroup var dataDir: DataDirOption

    @Option(help: "Directory to create for the backup (absent or empty).")
    var to: String

    func run() throws {
        let logger = Observability.bootstrapLogging("warning")
        let report: Backup.Report
        do {
            report = try Backup.run(dataDir: dataDir.path, to: to, logger: logger)
        } catch {
            throw fail(error)
        }
        let m = report.manifest
        print("backup: \(report.directory): \(m.files.count) files, \(report.bytes) bytes, data format \(m.dataFormat)")
        if let log = m.log {
            print("log: offsets \(log.start)..<\(log.end) in \(log.segments) segments (snapshot point \(m.snapshotAt): everything acknowledged before it)")
        }
        if let store = m.store { print("store: counted the log up to offset \(store.logOffset); restore replays the rest") }
        for d in m.damage { print("DAMAGED (copied as it was): \(d)") }
        if !m.damage.isEmpty { throw ExitCode(1) }
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Rebuild a data directory from a backup, every file checked against its manifest.",
        discussion: """
            The target must not exist or be empty. Checks the manifest's own checksum, the data format (a backup \
            from a newer speedflow is refused), every file's size and SHA-256 and that no file was added; builds the \
            directory in a hidden temporary directory beside the target and renames it at the end, so nothing \
            half-written is ever left. Then `speedflow serve --data-dir NEW` serves it (it replays the log from the \
            store's checkpoint). Exit 1 with `error (<reason>): …`: target_not_empty, backup_incomplete, \
            manifest_damaged, newer_format, backup_truncated, backup_checksum_mismatch, backup_unexpected_file, \
            backup_inconsistent, insufficient_storage, io.
            """)

    @Option(help: "The backup directory (written by speedflow backup).")
    var from: String

    @Option(help: "The new data directory (absent or empty).")
    var dataDir: String

    func run() throws {
        let report: Restore.Report
        do {
            report = try Restore.run(from: from, to: dataDir)
        } catch {
            throw fail(error)
        }
        let m = report.manifest
        print("restored: \(report.directory) from \(from) (\(m.files.count) files, every checksum matched; data format \(m.dataFormat), taken \(m.snapshotAt))")
        print("next: speedflow serve --data-dir \(report.directory)")
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify a data directory (or a backup), and say whether this binary can open it.",
        discussion: """
            --data-dir: the data format against this binary's; SQLite's PRAGMA integrity_check and the store's own \
            verification of every camera-day; every log segment's record CRCs, contiguity and what log/ACKED vouches \
            for; the store's checkpoint within the log; credentials.json, cameras.json and audit.log parse. \
            Read-only: runs beside a running serve (records appended meanwhile are left for the next check; a \
            long check holds one SQLite read transaction, so the store's WAL grows meanwhile). --backup DIR: the \
            manifest (its checksum, every file's size and SHA-256, nothing added), the data format, the log copy's \
            records, the store copy's integrity_check. Exit 0: sound; 1: damage (each line `DAMAGED [<reason>]: …`); \
            2: this binary cannot open it (newer format, not a data directory).
            """)

    @OptionGroup var dataDir: DataDirOption

    @Option(help: "Check this backup directory instead of a data directory.")
    var backup: String?

    func run() throws {
        let logger = Observability.bootstrapLogging("error")
        let check = backup.map { DataDirectoryCheck.backup($0) } ?? DataDirectoryCheck.dataDirectory(dataDir.path, logger: logger)
        print("check: \(backup ?? dataDir.path)")
        for line in check.lines { print(line) }
        if check.problems.contains(where: { $0.reason == "newer_format" || $0.reason == "not_a_data_directory" }) { throw ExitCode(2) }
        if !check.isSound { throw ExitCode(1) }
    }
}
