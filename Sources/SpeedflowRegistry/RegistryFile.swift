import Foundation
import SpeedflowFiles
import SpeedflowModel

/// The registry file: JSON, `{"format":1,"cameras":[…]}` (one camera a line, as `RegistryJSON` writes them),
/// mode 0644 (nothing in it is secret), replaced atomically (temporary file, fsync, rename, fsync of the
/// directory) under an exclusive `flock` on `<file>.lock` (`SharedFile`, as the credentials file), so the CLI, a
/// running server's API and other nodes can all change it.
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
        try SharedFile.replace(path, with: Data(contents(cameras).utf8), mode: 0o644, failure: unwritable)
    }

    /// Runs `body` holding the file's exclusive lock (other processes, and other `CameraRegistry` instances of
    /// this one, wait).
    static func withLock<T>(_ path: String, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        try SharedFile.withLock(path, mode: 0o644, failure: unwritable, body)
    }

    static func unwritable(_ message: String) -> RegistryError { RegistryError("registry_unwritable", message) }
}
