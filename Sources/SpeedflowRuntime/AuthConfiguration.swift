import Logging
import ServiceLifecycle
import SpeedflowAuth
import SpeedflowServer

/// Who may use an HTTP role (`--auth`, `--credentials`, `--cors-origin`).
public struct AuthConfiguration: Sendable {
    /// `nil`: `required` unless the node binds a loopback address.
    public var mode: AuthMode?
    /// The credentials file the node checks tokens against and follows. `nil`: `<data dir>/credentials.json`.
    /// Scale-out nodes (ingest, api, aggregate) point this at one shared file.
    public var credentialsFile: String?
    /// Browser origins allowed to write cross-site. Default: none.
    public var allowedOrigins: [String] = []
    /// How often the credentials file is checked for changes (the bound on revocation reaching this node).
    public var reloadIntervalMs = CredentialWatcher.defaultIntervalMs
    /// Default rate limits of a credential (a credential's own, from `token create`, win) and of failed
    /// authentications per client address.
    public var limits = Quotas.Limits()

    public init() {}

    public func credentialsPath(dataDir: String) -> String { credentialsFile ?? dataDir + "/" + CredentialFile.defaultName }

    /// The node's access control and the service that keeps its credentials current. With auth required and no
    /// active credential, nothing but `/health` can be used: says so, with the command that makes the first one.
    func resolve(host: String, dataDir: String, secure: Bool, logger: Logger) throws -> (AccessControl, [ServiceGroupConfiguration.ServiceConfiguration]) {
        let mode = self.mode ?? AuthMode.defaultMode(host: host)
        let path = credentialsPath(dataDir: dataDir)
        if mode == .off {
            if !AuthMode.isLoopback(host) {
                logger.warning(
                    "Authentication is off on a non-loopback address: anyone who reaches \(host) can write events for any camera and read everything",
                    metadata: ["auth": "off", "host": "\(host)"])
            }
            return (AccessControl(mode: .off, credentials: nil, secureCookies: secure, allowedOrigins: Set(allowedOrigins), quotas: Quotas(limits: limits)), [])
        }
        let store: CredentialStore
        do {
            store = try CredentialStore(path: path)
        } catch {
            throw AuthStartupError(message: "\(error.message) (reason: \(error.reason))")
        }
        if store.activeCount == 0 {
            logger.warning(
                "Authentication is required and no credential exists yet: create one with `speedflow token create --role admin --credentials \(path)`",
                metadata: ["credentials": "\(path)"])
        } else {
            logger.info("Authentication required", metadata: ["credentials": "\(path)", "credentials.active": "\(store.activeCount)"])
        }
        let access = AccessControl(
            mode: .required, credentials: store, secureCookies: secure, allowedOrigins: Set(allowedOrigins), quotas: Quotas(limits: limits))
        return (access, [.init(service: CredentialWatcher(store: store, intervalMs: reloadIntervalMs, logger: logger))])
    }
}

public struct AuthStartupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
