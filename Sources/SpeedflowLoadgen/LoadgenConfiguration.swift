/// Everything a `speedflow loadgen` run needs; fields document their defaults.
public struct LoadgenConfiguration: Sendable {
    /// How events are packed into requests.
    public enum Mode: String, Sendable, CaseIterable, Codable {
        /// One event per `POST /events`, like the k6 script of seed 000.
        case single
        /// `batchSize` events per request, NDJSON or a JSON array (`batchFormat`).
        case batch
    }

    /// Body encoding of batch requests.
    public enum BatchFormat: String, Sendable, CaseIterable, Codable {
        case ndjson
        case array
    }

    /// The HTTP client that sends events.
    public enum HTTPClientKind: String, Sendable, CaseIterable, Codable {
        /// One pre-encoded keep-alive HTTP/1.1 connection per worker on SwiftNIO: the cheapest client,
        /// so the server gets the CPU on a shared machine. `http://` only.
        case raw
        /// AsyncHTTPClient with a connection pool (also `https://`).
        case asyncHTTPClient = "async-http-client"
    }

    /// What carries the events.
    public enum Transport: String, Sendable, CaseIterable, Codable {
        /// `POST /events` (with `httpClient`).
        case http
        /// MQTT 5 PUBLISH at QoS 1 to `speedflow/v1/events/{kvfv_id}` on `mqttURL`, PUBACK as the acknowledgement.
        /// Status reports, queries and `--verify` still go over HTTP (`url`).
        case mqtt
    }

    /// Default: `.http`.
    public var transport: Transport = .http
    /// Speedflow's MQTT listener (`serve --mqtt-port`), `mqtt://host:port`. Default: `url`'s host, port 1883.
    public var mqttURL: String {
        get { _mqttURL ?? "mqtt://\(RawHTTPTransport.endpoint(of: url)?.host ?? "127.0.0.1"):1883" }
        set { _mqttURL = newValue }
    }
    private var _mqttURL: String?
    /// Default: `.raw` (falls back to AsyncHTTPClient for `https://`).
    public var httpClient: HTTPClientKind = .raw
    /// Base URL of the server. Default: `http://127.0.0.1:8080`.
    public var url: String = "http://127.0.0.1:8080"
    /// PEM CA bundle trusted for `https://` URLs instead of the system's CAs (`--cacert`). Default: none.
    public var caCertificateFile: String?
    /// Token for every request (`--token-file`): an admin token writes for any camera and reads; a reader
    /// token only reads (then give `cameraTokens` for the writes). Default: none (`--auth off` servers).
    public var token: String?
    /// Per-camera write tokens (`--camera-tokens FILE`: `kvfv_id token` lines); a camera without one uses `token`.
    public var cameraTokens: [String: String] = [:]

    /// `Authorization` value for writes of `camera`, and for reads.
    func authorization(forCamera camera: String) -> String? { (cameraTokens[camera] ?? token).map { "Bearer " + $0 } }
    var readAuthorization: String? { token.map { "Bearer " + $0 } }

    /// Where queries go (freshness probe, `--verify`): an API node in a scale-out deployment. Default: `url`.
    public var queryURL: String?
    /// The target is a stateless ingest node (dedup happens downstream): answers count every valid event as
    /// accepted and none as duplicate; exactness is still checked by `--verify` on the query side.
    public var statelessIngest = false
    /// How long `--verify` keeps re-checking until the windows match (for asynchronous pipelines). Default: 0.
    public var verifyWait: Duration = .zero
    /// Number of simulated cameras. Default: 1,000.
    public var cameras: Int = 1000
    /// Camera id prefix; ids are the prefix and a 5-digit number (`KV00001`).
    /// Use a fresh prefix to `--verify` against a server that already holds other data. Default: `KV`.
    public var cameraPrefix: String = "KV"
    /// Default: `.single`.
    public var mode: Mode = .single
    /// Events per request in batch mode. Default: 500.
    public var batchSize: Int = 500
    /// Default: `.ndjson`.
    public var batchFormat: BatchFormat = .ndjson
    /// Target rate in events per second over the whole fleet; nil sends as fast as the server answers.
    /// Default: nil (max rate).
    public var rate: Double? = nil
    /// Stop generating new events after this long. Default: 60 s.
    public var duration: Duration? = .seconds(60)
    /// Stop generating after this many new events (whichever limit comes first). Default: nil.
    public var eventCount: Int? = nil
    /// Requests in flight at once; each worker owns a share of the cameras (a camera has one link).
    /// Default: 64.
    public var concurrency: Int = 64
    /// Per-request timeout; a timed-out request is resent unchanged. Default: 10 s.
    public var requestTimeout: Duration = .seconds(10)
    /// After generation stops, how long to keep flushing backlogs and resending unacknowledged
    /// requests before giving up (events left are reported as unacknowledged). Default: 120 s.
    public var drainTimeout: Duration = .seconds(120)

    /// Share of cameras that go offline once during the run. Default: 0.05.
    public var outageShare: Double = 0.05
    /// How long an offline camera stays offline (real time). Default: 10 s.
    public var outageDuration: Duration = .seconds(10)
    /// How far back the flushed backlog reaches: the camera had been cut off this long before.
    /// Must stay under the 7-day acceptance horizon. Default: 6 h.
    public var backlogAge: Duration = .seconds(6 * 3600)
    /// Historical events in each backlog flush, spread over `backlogAge` by the daily profile. Default: 600.
    public var backlogEvents: Int = 600
    /// Share of events sent again later on their own or inside another request (resent single events). Default: 0.01.
    public var duplicateShare: Double = 0.01
    /// Share of answered requests whose answer is "lost", so the same bytes are sent again. Default: 0.005.
    public var lostAckShare: Double = 0.005
    /// Share of requests sent with a tiny client timeout (0.1–3 ms), abandoned mid-flight and resent. Default: 0.002.
    public var timeoutShare: Double = 0.002
    /// Share of events that are invalid, cycling through every rejection reason. Default: 0.01.
    public var invalidShare: Double = 0.01
    /// Share of batches that carry one event twice. Default: 0.05.
    public var inBatchDuplicateShare: Double = 0.05
    /// Shuffle the events of each batch (links reorder, backlogs are flushed out of order). Default: true.
    public var shuffle: Bool = true
    /// Camera clocks are skewed uniformly within ±this; keep well under the server's 5-minute limit. Default: 20 s.
    public var maxClockSkew: Duration = .seconds(20)
    /// Share of cameras that stamp local time with a `+03:00` offset instead of `Z`. Default: 0.3.
    public var offsetTimestampShare: Double = 0.3

    /// Number every recorded pass with `seq` (per camera, from a random start; `seq_epoch` after a counter
    /// restart) and send status reports, so `--verify` also checks gaps, backlogs, `complete` and `missing`.
    /// Default: true.
    public var sequenced: Bool = true
    /// Share of recorded passes lost for good (never sent): gaps the server must list. Default: 0.005.
    public var lossShare: Double = 0.005
    /// Each numbering camera reports its newest recorded pass (`POST /kvfv/{id}/status`) this often while online,
    /// first at a random point of the first interval; also when it comes back from an outage (before flushing)
    /// and at the end of the run. Zero: no reports at all. Default: 5 s.
    public var statusInterval: Duration = .seconds(5)
    /// Share of numbering cameras whose counter restarts once during the run (a higher `seq_epoch`, numbers
    /// from 0 again). Default: 0.05.
    public var counterRestartShare: Double = 0.05
    /// Share of numbering cameras that end the run holding 1–5 recorded passes they have not sent (and report):
    /// the backlog `--verify` expects. Default: 0.1.
    public var pendingShare: Double = 0.1
    /// The server's grace period: an event arriving more than this after the end of its 5-minute bucket is
    /// late (`late_count`). Default: 5 min, as the server.
    public var lateGrace: Duration = .seconds(300)
    /// How far the server's clock may be off this machine's: an event whose request reached the server within this
    /// (plus the request's flight time) of its grace deadline is "ambiguous", and `late_count` is checked as a
    /// range for its window. Default: 1 s.
    public var clockTolerance: Duration = .seconds(1)

    /// Seed of the simulation (traffic, flaws, schedule). Default: random.
    public var seed: UInt64 = UInt64.random(in: 0...UInt64.max)
    /// Tag inside every event id, so runs never collide on identities. Default: random 6 hex digits.
    public var runTag: String = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
    /// How often one acked event is probed for freshness (ack → visible in a query); nil disables. Default: 1 s.
    public var freshnessInterval: Duration? = .seconds(1)
    /// After the run, compare every 5-minute window of every camera with the acknowledged events.
    /// Default: false.
    public var verify: Bool = false
    /// Print the live progress line every second on stderr. Default: true.
    public var progress: Bool = true

    public init() {}

    /// Throws a readable error for settings that cannot produce a meaningful run.
    public func validate() throws(LoadgenError) {
        func fail(_ message: String) -> LoadgenError { LoadgenError(.invalidConfiguration, message) }
        guard cameras >= 1, cameras <= 99_999 else { throw fail("cameras must be 1...99999") }
        guard concurrency >= 1 else { throw fail("concurrency must be at least 1") }
        guard batchSize >= 1 else { throw fail("batch size must be at least 1") }
        if let rate { guard rate > 0 else { throw fail("rate must be positive") } }
        guard duration != nil || eventCount != nil else { throw fail("give a duration or an event count") }
        guard backlogAge < .seconds(6 * 86_400 + 12 * 3600) else {
            throw fail("backlog age must stay under 6.5 days (the server drops events older than 7 days)")
        }
        guard maxClockSkew < .seconds(240) else {
            throw fail("clock skew must stay under 4 minutes (the server rejects events 5 minutes ahead)")
        }
        for (name, share) in [("outage", outageShare), ("duplicate", duplicateShare), ("lost-ack", lostAckShare),
                              ("timeout", timeoutShare), ("invalid", invalidShare),
                              ("in-batch duplicate", inBatchDuplicateShare), ("offset timestamp", offsetTimestampShare),
                              ("loss", lossShare), ("counter restart", counterRestartShare), ("pending", pendingShare)] {
            guard share >= 0, share <= 1 else { throw fail("\(name) share must be within 0...1") }
        }
        guard cameraPrefix.utf8.allSatisfy({ $0 < 128 && ($0 == 45 || $0 == 46 || $0 == 95 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)) }),
              cameraPrefix.utf8.count <= 40
        else { throw fail("camera prefix must be up to 40 characters of [A-Za-z0-9._-]") }
        guard lossShare < 1 else { throw fail("loss share must stay under 1 (some passes must arrive)") }
        guard statusInterval >= .zero, clockTolerance >= .zero, lateGrace >= .zero else {
            throw fail("status interval, clock tolerance and late grace must not be negative")
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw fail("url must start with http:// or https://") }
        if transport == .mqtt {
            guard MQTTEventTransport.endpoint(of: mqttURL) != nil else { throw fail("mqtt url must be mqtt://host[:port]") }
        }
    }
}

/// An error of the load generator, with a stable code.
public struct LoadgenError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        public static let serverUnreachable = Code(name: "server_unreachable")
        public static let unexpectedResponse = Code(name: "unexpected_response")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
