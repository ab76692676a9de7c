import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Ends a run's generation early, e.g. on Ctrl-C.
public final class LoadgenStopSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func stop() { flag.store(true, ordering: .relaxed) }

    public var isStopped: Bool { flag.load(ordering: .relaxed) }
}

/// `speedflow loadgen`: a simulated fleet of cameras on bad links against a running server, with a live
/// progress line, a latency/freshness report and an exact verification of every window.
public enum Loadgen {
    /// Runs the scenario and returns the report; throws only if the run cannot start.
    ///
    /// - Parameters:
    ///   - progress: receives the live progress line once a second (nil: none).
    ///   - stop: ends generation early; cameras still flush and resend, and the report is still made.
    public static func run(
        configuration: LoadgenConfiguration,
        logger: Logger = Logger(label: "speedflow.loadgen"),
        progress: (@Sendable (String) -> Void)? = nil,
        stop: LoadgenStopSignal = LoadgenStopSignal()
    ) async throws -> LoadReport {
        try await run(configuration: configuration, logger: logger, progress: progress, stop: stop, beforeVerify: nil)
    }

    /// `beforeVerify` runs after the fleet has sent everything and before `--verify` (tests use it to tamper with
    /// the server and see verification fail).
    static func run(
        configuration: LoadgenConfiguration, logger: Logger = Logger(label: "speedflow.loadgen"),
        progress: (@Sendable (String) -> Void)? = nil, stop: LoadgenStopSignal = LoadgenStopSignal(),
        beforeVerify: (@Sendable () async throws -> Void)?
    ) async throws -> LoadReport {
        try configuration.validate()
        var configuration = configuration
        while configuration.url.hasSuffix("/") { configuration.url.removeLast() }

        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = configuration.concurrency + 4
        httpConfiguration.connectionPool.idleTimeout = .seconds(120)
        httpConfiguration.timeout.connect = .seconds(5)
        httpConfiguration.decompression = .enabled(limit: .none)
        if let caFile = configuration.caCertificateFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            httpConfiguration.tlsConfiguration = tls
        }
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        do {
            let report = try await run(
                configuration: configuration, client: client, logger: logger, progress: progress, stop: stop, beforeVerify: beforeVerify)
            try? await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func run(
        configuration: LoadgenConfiguration, client: HTTPClient, logger: Logger,
        progress: (@Sendable (String) -> Void)?, stop: LoadgenStopSignal, beforeVerify: (@Sendable () async throws -> Void)?
    ) async throws -> LoadReport {
        try await waitForHealth(client: client, url: configuration.url, timeout: .seconds(10))

        // The fleet, reproducible from the seed.
        var rng = FastRandom(seed: configuration.seed)
        let cameraIds = (1...configuration.cameras).map { configuration.cameraPrefix + Self.digits($0, 5) }
        var cameras = (0..<configuration.cameras).map {
            TrafficGenerator.makeCamera(index: $0, configuration: configuration, rng: &rng)
        }
        let offsets: [Int16] = cameras.indices.map { _ in rng.chance(configuration.offsetTimestampShare) ? 180 : 0 }
        let encoder = EventEncoder(cameraIds: cameraIds.map { Array($0.utf8) }, cameraOffsetMinutes: offsets,
                                   runTag: Array(configuration.runTag.utf8))
        let workerCount = min(configuration.concurrency, configuration.cameras)
        let queryURL = configuration.queryURL ?? configuration.url
        let probe = configuration.freshnessInterval.map { FreshnessProbe(client: client, baseURL: queryURL, interval: $0, authorization: configuration.readAuthorization) }
        let clock = ContinuousClock()
        let startedAt = clock.now
        let shared = FleetWorker.Shared(configuration: configuration, client: client, encoder: encoder, probe: probe,
                                        cameraIds: cameraIds, startedAt: startedAt, stop: stop, logger: logger)
        let boxes = (0..<workerCount).map { _ in StatsBox() }
        var shares = Array(repeating: [SimulatedCamera](), count: workerCount)
        for (i, camera) in cameras.enumerated() { shares[i % workerCount].append(camera) }
        cameras = []
        let seeds = (0..<workerCount).map { _ in rng.next() }

        logger.info("loadgen starting", metadata: [
            "loadgen.cameras": "\(configuration.cameras)", "loadgen.workers": "\(workerCount)",
            "loadgen.mode": "\(configuration.mode.rawValue)", "loadgen.url": "\(configuration.url)",
        ])

        let probeTask = probe.map { p in Task { await p.run() } }
        let progressTask = progress.map { emit in
            Task {
                var previous = (at: clock.now, sent: 0)
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    var total = LoadStats()
                    for box in boxes { total.merge(box.snapshot()) }
                    let now = clock.now
                    let rate = Double(total.eventsSent - previous.sent) / max((now - previous.at).seconds, 1e-3)
                    previous = (now, total.eventsSent)
                    emit(Self.progressLine(total, elapsed: now - startedAt, rate: rate))
                }
            }
        }

        // Workers: each owns a share of the cameras and returns them with their oracles.
        let finished: [SimulatedCamera] = await withTaskGroup(of: [SimulatedCamera].self) { group in
            for w in 0..<workerCount {
                let share = shares[w]
                let box = boxes[w]
                let seed = seeds[w]
                group.addTask {
                    let worker = FleetWorker(shared: shared, stats: box, cameras: share, seed: seed, workers: workerCount)
                    return await worker.run()
                }
            }
            var all: [SimulatedCamera] = []
            for await part in group { all.append(contentsOf: part) }
            return all
        }
        let elapsed = clock.now - startedAt
        progressTask?.cancel()
        probe?.finish()
        let freshness = await probeTask?.value

        var total = LoadStats()
        for box in boxes { total.merge(box.snapshot()) }
        if let progress { progress(Self.progressLine(total, elapsed: elapsed, rate: nil)) }

        var verification: VerificationReport?
        try await beforeVerify?()
        if configuration.verify {
            let oracles = finished.sorted { $0.index < $1.index }.map {
                VerifiedCamera(id: cameraIds[Int($0.index)], oracle: $0.oracle, sequence: configuration.sequenced ? $0.record : nil)
            }
            let verifyStarted = clock.now
            var v = await Verifier(client: client, baseURL: queryURL, parallelism: 8, authorization: configuration.readAuthorization).verify(oracles: oracles)
            // Behind Kafka, aggregation trails the acknowledgements: give it time to converge (never to pass
            // wrongly: a count above the truth stays a mismatch however long we wait).
            let converge = clock.now + configuration.verifyWait
            while !v.passed && clock.now < converge {
                try? await Task.sleep(for: .seconds(1))
                v = await Verifier(client: client, baseURL: queryURL, parallelism: 8, authorization: configuration.readAuthorization).verify(oracles: oracles)
            }
            if v.passed { v.matchedAfterSeconds = (clock.now - verifyStarted).seconds }
            v.ingestAnomalies = total.anomalies.failing
            v.unacknowledged = total.unacknowledged
            if v.ingestAnomalies > 0 || v.unacknowledged > 0 { v.passed = false }
            verification = v
        }
        let seconds = max(elapsed.seconds, 1e-9)
        return LoadReport(
            mode: configuration.mode, transport: configuration.transport, cameras: configuration.cameras, concurrency: workerCount,
            batchSize: configuration.mode == .single ? 1 : configuration.batchSize, targetRate: configuration.rate,
            seed: configuration.seed, runTag: configuration.runTag, elapsedSeconds: elapsed.seconds,
            requests: total.requests, requestsOK: total.requestsOK, requestsPerSecond: Double(total.requests) / seconds,
            eventsGenerated: total.eventsGenerated, eventsSent: total.eventsSent, accepted: total.accepted,
            duplicates: total.duplicates, rejected: total.rejected.values.reduce(0, +), rejectedByReason: total.rejected,
            invalidGenerated: total.invalidGenerated, eventsAcknowledged: total.eventsAcked,
            acceptedPerSecond: Double(total.accepted) / seconds, httpErrors: total.errors, errorSamples: total.errorSamples, retries: total.retries,
            lostAckResends: total.lostAckResends, forcedTimeouts: total.forcedTimeouts,
            deliberateDuplicates: total.deliberateDuplicates, inBatchDuplicates: total.inBatchDuplicates,
            outages: total.outages, backlogEvents: total.backlogEvents, unacknowledged: total.unacknowledged,
            lostForGood: total.lostForGood, pendingPasses: total.pendingPasses, counterRestarts: total.counterRestarts,
            statusReports: total.statusReports,
            latency: LoadReport.Latency(total.latency),
            freshness: freshness.map {
                LoadReport.Freshness(delay: LoadReport.Latency($0.histogram), neverVisible: $0.neverVisible, queryErrors: $0.queryErrors)
            },
            anomalies: LoadReport.Anomaly(
                validRejected: total.anomalies.validRejected, invalidAccepted: total.anomalies.invalidAccepted,
                reasonMismatches: total.anomalies.reasonMismatches, countMismatches: total.anomalies.countMismatches,
                badAnswers: total.anomalies.badAnswers, samples: total.anomalies.samples),
            verification: verification, loadgenMaxRSSMiB: Self.maxRSSMiB())
    }

    static func progressLine(_ s: LoadStats, elapsed: Duration, rate: Double?) -> String {
        let p99 = s.latency.totalCount == 0 ? 0 : Double(s.latency.valueAtPercentile(99)) / 1000
        var line = String(format: "[%6.1fs] sent %d acked %d", elapsed.seconds, s.eventsSent, s.accepted + s.duplicates)
        if let rate { line += String(format: " rate %.0f ev/s", rate) }
        line += String(format: " p99 %.2f ms errors %d rejected %d", p99, s.errorCount, s.rejected.values.reduce(0, +))
        if s.anomalies.failing > 0 { line += " ANOMALIES \(s.anomalies.failing)" }
        return line
    }

    /// Polls `GET /health` until it answers 200; no blind sleeps.
    static func waitForHealth(client: HTTPClient, url: String, timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var lastError = "no answer"
        while clock.now < deadline {
            do {
                let response = try await client.execute(HTTPClientRequest(url: url + "/health"), timeout: .seconds(2))
                _ = try await response.body.collect(upTo: 1 << 20)
                if response.status == .ok { return }
                lastError = "HTTP \(response.status.code)"
            } catch {
                lastError = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw LoadgenError(.serverUnreachable, "\(url)/health did not answer 200 within \(timeout): \(lastError)")
    }

    static func digits(_ value: Int, _ width: Int) -> String {
        var out: [UInt8] = []
        UTCTime.appendDigits(Int64(value), width, &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Peak resident set of this process from /proc (Linux); nil elsewhere.
    static func maxRSSMiB() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first
            return kb.map { $0 / 1024 }
        }
        return nil
    }
}
