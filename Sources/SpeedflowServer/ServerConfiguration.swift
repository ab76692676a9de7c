/// HTTP-side settings.
public struct ServerConfiguration: Sendable {
    /// Address to bind. Default: 127.0.0.1.
    public var host: String
    /// Port to bind (0 = any free port). Default: 8080.
    public var port: Int
    /// Largest accepted request body, compressed or not, in bytes. Default: 64 MiB.
    public var maxBodyBytes: Int
    /// `Retry-After` seconds sent with 503 when overloaded. Default: 1.
    public var retryAfterSeconds: Int
    /// A connection that sends nothing for this long (before its first request, or between keep-alive
    /// requests) is closed, so held-open sockets cannot use up the process's file descriptors. Default: 60 s.
    public var idleTimeoutMs: Int64
    /// Header and body read deadlines, the connection limit, lingering close (see `ConnectionLimits`).
    public var connections: ConnectionLimits


    /// HTTPS instead of HTTP, optionally with client certificates. Default: none (plain HTTP).
    public var tls: TLS?

    /// `https` when TLS is on: for the banner and URLs the server prints.
    public var scheme: String { tls == nil ? "http" : "https" }

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 64 << 20, retryAfterSeconds: Int = 1,
        idleTimeoutMs: Int64 = 60_000, connections: ConnectionLimits = ConnectionLimits(), tls: TLS? = nil
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.retryAfterSeconds = retryAfterSeconds
        self.idleTimeoutMs = idleTimeoutMs
        self.connections = connections
        self.tls = tls
    }

    /// Where the server's certificate, key and (for mutual TLS) client CA live. Files, not contents, so they can
    /// be replaced and reloaded without a restart (`TLSCertificates`).
    public struct TLS: Sendable, Equatable {
        /// PEM certificate, optionally followed by its intermediates (leaf first). Required.
        public var certificateFile: String
        /// PEM private key of the certificate. Required.
        public var keyFile: String
        /// PEM bundle of the CAs whose client certificates are accepted; when set, every client must present one
        /// (mutual TLS). Default: none (no client certificates asked for).
        public var clientCAFile: String?
        /// How often the files' modification times are checked for a reload (SIGHUP reloads at once). Default: 5 s.
        public var reloadCheckIntervalMs: Int64

        public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil, reloadCheckIntervalMs: Int64 = 5000) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.clientCAFile = clientCAFile
            self.reloadCheckIntervalMs = reloadCheckIntervalMs
        }
    }
}
