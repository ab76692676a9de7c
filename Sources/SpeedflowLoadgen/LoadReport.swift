import Foundation
import Histogram

/// The final report of a run, printed for people or as JSON (`--json`).
public struct LoadReport: Codable, Sendable {
    public struct Latency: Codable, Sendable {
        public var samples: Int
        public var p50Ms: Double
        public var p95Ms: Double
        public var p99Ms: Double
        public var p999Ms: Double
        public var maxMs: Double
        public var meanMs: Double

        init(_ h: Histogram<UInt64>) {
            func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
            samples = Int(h.totalCount)
            p50Ms = h.totalCount == 0 ? 0 : ms(h.valueAtPercentile(50))
            p95Ms = h.totalCount == 0 ? 0 : ms(h.valueAtPercentile(95))
            p99Ms = h.totalCount == 0 ? 0 : ms(h.valueAtPercentile(99))
            p999Ms = h.totalCount == 0 ? 0 : ms(h.valueAtPercentile(99.9))
            maxMs = h.totalCount == 0 ? 0 : ms(h.max)
            meanMs = h.totalCount == 0 ? 0 : h.mean / 1000
        }
    }

    public struct Freshness: Codable, Sendable {
        /// Delay from an event's acknowledgement to the first query answer that includes it.
        public var delay: Latency
        public var neverVisible: Int
        public var queryErrors: Int
    }

    public struct Anomaly: Codable, Sendable {
        public var validRejected: Int
        public var invalidAccepted: Int
        public var reasonMismatches: Int
        public var countMismatches: Int
        public var badAnswers: Int
        public var samples: [String]
    }

    public var mode: LoadgenConfiguration.Mode
    /// `http`, or `mqtt` (PUBACK as the acknowledgement; `accepted`/`duplicates` of a PUBLISH without rejections
    /// are inferred from what was sent, since a PUBACK carries no counts).
    public var transport: LoadgenConfiguration.Transport
    public var cameras: Int
    public var concurrency: Int
    public var batchSize: Int
    public var targetRate: Double?
    public var seed: UInt64
    public var runTag: String
    public var elapsedSeconds: Double
    public var requests: Int
    public var requestsOK: Int
    public var requestsPerSecond: Double
    public var eventsGenerated: Int
    public var eventsSent: Int
    public var accepted: Int
    public var duplicates: Int
    public var rejected: Int
    public var rejectedByReason: [String: Int]
    public var invalidGenerated: [String: Int]
    /// Valid events acknowledged at least once: what the server must now hold.
    public var eventsAcknowledged: Int
    /// Accepted events per second of the whole run (first copies stored).
    public var acceptedPerSecond: Double
    public var httpErrors: [String: Int]
    /// The first few transport errors, verbatim.
    public var errorSamples: [String]
    public var retries: Int
    public var lostAckResends: Int
    public var forcedTimeouts: Int
    public var deliberateDuplicates: Int
    public var inBatchDuplicates: Int
    public var outages: Int
    public var backlogEvents: Int
    public var unacknowledged: Int
    /// Recorded passes never sent (`--loss`): gaps, or backlog when at a camera's end.
    public var lostForGood: Int
    /// Passes still on the cameras at the end (recorded and reported, never sent).
    public var pendingPasses: Int
    /// Pass counters restarted (a new `seq_epoch`).
    public var counterRestarts: Int
    /// Status reports acknowledged (`POST /kvfv/{id}/status`).
    public var statusReports: Int
    public var latency: Latency
    public var freshness: Freshness?
    public var anomalies: Anomaly
    public var verification: VerificationReport?
    /// Peak resident memory of the load generator itself (VmHWM), MiB.
    public var loadgenMaxRSSMiB: Double?

    /// True when nothing breaks the contract and, if verification ran, it passed.
    public var passed: Bool {
        anomalies.validRejected + anomalies.invalidAccepted + anomalies.countMismatches + anomalies.badAnswers == 0
            && unacknowledged == 0 && (verification?.passed ?? true)
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "{}"
    }

    public func text() -> String {
        func n(_ v: Int) -> String { v.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US"))) }
        func d(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
        func kv(_ m: [String: Int]) -> String { m.isEmpty ? "none" : m.sorted { $0.key < $1.key }.map { "\($0.key) \(n($0.value))" }.joined(separator: ", ") }
        var lines: [String] = []
        let shape = (mode == .single ? "single events" : "batches of \(batchSize)") + (transport == .mqtt ? " over MQTT (QoS 1)" : "")
        lines.append("speedflow loadgen: \(shape), \(n(cameras)) cameras, concurrency \(concurrency), "
            + (targetRate.map { "target \(n(Int($0))) events/s" } ?? "max rate") + ", seed \(seed), run \(runTag)")
        lines.append("elapsed     \(d(elapsedSeconds)) s")
        lines.append("requests    \(n(requests)) sent, \(n(requestsOK)) answered 200, \(n(Int(requestsPerSecond.rounded()))) req/s")
        lines.append("events      \(n(eventsGenerated)) generated, \(n(eventsSent)) sent (with resends), \(n(eventsAcknowledged)) valid acknowledged")
        lines.append("answers     accepted \(n(accepted)), duplicates \(n(duplicates)), rejected \(n(rejected)); \(n(Int(acceptedPerSecond.rounded()))) accepted events/s")
        lines.append("rejected    \(kv(rejectedByReason))")
        lines.append("invalid     generated: \(kv(invalidGenerated))")
        lines.append("bad links   \(n(outages)) outages flushing \(n(backlogEvents)) backlog events, \(n(deliberateDuplicates)) resent events, "
            + "\(n(inBatchDuplicates)) in-batch repeats, \(n(lostAckResends)) lost-answer resends, \(n(forcedTimeouts)) forced timeouts")
        lines.append("sequences   \(n(lostForGood)) passes lost for good, \(n(pendingPasses)) still on the cameras at the end, "
            + "\(n(counterRestarts)) counter restarts, \(n(statusReports)) status reports")
        lines.append("errors      \(kv(httpErrors)); \(n(retries)) retries; \(n(unacknowledged)) events never acknowledged")
        for e in errorSamples { lines.append("            - \(e)") }
        lines.append("latency     p50 \(d(latency.p50Ms, 2)) ms, p95 \(d(latency.p95Ms, 2)) ms, p99 \(d(latency.p99Ms, 2)) ms, "
            + "p99.9 \(d(latency.p999Ms, 2)) ms, max \(d(latency.maxMs, 2)) ms")
        if let f = freshness {
            lines.append("freshness   ack → visible in a query: \(n(f.delay.samples)) samples, p50 \(d(f.delay.p50Ms, 2)) ms, "
                + "p99 \(d(f.delay.p99Ms, 2)) ms, max \(d(f.delay.maxMs, 2)) ms; never visible \(f.neverVisible)")
        }
        let a = anomalies
        if a.validRejected + a.invalidAccepted + a.reasonMismatches + a.countMismatches + a.badAnswers == 0 {
            lines.append("anomalies   none")
        } else {
            lines.append("anomalies   valid rejected \(a.validRejected), invalid accepted \(a.invalidAccepted), wrong reason \(a.reasonMismatches), "
                + "wrong counts \(a.countMismatches), bad answers \(a.badAnswers)")
            for s in a.samples { lines.append("            - \(s)") }
        }
        if let v = verification {
            if v.passed {
                lines.append("verify      EXACT: \(n(v.cameras)) cameras, \(n(v.windowsCompared)) windows (\(n(v.nonEmptyWindows)) non-empty), "
                    + "\(n(v.eventsExpected)) events match"
                    + (v.matchedAfterSeconds.map { String(format: " (all counted %.1f s after the last acknowledgement)", $0) } ?? ""))
            } else {
                lines.append("verify      MISMATCH: \(n(v.mismatches)) mismatches; expected \(n(v.eventsExpected)) events, found \(n(v.eventsFound))")
                for m in v.firstMismatches { lines.append("            - \(m)") }
            }
            lines.append("            \(n(v.lateEvents)) late events (\(n(v.lateAmbiguous)) of undecidable lateness), "
                + "\(n(v.sequencedCameras)) numbering cameras: \(n(v.gapsExpected)) gaps, \(n(v.backlogsExpected)) backlogs, "
                + "\(n(v.incompleteWindows)) incomplete windows missing \(n(v.missingExpected))")
        }
        if let rss = loadgenMaxRSSMiB { lines.append("loadgen     max RSS \(d(rss)) MiB") }
        lines.append(passed ? "result      PASS" : "result      FAIL")
        return lines.joined(separator: "\n")
    }
}
