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

    public init(
        host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 64 << 20, retryAfterSeconds: Int = 1,
        idleTimeoutMs: Int64 = 60_000, connections: ConnectionLimits = ConnectionLimits()
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.retryAfterSeconds = retryAfterSeconds
        self.idleTimeoutMs = idleTimeoutMs
        self.connections = connections
    }
}
