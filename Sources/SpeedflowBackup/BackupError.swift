import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#endif

/// Why `backup`, `restore` or `check --backup` refused, with a stable reason code (printed as `error (<code>): …`).
public struct BackupError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let raw: String
        /// The target of a backup or restore exists and is not empty.
        public static let targetNotEmpty = Code(raw: "target_not_empty")
        /// The source is not a Speedflow data directory (no `log/`, no `store.sqlite`).
        public static let notADataDirectory = Code(raw: "not_a_data_directory")
        /// The data directory or backup was written by a newer Speedflow (data format above this binary's).
        public static let newerFormat = Code(raw: "newer_format")
        /// No `manifest.json` (or its checksum file): not a backup, or one cut short before it was finished.
        public static let incomplete = Code(raw: "backup_incomplete")
        /// `manifest.json` does not match its checksum or does not parse.
        public static let manifestDamaged = Code(raw: "manifest_damaged")
        /// A file the manifest lists is missing or shorter than listed.
        public static let truncated = Code(raw: "backup_truncated")
        /// A file's size or SHA-256 differs from the manifest: changed since the backup was taken.
        public static let checksumMismatch = Code(raw: "backup_checksum_mismatch")
        /// A file the manifest does not list.
        public static let unexpectedFile = Code(raw: "backup_unexpected_file")
        /// The backup's content contradicts itself (the store counted more of the log than the log holds, …).
        public static let inconsistent = Code(raw: "backup_inconsistent")
        /// No space left on the target's file system.
        public static let insufficientStorage = Code(raw: "insufficient_storage")
        /// The snapshot could not be made consistent (the store's checkpoint past the copied log's end).
        public static let inconsistentSnapshot = Code(raw: "inconsistent_snapshot")
        /// Any other read or write failure.
        public static let io = Code(raw: "io")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "error (\(code)): \(message)" }

    /// A failed system call on `path`, `ENOSPC`/`EDQUOT` as `insufficient_storage`.
    static func posix(_ what: String, _ path: String, errno e: Int32 = errno) -> BackupError {
        let text = String(cString: strerror(e))
        if e == ENOSPC || e == EDQUOT {
            return BackupError(.insufficientStorage, "no space left on the device writing \(path) (\(what)): \(text)")
        }
        return BackupError(.io, "cannot \(what) \(path): \(text)")
    }

    /// An SQLite error, `SQLITE_FULL` as `insufficient_storage`.
    static func sqlite(_ error: any Error, _ what: String, _ path: String) -> BackupError {
        if let e = error as? DatabaseError, e.resultCode == .SQLITE_FULL {
            return BackupError(.insufficientStorage, "no space left on the device (\(what) \(path)): \(e.message ?? "\(e)")")
        }
        if let e = error as? BackupError { return e }
        return BackupError(.io, "\(what) \(path) failed: \(error)")
    }
}
