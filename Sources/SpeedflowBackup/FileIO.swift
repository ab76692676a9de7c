import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// POSIX file work for backups: every write checked (so a full disk is `insufficient_storage`, not a short
/// file), every file and directory fsync'd before the backup or restore is renamed into place.
enum FileIO {
    static let chunk = 1 << 20

    /// Writes `data` to a new file `path` (fails if it exists), fsync'd; returns its SHA-256 (hex).
    @discardableResult
    static func write(_ data: Data, to path: String, mode: mode_t = 0o600) throws(BackupError) -> String {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .posix("create", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var done = 0
        while done < data.count {
            let n = min(chunk, data.count - done)
            let slice = data[(data.startIndex + done)..<(data.startIndex + done + n)]
            hasher.update(data: slice)
            try writeAll(fd, slice, path)
            done += n
        }
        guard fsync(fd) == 0 else { throw .posix("fsync", path) }
        return hex(hasher.finalize())
    }

    static func writeAll(_ fd: Int32, _ data: Data, _ path: String) throws(BackupError) {
        let failure: Int32? = data.withUnsafeBytes { raw -> Int32? in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { return ENOSPC }
                done += n
            }
            return nil
        }
        if let failure { throw .posix("write", path, errno: failure) }
    }

    /// Copies `source` to a new file `target` in chunks, hashing what it writes; `limit`: copy at most this many
    /// bytes (`nil`: to the end). Returns (bytes, SHA-256 hex).
    static func copy(_ source: String, to target: String, limit: Int? = nil, mode: mode_t = 0o600) throws(BackupError) -> (Int, String) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .posix("open", source) }
        defer { close(input) }
        return try copy(fd: input, source: source, to: target, limit: limit, mode: mode)
    }

    static func copy(fd input: Int32, source: String, to target: String, limit: Int?, mode: mode_t) throws(BackupError) -> (Int, String) {
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard output >= 0 else { throw .posix("create", target) }
        defer { close(output) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var total = 0
        while limit.map({ total < $0 }) ?? true {
            let want = min(chunk, (limit ?? Int.max) - total)
            let n = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, want, off_t(total)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("read", source)
            }
            if n == 0 { break }
            let data = Data(buffer[0..<n])
            hasher.update(data: data)
            try writeAll(output, data, target)
            total += n
        }
        guard fsync(output) == 0 else { throw .posix("fsync", target) }
        return (total, hex(hasher.finalize()))
    }

    /// SHA-256 (hex) and size of a file, read in chunks.
    static func hash(_ path: String) throws(BackupError) -> (Int, String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .posix("open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, chunk) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .posix("read", path)
            }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            total += n
        }
        return (total, hex(hasher.finalize()))
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    static func hex(of data: Data) -> String { hex(SHA256.hash(data: data)) }

    static func makeDirectory(_ path: String, mode: mode_t = 0o700) throws(BackupError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw .posix("create directory", path) }
    }

    static func fsyncPath(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Whether `path` is absent or an empty directory (a usable target).
    static func isAbsentOrEmpty(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return true }
        guard isDir.boolValue else { return false }
        return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? ["?"]).isEmpty
    }

    /// Files under `root` (relative paths, sorted), directories not listed; symbolic links are not followed.
    static func files(under root: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            var s = stat()
            guard lstat(root + "/" + rel, &s) == 0 else { continue }
            if (s.st_mode & S_IFMT) == S_IFREG { out.append(rel) }
        }
        return out.sorted()
    }

    /// A temporary sibling of `target` (same file system, so the final rename is atomic), hidden by its dot.
    static func sibling(of target: String, _ purpose: String) -> String {
        let url = URL(fileURLWithPath: target).standardizedFileURL
        let name = url.lastPathComponent
        return url.deletingLastPathComponent().appendingPathComponent(".\(name).\(purpose)-\(getpid())").path
    }

    /// Renames the finished temporary directory to `target` (an empty `target` directory is replaced).
    static func publish(_ temporary: String, as target: String) throws(BackupError) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDir) {
            guard isAbsentOrEmpty(target), rmdir(target) == 0 else {
                throw BackupError(.targetNotEmpty, "\(target) is not empty (it was when we started: someone wrote to it meanwhile)")
            }
        }
        guard rename(temporary, target) == 0 else { throw .posix("rename \(temporary) to", target) }
        fsyncPath((target as NSString).deletingLastPathComponent.isEmpty ? "." : (target as NSString).deletingLastPathComponent)
    }
}
