import Foundation
import SpeedflowEngine

#if canImport(Glibc)
import Glibc
#endif

/// `speedflow restore`: a new data directory from a backup, every file checked against the manifest.
public enum Restore {
    public struct Report: Sendable {
        public var manifest: BackupManifest
        public var directory: String
    }

    /// Restores the backup at `backup` into `target` (absent or an empty directory). Everything is checked before
    /// the target appears: the manifest's own checksum, the data format, every file's presence, size and SHA-256
    /// (as it is copied), no file beside them. The copy is built in a hidden sibling of `target` and renamed at the
    /// end: on any error nothing is left behind.
    public static func run(from backup: String, to target: String) throws(BackupError) -> Report {
        let targetPath = URL(fileURLWithPath: target).standardizedFileURL.path
        guard FileIO.isAbsentOrEmpty(targetPath) else {
            throw BackupError(.targetNotEmpty, "\(targetPath) exists and is not empty: restore into a new (or empty) directory")
        }
        let manifest = try BackupManifest.load(backup)
        try checkFormat(manifest, backup)
        // Cheap checks first (sizes, extra files), so a truncated backup is refused before anything is written.
        for f in manifest.files {
            var s = stat()
            guard stat(backup + "/" + f.path, &s) == 0 else {
                throw BackupError(.truncated, "\(f.path) is missing from \(backup) (the manifest lists \(f.size) bytes)")
            }
            if Int(s.st_size) < f.size {
                throw BackupError(.truncated, "\(backup)/\(f.path) has \(s.st_size) bytes, the manifest lists \(f.size): cut short")
            }
        }
        let listed = Set(manifest.files.map(\.path))
        for rel in FileIO.files(under: backup)
        where rel != BackupManifest.fileName && rel != BackupManifest.checksumFileName && !listed.contains(rel) {
            throw BackupError(.unexpectedFile, "\(backup)/\(rel) is not in the manifest (added after the backup was taken)")
        }

        let temporary = FileIO.sibling(of: targetPath, "restoring")
        try? FileManager.default.removeItem(atPath: temporary)
        try FileIO.makeDirectory(temporary, mode: 0o750)
        do {
            var directories: Set<String> = []
            for f in manifest.files {
                let dir = (f.path as NSString).deletingLastPathComponent
                if !dir.isEmpty && !directories.contains(dir) {
                    try FileManager.default.createDirectory(atPath: temporary + "/" + dir, withIntermediateDirectories: true)
                    directories.insert(dir)
                }
                var s = stat()
                let mode: mode_t = stat(backup + "/" + f.path, &s) == 0 ? s.st_mode & 0o777 : 0o600
                let (size, sha) = try FileIO.copy(backup + "/" + f.path, to: temporary + "/" + f.path, mode: mode)
                guard size == f.size && sha == f.sha256 else {
                    throw BackupError(
                        .checksumMismatch,
                        "\(backup)/\(f.path) differs from the backup as taken (\(size) bytes, SHA-256 \(sha.prefix(16))…; the manifest lists \(f.size) bytes, \(f.sha256.prefix(16))…); nothing was restored")
                }
            }
            if let text = try? String(contentsOfFile: temporary + "/FORMAT", encoding: .utf8),
                Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) != manifest.dataFormat
            {
                throw BackupError(.inconsistent, "the backup's FORMAT (\(text.trimmingCharacters(in: .whitespacesAndNewlines))) is not the manifest's data format \(manifest.dataFormat)")
            }
            for dir in directories { FileIO.fsyncPath(temporary + "/" + dir) }
            FileIO.fsyncPath(temporary)
            try FileIO.publish(temporary, as: targetPath)
        } catch let error as BackupError {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw BackupError(.io, "\(error)")
        }
        return Report(manifest: manifest, directory: targetPath)
    }

    static func checkFormat(_ manifest: BackupManifest, _ backup: String) throws(BackupError) {
        guard manifest.dataFormat <= DataDirectory.currentFormat else {
            throw BackupError(
                .newerFormat,
                "\(backup) holds a data directory of format \(manifest.dataFormat), written by a newer speedflow; this binary reads formats up to \(DataDirectory.currentFormat). Restore it with that version (downgrading is not supported)")
        }
    }
}
