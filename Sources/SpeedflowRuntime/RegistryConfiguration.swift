import Logging
import ServiceLifecycle
import SpeedflowRegistry

/// Where an HTTP role (`serve`, `api`) keeps its camera registry (`--registry`).
public struct RegistryConfiguration: Sendable {
    /// The registry file. `nil`: `<data dir>/cameras.json`. Scale-out api nodes point this at one shared file,
    /// as with `--credentials`.
    public var file: String?
    /// How often the file is checked for changes made elsewhere (the CLI, another node).
    public var reloadIntervalMs = RegistryWatcher.defaultIntervalMs

    public init(file: String? = nil) { self.file = file }

    public func path(dataDir: String) -> String { file ?? dataDir + "/" + RegistryFile.defaultName }

    /// The node's registry and the service that keeps it current. A file that cannot be read stops the start.
    func open(dataDir: String, logger: Logger) throws -> (CameraRegistry, ServiceGroupConfiguration.ServiceConfiguration) {
        let registry = try CameraRegistry(path: path(dataDir: dataDir))
        logger.info("Camera registry", metadata: ["registry": "\(registry.path)", "registry.cameras": "\(registry.count)"])
        return (registry, .init(service: RegistryWatcher(registry: registry, intervalMs: reloadIntervalMs, logger: logger)))
    }
}
