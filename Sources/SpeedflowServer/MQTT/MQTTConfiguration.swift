/// The MQTT listener's settings (`serve --mqtt-port`). It binds the HTTP host, and speaks TLS when HTTP does, with
/// the same certificate (and, with `--tls-client-ca`, the same client certificates).
public struct MQTTConfiguration: Sendable, Equatable {
    /// Port to bind; 0 picks a free port (printed on stdout). Conventionally 1883, 8883 with TLS.
    public var port: Int
    /// Largest packet a client may send, fixed header included; a larger one ends the connection (MQTT 5:
    /// DISCONNECT 0x95) before its body is read, so it bounds what one connection buffers. MQTT 5 clients are
    /// told in CONNACK. The payload after gunzip is bounded by the HTTP `--max-body-size`. Default: 8 MiB.
    public var maxPacketBytes: Int
    /// PUBLISH packets of one connection being made durable at once; at this many (or `maxInflightBytes`) the
    /// connection is not read until one is acknowledged (backpressure; MQTT 5 clients are told as Receive
    /// Maximum). Default: 32.
    public var maxInflight: Int
    /// Payload bytes of one connection's PUBLISH packets being made durable at once (see `maxInflight`).
    /// Default: 32 MiB.
    public var maxInflightBytes: Int
    /// A connection must send CONNECT within this long. Default: 10 s.
    public var connectTimeoutMs: Int64
    /// Open MQTT connections beyond which new ones are closed at once. Default: 10,000.
    public var maxConnections: Int
    /// Longest a persistent session (3.1.1 clean session 0; 5 session expiry interval) is kept after its
    /// connection ends (MQTT 5 clients asking for longer are told this in CONNACK). Sessions are kept in memory
    /// (subscriptions only: Speedflow sends nothing at QoS 1, and received QoS 1/2 messages need no state, see
    /// README "MQTT ingest"). Default: 1 day.
    public var maxSessionExpirySeconds: UInt32
    /// Stored sessions beyond which the ones expiring first are dropped. Default: 100,000.
    public var maxStoredSessions: Int

    public init(
        port: Int = 1883, maxPacketBytes: Int = 8 << 20, maxInflight: Int = 32, maxInflightBytes: Int = 32 << 20,
        connectTimeoutMs: Int64 = 10_000, maxConnections: Int = 10_000, maxSessionExpirySeconds: UInt32 = 86_400,
        maxStoredSessions: Int = 100_000
    ) {
        self.port = port
        self.maxPacketBytes = maxPacketBytes
        self.maxInflight = maxInflight
        self.maxInflightBytes = maxInflightBytes
        self.connectTimeoutMs = connectTimeoutMs
        self.maxConnections = maxConnections
        self.maxSessionExpirySeconds = maxSessionExpirySeconds
        self.maxStoredSessions = maxStoredSessions
    }
}
