import Foundation
import SpeedflowModel

#if canImport(Glibc)
import Glibc
#endif

/// The registry file: JSON, `{"format":1,"cameras":[…]}` (one camera a line, as `RegistryJSON` writes them),
/// mode 0644 (nothing in it is secret), replaced atomically (temporary file, fsync, rename, fsync of the
/// directory) under an exclusive `flock` on `<file>.lock`, so the CLI, a running server's API and other nodes
/// can all change it. The same discipline as the credentials file (`SpeedflowAuth.CredentialFile`).
public enum RegistryFile {
    public static let format = 1
    /// `<data dir>/cameras.json` unless `--registry` says otherwise.
    public static let defaultName = "cameras.json"

    /// The cameras in `path`, sorted by id; an absent file holds none.
    public static func load(_ path: String) throws(RegistryError) -> [CameraInfo] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw RegistryError("registry_unreadable", "cannot read the camera registry \(path): \(error.localizedDescription)")
        }
        let format: Int?
        do {
            struct Header: Decodable { var format: Int? }
            format = try JSONDecoder().decode(Header.self, from: data).format
        } catch {
            throw RegistryError("registry_corrupt", "the camera registry \(path) is not valid JSON")
        }
        guard format == Self.format else {
            throw RegistryError(
                "unsupported_format", "the camera registry \(path) has format \(format.map(String.init) ?? "none"); this binary reads format \(Self.format)")
        }
        do throws(RegistryError) {
            let cameras = try RegistryJSON.cameras(data)
            try checkUnique(cameras)
            return cameras.sorted { $0.kvfvId < $1.kvfvId }
        } catch {
            throw RegistryError("registry_corrupt", "the camera registry \(path) is not valid: \(error.message) (\(error.reason))")
        }
    }

    /// `duplicate_kvfv_id` if a camera is listed twice.
    static func checkUnique(_ cameras: [CameraInfo]) throws(RegistryError) {
        var seen = Set<String>()
        for c in cameras where !seen.insert(c.kvfvId).inserted {
            throw RegistryError("duplicate_kvfv_id", "camera \(c.kvfvId) is listed twice")
        }
    }

    /// The file's text for `cameras` (sorted by id).
    static func contents(_ cameras: [CameraInfo]) -> String {
        let sorted = cameras.sorted { $0.kvfvId < $1.kvfvId }
        return "{\"format\":\(format),\"cameras\":["
            + (sorted.isEmpty ? "" : "\n" + sorted.map { RegistryJSON.object($0, nowMs: nil) }.joined(separator: ",\n") + "\n") + "]}\n"
    }

    static func save(_ cameras: [CameraInfo], to path: String) throws(RegistryError) {
        let data = Data(contents(cameras).utf8)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RegistryError("registry_unwritable", "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            let problem = String(cString: strerror(errno))
            unlink(temporary)
            throw RegistryError("registry_unwritable", "cannot write \(path): \(problem)")
        }
        let directory = open(directoryOf(path), O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// Runs `body` holding the file's exclusive lock (other processes, and other `CameraRegistry` instances of
    /// this one, wait).
    static func withLock<T>(_ path: String, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        try? FileManager.default.createDirectory(atPath: directoryOf(path), withIntermediateDirectories: true)
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RegistryError("registry_unwritable", "cannot open \(path).lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw RegistryError("registry_unwritable", "cannot lock \(path).lock") }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Identity of the file's current version: inode, size and modification time (a rename changes the inode).
    static func fingerprint(_ path: String) -> [Int]? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return [Int(s.st_ino), Int(s.st_size), Int(s.st_mtim.tv_sec), Int(s.st_mtim.tv_nsec)]
    }

    static func directoryOf(_ path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }
}
