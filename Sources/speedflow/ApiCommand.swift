import ArgumentParser
import SpeedflowRuntime
import SpeedflowServer

struct ApiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "Query API and dashboard on top of the store that aggregators write (no ingest).",
        discussion: """
            Answers GET /kvfv/{id}/avg-speed, /kvfv, the dashboard, /metrics from the store (ClickHouse, or a \
            SQLite store written by a single aggregator). Cameras new to the store appear within a second. \
            POST /events answers 404 not_served_here: send events to an ingest node.
            """)

    @OptionGroup var storage: StorageOptions
    @OptionGroup var storeOptions: StoreOptions

    @OptionGroup(title: "Access") var access: AuthOptions

    @OptionGroup(title: "Camera registry") var registryOptions: RegistryOptions

    @Option(help: "Address to bind. Default: \(ServerConfiguration().host).") var host: String?
    @Option(help: "Port; 0 picks a free port. Default: \(ServerConfiguration().port).") var port: Int?
    @Option(help: "A connection that sends nothing for this long is closed. Default: \(Settings.formatDuration(ServerConfiguration().idleTimeoutMs)).")
    var idleTimeout: String?
    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup(title: "Connections") var connections: ConnectionOptions

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let observability = Observability.bootstrap(logLevel: settings.logLevel(storage))
        var c = APIConfiguration()
        c.dataDir = settings.dataDir(storage)
        c.store = try settings.store(storeOptions)
        c.engine = try settings.engine(storage)
        c.server = try settings.server(host: host, port: port, idleTimeout: idleTimeout, connections: connections, tls: tls)
        c.auth = try settings.auth(access)
        c.registry = settings.registry(registryOptions)
        try await Roles.api(c, observability)
    }
}
