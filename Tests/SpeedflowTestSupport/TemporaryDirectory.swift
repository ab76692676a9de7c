import Foundation

/// A new, empty directory under the system temporary directory (`<prefix>-<UUID>`); the caller removes it.
public func temporaryDirectory(_ prefix: String = "speedflow-test") -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A copy of `dir` in a new temporary directory, e.g. to reopen a store from a fresh path.
public func temporaryDirectoryCopy(of dir: URL) throws -> URL {
    let copy = temporaryDirectory()
    try FileManager.default.removeItem(at: copy)
    try FileManager.default.copyItem(at: dir, to: copy)
    return copy
}
