import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small file that several processes change and follow: the credentials file and the camera registry.
///
/// Writers hold an exclusive `flock` on `<file>.lock` (`withLock`) and replace the file atomically (`replace`:
/// temporary file, fsync, rename, fsync of the directory), so concurrent writers on one machine lose nothing and
/// a reader sees either the old or the new file; readers notice a new version by its `fingerprint` without reading
/// it. Errors are the caller's own (`failure` turns a message into one), so each file keeps its reason codes.
public enum SharedFile {
    /// Runs `body` holding the exclusive lock of `path` (other processes, and other holders in this one, wait).
    /// Creates the lock file with `mode`, and the file's directory (with `directoryPermissions` if given) if missing.
    public static func withLock<T, E: Error>(
        _ path: String, mode: mode_t, directoryPermissions: Int? = nil, failure: (String) -> E,
        _ body: () throws(E) -> T
    ) throws(E) -> T {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: directoryPermissions.map { [.posixPermissions: $0] })
        }
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot open \(path).lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw failure("cannot lock \(path).lock") }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    /// Replaces `path` with `data` (file mode `mode`): written to `<path>.tmp`, fsync'd, renamed over `path`, and
    /// the directory fsync'd, so the file is either the old or the new one, also after a crash.
    public static func replace<E: Error>(_ path: String, with data: Data, mode: mode_t, failure: (String) -> E) throws(E) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            let problem = String(cString: strerror(errno))
            unlink(temporary)
            throw failure("cannot write \(path): \(problem)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dirFd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dirFd >= 0 {
            fsync(dirFd)
            close(dirFd)
        }
    }

    /// Identity of the file's current version: inode, size and modification time (a rename changes the inode);
    /// `nil` when there is no file.
    public static func fingerprint(_ path: String) -> [Int]? {
        var s = stat()
        guard stat(path, &s) == 0 else { return nil }
        return [Int(s.st_ino), Int(s.st_size), Int(s.st_mtim.tv_sec), Int(s.st_mtim.tv_nsec)]
    }
}
