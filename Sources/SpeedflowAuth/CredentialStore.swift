import Foundation
import Logging
import ServiceLifecycle
import SpeedflowFiles
import Synchronization

/// A node's view of the credentials file: checks presented tokens, and follows the file as the CLI, the admin
/// API or another node change it (`reloadIfChanged`, driven every second by `CredentialWatcher`), so a
/// revocation reaches every node reading the file within about a second, without a restart.
public final class CredentialStore: Sendable {
    public let path: String
    private struct State {
        var byId: [String: CredentialRecord] = [:]
        var fingerprint: [Int]?
    }
    private let state = Mutex(State())

    /// Loads `path` (an absent file is an empty set).
    public init(path: String) throws(CredentialError) {
        self.path = path
        _ = try reloadIfChanged()
    }

    /// Whether the file changed since it was last read; if so, reads it. A file that cannot be read or parsed
    /// throws and leaves the previous set in force.
    @discardableResult
    public func reloadIfChanged() throws(CredentialError) -> Bool {
        let fingerprint = SharedFile.fingerprint(path)
        if fingerprint == state.withLock({ $0.fingerprint }) { return false }
        let records = try CredentialFile.load(path)
        state.withLock {
            $0.byId = Dictionary(records.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
            $0.fingerprint = fingerprint
        }
        return true
    }

    /// The principal a bearer token stands for, or `nil` (unknown, malformed or revoked). The secret is
    /// compared by digest in constant time; an unknown id costs the same hash.
    public func authenticate(_ token: String) -> Principal? {
        guard let (id, secret) = Token.parse(token) else { return nil }
        let record = state.withLock { $0.byId[id] }
        guard let record else {
            _ = Token.matches(secret, storedHex: String(repeating: "0", count: 64))
            return nil
        }
        guard Token.matches(secret, storedHex: record.secretSHA256), !record.isRevoked else { return nil }
        return record.principal
    }

    /// The principal of an active (not revoked) credential: sessions check this on every request.
    public func principal(id: String) -> Principal? {
        state.withLock { $0.byId[id] }.flatMap { $0.isRevoked ? nil : $0.principal }
    }

    public var activeCount: Int { state.withLock { $0.byId.values.count { !$0.isRevoked } } }
}

/// Re-reads the credentials file every `intervalMs` while the node runs.
public struct CredentialWatcher: Service {
    public static let defaultIntervalMs: Int64 = 1000
    let store: CredentialStore
    let intervalMs: Int64
    let logger: Logger

    public init(store: CredentialStore, intervalMs: Int64 = defaultIntervalMs, logger: Logger) {
        self.store = store
        self.intervalMs = intervalMs
        self.logger = logger
    }

    public func run() async throws {
        var lastError: String?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(intervalMs))
            do {
                if try store.reloadIfChanged() {
                    logger.info("Credentials reloaded", metadata: ["credentials.active": "\(store.activeCount)"])
                }
                lastError = nil
            } catch {
                // Once per distinct problem, not every second; the previous set stays in force.
                if lastError != error.message {
                    logger.error("Cannot reload credentials; the previous set stays in force", metadata: ["reason": "\(error.reason)", "error": "\(error.message)"])
                    lastError = error.message
                }
            }
        }
    }
}
