import ArgumentParser
import Configuration
import Foundation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowServer
import SystemPackage

/// Options shared by the commands that open a data directory.
struct StorageOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "JSON configuration file (keys are option names with underscores). Env: SPEEDFLOW_CONFIG.")
    var configFile: String?

    @Option(help: "Directory for the log segments and the SQLite store. Default: \(DataDirectory.defaultPath). Env: SPEEDFLOW_DATA_DIR.")
    var dataDir: String?

    @Option(help: "Lowest accepted speed, km/h; slower events are rejected (speed_out_of_range). Default: \(Settings.formatNumber(ValidationPolicy().minSpeed)). Env: SPEEDFLOW_MIN_SPEED.")
    var minSpeed: Double?

    @Option(help: "Highest plausible speed, km/h; faster events are rejected (speed_out_of_range). Default: \(Settings.formatNumber(ValidationPolicy().maxSpeed)).")
    var maxSpeed: Double?

    @Option(help: "How far ahead of the server clock an event may be (in_future beyond). Default: \(Settings.formatDuration(ValidationPolicy().maxClockSkewMs)).")
    var maxClockSkew: String?

    @Option(help: "How old an event may be (too_late beyond); also log retention and dedup memory. Default: \(Settings.formatDuration(ValidationPolicy().acceptanceHorizonMs)).")
    var acceptanceHorizon: String?

    @Option(help: "An event arriving more than this after the end of its 5-minute bucket is late (windows' late_count, revised_at). Default: \(Settings.formatDuration(EngineConfiguration().lateGraceMs)).")
    var lateGrace: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. Default: info.")
    var logLevel: String?
}

/// Resolves each setting from flag, then `SPEEDFLOW_*` environment, then the config file, then the default,
/// using swift-configuration for the environment and the file.
struct Settings {
    let reader: ConfigReader

    static func load(configFile: String?) async throws -> Settings {
        let env = ProcessInfo.processInfo.environment
        // SPEEDFLOW_MAX_SPEED → key "max_speed": strip the prefix so file keys and env names line up.
        var stripped: [String: String] = [:]
        for (k, v) in env where k.hasPrefix("SPEEDFLOW_") { stripped[String(k.dropFirst("SPEEDFLOW_".count))] = v }
        var providers: [any ConfigProvider] = [EnvironmentVariablesProvider(environmentVariables: stripped)]
        if let path = configFile ?? env["SPEEDFLOW_CONFIG"] {
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("configuration file not found: \(path)")
            }
            providers.append(try await FileProvider<JSONSnapshot>(filePath: FilePath(path)))
        }
        return Settings(reader: ConfigReader(providers: providers))
    }

    func string(_ key: String, _ flag: String?, default value: String) -> String {
        flag ?? reader.string(forKey: ConfigKey(key)) ?? value
    }

    func int(_ key: String, _ flag: Int?, default value: Int) throws -> Int {
        if let flag { return flag }
        if let s = reader.string(forKey: ConfigKey(key)) {
            guard let v = Int(s) else { throw ValidationError("\(key) must be an integer, not '\(s)'") }
            return v
        }
        return reader.int(forKey: ConfigKey(key)) ?? value
    }

    func double(_ key: String, _ flag: Double?, default value: Double) throws -> Double {
        if let flag { return flag }
        if let s = reader.string(forKey: ConfigKey(key)) {
            guard let v = Double(s) else { throw ValidationError("\(key) must be a number, not '\(s)'") }
            return v
        }
        return reader.double(forKey: ConfigKey(key)) ?? value
    }

    /// Durations like `500ms`, `30s`, `5m`, `1h`, `7d` (a bare number is seconds).
    func durationMs(_ key: String, _ flag: String?, default value: String) throws -> Int64 {
        let text = flag ?? reader.string(forKey: ConfigKey(key)) ?? reader.int(forKey: ConfigKey(key)).map(String.init) ?? value
        guard let ms = Self.parseDuration(text) else {
            throw ValidationError("\(key) must be a duration such as 500ms, 30s, 5m, 1h or 7d, not '\(text)'")
        }
        return ms
    }

    /// A duration whose default is the configuration struct's own (milliseconds).
    func durationMs(_ key: String, _ flag: String?, default ms: Int64) throws -> Int64 {
        try durationMs(key, flag, default: Self.formatDuration(ms))
    }

    /// A size whose default is the configuration struct's own (bytes).
    func bytes(_ key: String, _ flag: String?, default n: Int) throws -> Int {
        try bytes(key, flag, default: Self.formatBytes(n))
    }

    /// `1000` → `1s`, `250` → `250ms`, `300000` → `5m`: how defaults are shown in `--help`.
    static func formatDuration(_ ms: Int64) -> String {
        for (suffix, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms > 0 && ms % scale == 0 {
            return "\(ms / scale)\(suffix)"
        }
        return "\(ms)ms"
    }

    /// `300.0` → `300`, `0.5` → `0.5`.
    static func formatNumber(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v) }

    /// `67108864` → `64MiB`.
    static func formatBytes(_ n: Int) -> String {
        for (suffix, scale) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where n > 0 && n % scale == 0 {
            return "\(n / scale)\(suffix)"
        }
        return "\(n)"
    }

    static func parseDuration(_ text: String) -> Int64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let v = Double(number), v >= 0, !(suffix == "s" && number.hasSuffix("m")) { return Int64(v * scale) }
        }
        return Double(text).flatMap { $0 >= 0 ? Int64($0 * 1000) : nil }
    }

    /// Sizes like `64MiB`, `512KiB`, `1GiB` or plain bytes.
    func bytes(_ key: String, _ flag: String?, default value: String) throws -> Int {
        let text = flag ?? reader.string(forKey: ConfigKey(key)) ?? reader.int(forKey: ConfigKey(key)).map(String.init) ?? value
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let v = Int(text.dropLast(suffix.count)), v > 0 { return v * scale }
        }
        guard let v = Int(text), v > 0 else { throw ValidationError("\(key) must be a size such as 64MiB, not '\(text)'") }
        return v
    }

    func policy(_ o: StorageOptions) throws -> ValidationPolicy {
        let d = ValidationPolicy()
        let minSpeed = try double("min_speed", o.minSpeed, default: d.minSpeed)
        let maxSpeed = try double("max_speed", o.maxSpeed, default: d.maxSpeed)
        if let problem = ValidationPolicy.checkSpeedLimits(min: minSpeed, max: maxSpeed) { throw ValidationError(problem) }
        return ValidationPolicy(
            minSpeed: minSpeed,
            maxSpeed: maxSpeed,
            maxClockSkewMs: try durationMs("max_clock_skew", o.maxClockSkew, default: d.maxClockSkewMs),
            acceptanceHorizonMs: try durationMs("acceptance_horizon", o.acceptanceHorizon, default: d.acceptanceHorizonMs))
    }

    func dataDir(_ o: StorageOptions) -> String { string("data_dir", o.dataDir, default: DataDirectory.defaultPath) }

    func logLevel(_ o: StorageOptions) -> String { string("log_level", o.logLevel, default: "info") }

    /// The HTTP side, from the struct's defaults.
    func server(
        host: String?, port: Int?, maxBodySize: String? = nil, idleTimeout: String? = nil,
        connections: ConnectionOptions = ConnectionOptions(), tls: TLSOptions? = nil
    ) throws -> ServerConfiguration {
        let d = ServerConfiguration()
        let idle = try durationMs("idle_timeout", idleTimeout, default: d.idleTimeoutMs)
        guard idle > 0 else { throw ValidationError("idle_timeout must be more than 0 (e.g. 60s)") }
        return ServerConfiguration(
            host: string("host", host, default: d.host), port: try int("port", port, default: d.port),
            maxBodyBytes: try bytes("max_body_size", maxBodySize, default: d.maxBodyBytes), idleTimeoutMs: idle,
            connections: try self.connections(connections), tls: try tls.flatMap { try self.tls($0) })
    }

    func connections(_ o: ConnectionOptions) throws -> ConnectionLimits {
        let d = ConnectionLimits()
        let header = try durationMs("header_timeout", o.headerTimeout, default: d.headerTimeoutMs)
        guard header > 0 else { throw ValidationError("header_timeout must be more than 0 (e.g. 10s)") }
        let grace = try durationMs("body_timeout", o.bodyTimeout, default: d.bodyGraceMs)
        guard grace > 0 else { throw ValidationError("body_timeout must be more than 0 (e.g. 30s)") }
        let rate: Int
        if o.bodyMinRate == "0" || reader.string(forKey: ConfigKey("body_min_rate")) == "0" && o.bodyMinRate == nil {
            rate = 0
        } else {
            rate = try bytes("body_min_rate", o.bodyMinRate, default: d.bodyMinBytesPerSecond)
        }
        let max = try int("max_connections", o.maxConnections, default: d.maxConnections)
        guard max > 0 else { throw ValidationError("max_connections must be at least 1") }
        return ConnectionLimits(
            headerTimeoutMs: header, bodyGraceMs: grace, bodyMinBytesPerSecond: rate, maxConnections: max,
            lingerMs: d.lingerMs)
    }
}

/// What a connection may cost (`ConnectionLimits`): flags of every role that serves HTTP.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "A request head must be complete this long after its first byte, else 408 and the connection is closed. Default: \(Settings.formatDuration(ConnectionLimits().headerTimeoutMs)).")
    var headerTimeout: String?

    @Option(help: "Grace period of a request body before --body-min-rate applies to it (radio wake-up, handovers). Default: \(Settings.formatDuration(ConnectionLimits().bodyGraceMs)).")
    var bodyTimeout: String?

    @Option(help: "Slowest average body rate kept, bytes/s after the grace period (e.g. 4KiB; 0: no body deadline); slower bodies get 408 and the connection is closed. Default: \(Settings.formatBytes(ConnectionLimits().bodyMinBytesPerSecond)).")
    var bodyMinRate: String?

    @Option(help: "Open connections beyond which new ones get 503 too_many_connections and are closed (lowered to fit ulimit -n). Default: \(ConnectionLimits().maxConnections).")
    var maxConnections: Int?
}

extension Settings {

    /// TLS files: both certificate and key, or neither (plain HTTP); a client CA only with them.
    func tls(_ o: TLSOptions) throws -> ServerConfiguration.TLS? {
        let cert = flagOrSetting("tls_cert", o.tlsCert)
        let key = flagOrSetting("tls_key", o.tlsKey)
        let clientCA = flagOrSetting("tls_client_ca", o.tlsClientCa)
        switch (cert, key) {
        case (nil, nil):
            guard clientCA == nil else { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)") }
            return nil
        case (.some, nil): throw ValidationError("--tls-cert needs --tls-key too (the certificate's private key, PEM)")
        case (nil, .some): throw ValidationError("--tls-key needs --tls-cert too (the server certificate, PEM)")
        case (.some(let cert), .some(let key)):
            let d = ServerConfiguration.TLS(certificateFile: cert, keyFile: key)
            let interval = try durationMs("tls_reload_interval", o.tlsReloadInterval, default: d.reloadCheckIntervalMs)
            guard interval > 0 else { throw ValidationError("tls_reload_interval must be more than 0 (e.g. 5s)") }
            return ServerConfiguration.TLS(certificateFile: cert, keyFile: key, clientCAFile: clientCA, reloadCheckIntervalMs: interval)
        }
    }

    /// A setting without a default: flag, environment, file, or absent (an empty value is absent).
    func flagOrSetting(_ key: String, _ flag: String?) -> String? {
        guard let v = flag ?? reader.string(forKey: ConfigKey(key)), !v.isEmpty else { return nil }
        return v
    }
}

/// HTTPS for the roles that serve HTTP (`serve`, `api`, `ingest`).
struct TLSOptions: ParsableArguments {
    @Option(help: "Serve HTTPS with this PEM certificate (optionally followed by its intermediates). Needs --tls-key. Env: SPEEDFLOW_TLS_CERT.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert. Env: SPEEDFLOW_TLS_KEY.")
    var tlsKey: String?

    @Option(help: "Mutual TLS: PEM bundle of the CAs whose client certificates are accepted; clients without one are refused at the handshake. A certificate's SAN URIs urn:speedflow:kvfv:ID or urn:speedflow:kvfv:PREFIX* name the cameras it identifies. Env: SPEEDFLOW_TLS_CLIENT_CA.")
    var tlsClientCa: String?

    @Option(help: "How often the TLS files are checked for changes (a change, or SIGHUP, reloads them for new connections). Default: \(Settings.formatDuration(ServerConfiguration.TLS(certificateFile: "", keyFile: "").reloadCheckIntervalMs)).")
    var tlsReloadInterval: String?
}
