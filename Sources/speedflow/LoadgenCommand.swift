import ArgumentParser
import Foundation
import Logging
import SpeedflowLoadgen

/// `speedflow loadgen`: thin CLI over `SpeedflowLoadgen`; parses options into a `LoadgenConfiguration`, whose
/// defaults are the options' defaults (shown by `--help`).
struct LoadgenCommand: AsyncParsableCommand {
    private static let defaults = LoadgenConfiguration()

    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Simulate a fleet of speed cameras on bad links against a running server, and verify it exactly.",
        discussion: """
            Each simulated camera has its own road (base speed), lanes, clock skew and daily profile (rush hours \
            slow and dense, nights fast and sparse), numbers its events (event_id) and sends them in order over \
            its own link. Links are bad on purpose: cameras go offline and then flush hours of backlog, answers \
            are "lost" so whole batches are resent, requests are abandoned by short timeouts and resent, \
            acknowledged events are resent alone, batches are shuffled and carry repeats, and a share of events \
            is invalid, cycling through every rejection reason. A request that failed (timeout, 5xx, dropped \
            connection) is resent until it is acknowledged, so at the end the server's state is known exactly.

            Live progress goes to stderr once a second; the report (text, or --json) goes to stdout: requests, \
            events accepted / duplicates / rejected by reason, HTTP errors, throughput, latency p50/p95/p99/max \
            (HdrHistogram), and freshness (time from an event's acknowledgement to its first appearance in a \
            query answer, sampled once a second).

            With --seq (the default) cameras number their passes from a random start, lose a share for good \
            (--loss), may restart their counter (a higher seq_epoch), report their newest recorded pass now and \
            then (POST /kvfv/{id}/status), and some end the run holding passes they reported but never sent.

            --verify then compares every 5-minute window of every camera with an independent oracle built from \
            what the server acknowledged (count exact, average and harmonic mean to 1e-9 relative, min and max \
            exact, late_count exact where lateness is decidable, revised_at within --clock-tolerance, complete and \
            missing exact) and, for numbering cameras, every gap and the backlog of GET /kvfv/{id}/gaps. Use it \
            against a fresh data directory, or give a --camera-prefix no other data uses.

            Ctrl-C ends generation early; the fleet still flushes and resends, and the report is printed.

            Exit status: 0 if every answer kept the contract (and --verify matched), 1 otherwise.

            Examples (seed 000's scenario, a batch scenario, a small fleet on very bad links):
              speedflow loadgen --duration 3m --verify
              speedflow loadgen --mode batch --batch-size 500 --duration 1m --verify
              speedflow loadgen --cameras 20 --events 20000 --outage-share 0.5 --outage 2s --verify
              speedflow loadgen --transport mqtt --mqtt-url mqtt://127.0.0.1:1883 --duration 1m --verify
            """)

    @Option(help: "Base URL of the server.")
    var url = LoadgenCommand.defaults.url

    @Option(name: .customLong("cacert"), help: "PEM CA bundle to trust for an https:// --url / --query-url (a server with --tls-cert); default: the system's CAs.")
    var caCertificate: String?

    @Option(help: "Base URL for queries (freshness probe, --verify) when it differs from --url: an `speedflow api` node in a scale-out deployment.")
    var queryUrl: String?

    @Option(help: "File holding a token (speedflow token create) sent with every request: an admin token writes for any camera and reads; a reader token only reads (then give --camera-tokens). Env: SPEEDFLOW_LOADGEN_TOKEN_FILE.")
    var tokenFile: String?

    @Option(help: "File of per-camera write tokens, one 'kvfv_id token' per line (cameras without one use --token-file).")
    var cameraTokens: String?

    @Flag(help: "--url is a stateless `speedflow ingest` node: its answers count every valid event as accepted (dedup happens in the aggregators); --verify still checks exactness.")
    var statelessIngest = false

    @Option(help: "With --verify: keep re-checking for up to this long until every window matches (a scale-out chain aggregates after the acknowledgement).")
    var verifyWait = DurationArgument(LoadgenCommand.defaults.verifyWait)

    @Option(help: "Number of simulated cameras.")
    var cameras = LoadgenCommand.defaults.cameras

    @Option(help: "Camera id prefix (ids are the prefix and 5 digits, e.g. KV00001).")
    var cameraPrefix = LoadgenCommand.defaults.cameraPrefix

    @Option(help: "single: one event per request (like k6 in seed 000); batch: --batch-size events per request.")
    var mode = LoadgenCommand.defaults.mode

    @Option(help: "Events per request in batch mode.")
    var batchSize = LoadgenCommand.defaults.batchSize

    @Option(help: "Batch body: ndjson (application/x-ndjson) or array (a JSON array).")
    var batchFormat = LoadgenCommand.defaults.batchFormat

    @Option(help: "Target rate in events per second over the whole fleet (default: as fast as the server answers).")
    var rate: Double?

    @Option(help: "Stop generating new events after this long (e.g. 90s, 3m, 1h). Default: 60s unless --events is given.")
    var duration: DurationArgument?

    @Option(name: .customLong("events"), help: "Stop generating after this many new events (whichever limit comes first).")
    var eventCount: Int?

    @Option(help: "http: POST /events; mqtt: MQTT 5 PUBLISH at QoS 1 to speedflow/v1/events/{kvfv_id} on --mqtt-url, one connection per link, PUBACK as the acknowledgement (status reports and --verify still use --url).")
    var transport = LoadgenCommand.defaults.transport

    @Option(help: "The server's MQTT listener for --transport mqtt (serve --mqtt-port). Default: mqtt://<host of --url>:1883.")
    var mqttUrl: String?

    @Option(help: "raw: one pre-encoded keep-alive HTTP/1.1 connection per link on SwiftNIO (cheapest, http:// only); async-http-client: AsyncHTTPClient's pool.")
    var httpClient = LoadgenCommand.defaults.httpClient

    @Option(help: "Requests in flight at once (keep-alive connections); each link owns a share of the cameras.")
    var concurrency = LoadgenCommand.defaults.concurrency

    @Option(help: "Per-request timeout; a timed-out request is resent unchanged.")
    var timeout = DurationArgument(LoadgenCommand.defaults.requestTimeout)

    @Option(help: "After generation stops, how long to keep flushing and resending before giving up.")
    var drainTimeout = DurationArgument(LoadgenCommand.defaults.drainTimeout)

    @Option(help: "Share of cameras that go offline once during the run (0...1).")
    var outageShare = LoadgenCommand.defaults.outageShare

    @Option(name: .customLong("outage"), help: "How long an offline camera stays offline.")
    var outageDuration = DurationArgument(LoadgenCommand.defaults.outageDuration)

    @Option(help: "How far back a flushed backlog reaches (under 6.5 days; the server keeps 7).")
    var backlogAge = DurationArgument(LoadgenCommand.defaults.backlogAge)

    @Option(help: "Historical events in each backlog flush, spread over --backlog-age by the daily profile.")
    var backlogEvents = LoadgenCommand.defaults.backlogEvents

    @Option(help: "Share of events resent later on their own or inside another request (0...1).")
    var duplicateShare = LoadgenCommand.defaults.duplicateShare

    @Option(help: "Share of answered requests whose answer is treated as lost, so the same bytes are resent (0...1).")
    var lostAckShare = LoadgenCommand.defaults.lostAckShare

    @Option(help: "Share of requests sent with a tiny timeout (0.1-3 ms), abandoned and resent (0...1).")
    var timeoutShare = LoadgenCommand.defaults.timeoutShare

    @Option(help: "Share of invalid events, cycling through every rejection reason (0...1).")
    var invalidShare = LoadgenCommand.defaults.invalidShare

    @Option(help: "Share of batches that carry one event twice (0...1).")
    var inBatchDuplicateShare = LoadgenCommand.defaults.inBatchDuplicateShare

    @Flag(inversion: .prefixedNo, help: "Shuffle the events of each batch.")
    var shuffle = LoadgenCommand.defaults.shuffle

    @Option(help: "Camera clocks are skewed uniformly within +/- this (keep under the server's 5 min).")
    var maxClockSkew = DurationArgument(LoadgenCommand.defaults.maxClockSkew)

    @Flag(name: .customLong("seq"), inversion: .prefixedNo, help: "Number every recorded pass (seq, seq_epoch after a counter restart) and send status reports; --verify then also checks gaps, backlogs, complete and missing.")
    var sequenced = LoadgenCommand.defaults.sequenced

    @Option(name: .customLong("loss"), help: "Share of recorded passes lost for good, never sent (0...1): gaps the server must list.")
    var lossShare = LoadgenCommand.defaults.lossShare

    @Option(help: "Each numbering camera reports its newest recorded pass (POST /kvfv/{id}/status) this often, also after an outage and at the end (0s: no reports).")
    var statusInterval = DurationArgument(LoadgenCommand.defaults.statusInterval)

    @Option(help: "Share of numbering cameras whose pass counter restarts once (a higher seq_epoch, numbers from 0).")
    var restartShare = LoadgenCommand.defaults.counterRestartShare

    @Option(help: "Share of numbering cameras that end the run holding 1-5 recorded, reported, unsent passes (a backlog).")
    var pendingShare = LoadgenCommand.defaults.pendingShare

    @Option(help: "How far the server's clock may be off this machine's: --verify checks late_count as a range for events this close to their grace deadline.")
    var clockTolerance = DurationArgument(LoadgenCommand.defaults.clockTolerance)

    @Option(help: "The server's --late-grace (for --verify's late_count).")
    var lateGrace = DurationArgument(LoadgenCommand.defaults.lateGrace)

    @Option(help: "Simulation seed (default: random; printed in the report, so a run can be repeated).")
    var seed: UInt64?

    @Option(help: "Probe freshness every this long (0s disables).")
    var freshnessInterval = DurationArgument(LoadgenCommand.defaults.freshnessInterval ?? .zero)

    @Flag(help: "After the run, compare every 5-minute window of every camera with what the server acknowledged.")
    var verify = false

    @Flag(help: "Print the final report as JSON.")
    var json = false

    @Option(help: "Also write the report as JSON to this file (the text report still goes to stdout).")
    var jsonOutput: String?

    @Flag(help: "No live progress line.")
    var quiet = false

    @Flag(help: "Log the load generator's own activity (info level) on stderr.")
    var verbose = false

    func makeConfiguration() throws -> LoadgenConfiguration {
        var c = LoadgenConfiguration()
        c.url = url
        if let file = tokenFile ?? ProcessInfo.processInfo.environment["SPEEDFLOW_LOADGEN_TOKEN_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read --token-file \(file)") }
            c.token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let file = cameraTokens {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read --camera-tokens \(file)") }
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                // The line holds a token: name it by number and field count, never echo it.
                guard parts.count == 2 else {
                    throw ValidationError("--camera-tokens \(file), line \(number + 1): expected 'kvfv_id token', got \(parts.count) fields")
                }
                c.cameraTokens[String(parts[0])] = String(parts[1])
            }
        }
        c.queryURL = queryUrl
        c.caCertificateFile = caCertificate
        c.statelessIngest = statelessIngest
        c.verifyWait = verifyWait.value
        c.cameras = cameras
        c.cameraPrefix = cameraPrefix
        c.mode = mode
        c.batchSize = batchSize
        c.batchFormat = batchFormat
        c.rate = rate
        // A count alone means "until the count"; neither means the library's default duration.
        c.duration = duration?.value ?? (eventCount == nil ? c.duration : nil)
        c.eventCount = eventCount
        c.concurrency = concurrency
        c.httpClient = httpClient
        c.transport = transport
        if let mqttUrl { c.mqttURL = mqttUrl }
        c.requestTimeout = timeout.value
        c.drainTimeout = drainTimeout.value
        c.outageShare = outageShare
        c.outageDuration = outageDuration.value
        c.backlogAge = backlogAge.value
        c.backlogEvents = backlogEvents
        c.duplicateShare = duplicateShare
        c.lostAckShare = lostAckShare
        c.timeoutShare = timeoutShare
        c.invalidShare = invalidShare
        c.inBatchDuplicateShare = inBatchDuplicateShare
        c.shuffle = shuffle
        c.maxClockSkew = maxClockSkew.value
        c.sequenced = sequenced
        c.lossShare = lossShare
        c.statusInterval = statusInterval.value
        c.counterRestartShare = restartShare
        c.pendingShare = pendingShare
        c.clockTolerance = clockTolerance.value
        c.lateGrace = lateGrace.value
        if let seed { c.seed = seed }
        c.freshnessInterval = freshnessInterval.value > .zero ? freshnessInterval.value : nil
        c.verify = verify
        c.progress = !quiet
        return c
    }

    func validate() throws {
        let configuration = try makeConfiguration()
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        var logger = Logger(label: "speedflow.loadgen")
        logger.logLevel = verbose ? .info : .warning
        let isTerminal = isatty(STDERR_FILENO) != 0
        let progress: (@Sendable (String) -> Void)? = quiet ? nil : { @Sendable line in
            FileHandle.standardError.write(Data(((isTerminal ? "\r\u{1B}[K" : "") + line + (isTerminal ? "" : "\n")).utf8))
        }
        // Ctrl-C ends generation; cameras still flush and resend and the report is printed. A second one quits.
        let stop = LoadgenStopSignal()
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler {
            if stop.isStopped { _exit(130) }
            stop.stop()
            FileHandle.standardError.write(Data("\nstopping: flushing backlogs and resends (Ctrl-C again to quit)\n".utf8))
        }
        interrupt.resume()
        defer { interrupt.cancel() }
        let report = try await Loadgen.run(configuration: configuration, logger: logger, progress: progress, stop: stop)
        if isTerminal, !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        print(json ? report.json() : report.text())
        if let jsonOutput {
            try Data((report.json() + "\n").utf8).write(to: URL(fileURLWithPath: jsonOutput))
        }
        if !report.passed { throw ExitCode(1) }
    }
}

extension LoadgenCommand {
    /// A duration on the command line: `250ms`, `90s`, `3m`, `1h`, `2d`, or plain seconds (`Settings.parseDuration`).
    struct DurationArgument: ExpressibleByArgument, Sendable {
        var value: Duration

        init(_ value: Duration) { self.value = value }

        init?(argument: String) {
            guard let ms = Settings.parseDuration(argument) else { return nil }
            value = .milliseconds(ms)
        }

        var defaultValueDescription: String {
            Settings.formatDuration(value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000)
        }
    }
}

extension LoadgenConfiguration.Mode: ExpressibleByArgument {}
extension LoadgenConfiguration.BatchFormat: ExpressibleByArgument {}
extension LoadgenConfiguration.HTTPClientKind: ExpressibleByArgument {}
extension LoadgenConfiguration.Transport: ExpressibleByArgument {}
