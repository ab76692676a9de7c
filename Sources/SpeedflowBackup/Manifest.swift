import Foundation

/// `manifest.json` of a backup: what it holds and how to check it. Beside it, `manifest.json.sha256` (in
/// `sha256sum` format) guards the manifest itself against damage.
public struct BackupManifest: Codable, Sendable {
    public struct File: Codable, Sendable, Equatable {
        /// Relative to the backup (and to the data directory it restores to).
        public var path: String
        public var size: Int
        public var sha256: String
    }

    public struct Store: Codable, Sendable {
        public var file: String
        /// The log offset the store had counted up to (its checkpoint): replay after a restore starts here.
        public var logOffset: UInt64
        /// GRDB migrations applied to it (its schema version).
        public var migrations: [String]

        enum CodingKeys: String, CodingKey {
            case file
            case logOffset = "log_offset"
            case migrations
        }
    }

    public struct Log: Codable, Sendable {
        public var start: UInt64
        /// The snapshot point: every record before this offset is in the backup (everything acknowledged before
        /// the log was read, `snapshotAt`).
        public var end: UInt64
        public var segments: Int
        /// Bytes of an append in progress (or torn) seen after `end` and left out.
        public var unacknowledgedTailBytes: Int

        enum CodingKeys: String, CodingKey {
            case start, end, segments
            case unacknowledgedTailBytes = "unacknowledged_tail_bytes"
        }
    }

    /// Version of this manifest's layout.
    public var backupFormat: Int
    /// The data directory's format (`FORMAT`).
    public var dataFormat: Int
    /// When the backup started, and when the log was read (its snapshot point). RFC 3339.
    public var startedAt: String
    public var snapshotAt: String
    public var finishedAt: String
    /// The data directory it was taken from (absolute).
    public var source: String
    public var store: Store?
    public var log: Log?
    public var files: [File]
    /// Damage found in the snapshot (copied as it was): empty for a sound data directory.
    public var damage: [String]

    public static let currentBackupFormat = 1
    public static let fileName = "manifest.json"
    public static let checksumFileName = "manifest.json.sha256"

    enum CodingKeys: String, CodingKey {
        case backupFormat = "backup_format"
        case dataFormat = "data_format"
        case startedAt = "started_at"
        case snapshotAt = "snapshot_at"
        case finishedAt = "finished_at"
        case source, store, log, files, damage
    }

    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// Reads and checks the manifest of the backup at `directory` (its checksum, then its JSON and version).
    public static func load(_ directory: String) throws(BackupError) -> BackupManifest {
        let path = directory + "/" + fileName
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw BackupError(.incomplete, "\(directory) does not exist or is not a directory")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BackupError(
                .incomplete, "\(directory) has no \(fileName): not a speedflow backup, or one cut short before it finished")
        }
        guard let sum = FileManager.default.contents(atPath: directory + "/" + checksumFileName) else {
            throw BackupError(.incomplete, "\(directory) has no \(checksumFileName): the backup was cut short before it finished")
        }
        let expected = String(decoding: sum, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
        guard expected == FileIO.hex(of: data) else {
            throw BackupError(.manifestDamaged, "\(path) does not match its SHA-256 in \(checksumFileName): the manifest was changed or damaged")
        }
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: data)
        } catch {
            throw BackupError(.manifestDamaged, "\(path) is not a valid manifest: \(error)")
        }
        guard manifest.backupFormat <= currentBackupFormat else {
            throw BackupError(
                .newerFormat,
                "\(directory) was written by a newer speedflow (backup format \(manifest.backupFormat); this binary reads up to \(currentBackupFormat))")
        }
        return manifest
    }

    /// Checks every file against the manifest: present, the listed size, the listed SHA-256, and nothing else.
    /// Returns the problems found (each with its reason code), all of them.
    public func verifyFiles(in directory: String) -> [BackupError] {
        var problems: [BackupError] = []
        let listed = Set(files.map(\.path))
        for f in files {
            let path = directory + "/" + f.path
            var s = stat()
            guard stat(path, &s) == 0 else {
                problems.append(BackupError(.truncated, "\(f.path) is missing (the manifest lists \(f.size) bytes)"))
                continue
            }
            if Int(s.st_size) < f.size {
                problems.append(BackupError(.truncated, "\(f.path) has \(s.st_size) bytes, the manifest lists \(f.size): cut short"))
                continue
            }
            do {
                let (size, sha) = try FileIO.hash(path)
                if size != f.size || sha != f.sha256 {
                    problems.append(
                        BackupError(
                            .checksumMismatch,
                            "\(f.path) differs from the backup as taken (\(size) bytes, SHA-256 \(sha.prefix(16))…; the manifest lists \(f.size) bytes, \(f.sha256.prefix(16))…)"))
                }
            } catch {
                problems.append(error)
            }
        }
        for rel in FileIO.files(under: directory) where rel != Self.fileName && rel != Self.checksumFileName && !listed.contains(rel) {
            problems.append(BackupError(.unexpectedFile, "\(rel) is not in the manifest (added after the backup was taken)"))
        }
        return problems
    }
}
