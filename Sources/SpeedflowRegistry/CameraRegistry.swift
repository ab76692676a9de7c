import Foundation
import Logging
import ServiceLifecycle
import SpeedflowFiles
import Synchronization

/// A node's view of the camera registry file, like `CredentialStore` for credentials: answers lookups from
/// memory, follows the file as the CLI, the API or another node change it (`reloadIfChanged`, every second by
/// `RegistryWatcher`), and writes it under the file's lock, so writers on several nodes lose nothing.
public final class CameraRegistry: Sendable {
    public let path: String
    private struct State {
        var byId: [String: CameraInfo] = [:]
        /// `byId`'s values by id, kept sorted for `all()`.
        var sorted: [CameraInfo] = []
        var fingerprint: [Int]?
        var revision = 0
    }
    private let state = Mutex(State())

    /// Loads `path` (an absent file is an empty registry).
    public init(path: String) throws(RegistryError) {
        self.path = path
        _ = try reloadIfChanged()
    }

    public func info(_ kvfvId: String) -> CameraInfo? { state.withLock { $0.byId[kvfvId] } }

    /// Every registered camera, by id.
    public func all() -> [CameraInfo] { state.withLock { $0.sorted } }

    public var count: Int { state.withLock { $0.byId.count } }

    /// Goes up with every change this view has seen (its own writes and reloads), so caches and streams can
    /// tell that something changed without comparing entries.
    public var revision: Int { state.withLock { $0.revision } }

    /// Whether the file changed since it was last read; if so, reads it. A file that cannot be read or parsed
    /// throws and leaves the previous registry in force.
    @discardableResult
    public func reloadIfChanged() throws(RegistryError) -> Bool {
        let fingerprint = SharedFile.fingerprint(path)
        if fingerprint == state.withLock({ $0.fingerprint }) && state.withLock({ $0.revision }) > 0 { return false }
        let cameras = try RegistryFile.load(path)
        return adopt(cameras, fingerprint: fingerprint)
    }

    /// Adds or replaces one camera (validated first).
    public func put(_ info: CameraInfo) throws(RegistryError) {
        try put([info])
    }

    /// Adds or replaces several cameras: all of them or, on the first invalid one, none.
    public func put(_ infos: [CameraInfo]) throws(RegistryError) {
        let valid = try Self.validated(infos)
        try change { cameras in
            var byId = Dictionary(cameras.map { ($0.kvfvId, $0) }, uniquingKeysWith: { _, last in last })
            for info in valid { byId[info.kvfvId] = info }
            cameras = Array(byId.values)
        }
    }

    /// Makes `infos` the whole registry (an import with `--replace`): all of them or none.
    public func replaceAll(_ infos: [CameraInfo]) throws(RegistryError) {
        let valid = try Self.validated(infos)
        try change { cameras in cameras = valid }
    }

    /// Removes a camera; `false` if it was not registered.
    @discardableResult
    public func remove(_ kvfvId: String) throws(RegistryError) -> Bool {
        var removed = false
        try change { cameras in
            let before = cameras.count
            cameras.removeAll { $0.kvfvId == kvfvId }
            removed = cameras.count != before
        }
        return removed
    }

    static func validated(_ infos: [CameraInfo]) throws(RegistryError) -> [CameraInfo] {
        var valid: [CameraInfo] = []
        valid.reserveCapacity(infos.count)
        for info in infos {
            do throws(RegistryError) {
                valid.append(try info.validated())
            } catch {
                throw infos.count == 1 ? error : error.at("camera \(info.kvfvId.prefix(64))")
            }
        }
        try RegistryFile.checkUnique(valid)
        return valid
    }

    /// Read, change, write under the lock, from the file as it is now (not this view of it, which may be a
    /// second old), then adopt what was written.
    private func change(_ body: (inout [CameraInfo]) -> Void) throws(RegistryError) {
        let path = path
        let (cameras, fingerprint) = try RegistryFile.withLock(path) { () throws(RegistryError) -> ([CameraInfo], [Int]?) in
            var cameras = try RegistryFile.load(path)
            body(&cameras)
            cameras.sort { $0.kvfvId < $1.kvfvId }
            try RegistryFile.save(cameras, to: path)
            return (cameras, SharedFile.fingerprint(path))
        }
        adopt(cameras, fingerprint: fingerprint)
    }

    @discardableResult
    private func adopt(_ cameras: [CameraInfo], fingerprint: [Int]?) -> Bool {
        state.withLock {
            $0.byId = Dictionary(cameras.map { ($0.kvfvId, $0) }, uniquingKeysWith: { _, last in last })
            $0.sorted = cameras
            $0.fingerprint = fingerprint
            $0.revision += 1
        }
        return true
    }
}

/// Re-reads the registry file every `intervalMs` while the node runs, so a change made through another node
/// or the CLI is answered here within about a second.
public struct RegistryWatcher: Service {
    public static let defaultIntervalMs: Int64 = 1000
    let registry: CameraRegistry
    let intervalMs: Int64
    let logger: Logger

    public init(registry: CameraRegistry, intervalMs: Int64 = defaultIntervalMs, logger: Logger) {
        self.registry = registry
        self.intervalMs = intervalMs
        self.logger = logger
    }

    public func run() async throws {
        var lastError: String?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(intervalMs))
            do {
                if try registry.reloadIfChanged() {
                    logger.info("Camera registry reloaded", metadata: ["registry.cameras": "\(registry.count)"])
                }
                lastError = nil
            } catch {
                // Once per distinct problem, not every second; the previous registry stays in force.
                if lastError != error.message {
                    logger.error(
                        "Cannot reload the camera registry; the previous one stays in force",
                        metadata: ["reason": "\(error.reason)", "error": "\(error.message)"])
                    lastError = error.message
                }
            }
        }
    }
}
