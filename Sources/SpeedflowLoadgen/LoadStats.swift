import Histogram
import Synchronization

/// Counters and latency histogram of one worker; merged for the progress line and the report.
struct LoadStats: Sendable {
    /// HTTP attempts (first sends and resends).
    var requests = 0
    /// Attempts answered 200.
    var requestsOK = 0
    /// New events created by the simulation (valid and invalid).
    var eventsGenerated = 0
    /// Invalid events created, by the reason the server should give.
    var invalidGenerated: [String: Int] = [:]
    /// Event copies put on the wire, counting every resend.
    var eventsSent = 0
    var accepted = 0
    var duplicates = 0
    var rejected: [String: Int] = [:]
    /// Failed attempts by kind: `timeout`, `connection`, `http_503`, …
    var errors: [String: Int] = [:]
    /// The first few transport errors, verbatim.
    var errorSamples: [String] = []
    /// Resends after a failed attempt.
    var retries = 0
    /// Answered requests sent again as if the answer had been lost.
    var lostAckResends = 0
    /// Attempts given a tiny timeout on purpose.
    var forcedTimeouts = 0
    /// Already-acknowledged events put into later requests on purpose.
    var deliberateDuplicates = 0
    /// Events repeated inside their own batch on purpose.
    var inBatchDuplicates = 0
    var outages = 0
    var backlogEvents = 0
    /// Recorded passes lost for good (never sent).
    var lostForGood = 0
    /// Passes still on the cameras at the end (recorded and reported, never sent).
    var pendingPasses = 0
    /// Pass counters restarted (a new `seq_epoch`).
    var counterRestarts = 0
    /// `POST /kvfv/{id}/status` attempts, and reports acknowledged.
    var statusRequests = 0
    var statusReports = 0
    /// Valid events first acknowledged (each counted once): what the windows must contain.
    var eventsAcked = 0
    /// Valid events never acknowledged before the drain deadline: their fate is unknown.
    var unacknowledged = 0
    var anomalies = Anomalies()
    /// Request latency in microseconds, send to full answer.
    var latency = LoadStats.makeHistogram()

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }

    var errorCount: Int { errors.values.reduce(0, +) }

    mutating func merge(_ other: LoadStats) {
        requests += other.requests
        requestsOK += other.requestsOK
        eventsGenerated += other.eventsGenerated
        invalidGenerated.merge(other.invalidGenerated, uniquingKeysWith: +)
        eventsSent += other.eventsSent
        accepted += other.accepted
        duplicates += other.duplicates
        rejected.merge(other.rejected, uniquingKeysWith: +)
        errors.merge(other.errors, uniquingKeysWith: +)
        for e in other.errorSamples where errorSamples.count < 5 { errorSamples.append(e) }
        retries += other.retries
        lostAckResends += other.lostAckResends
        forcedTimeouts += other.forcedTimeouts
        deliberateDuplicates += other.deliberateDuplicates
        inBatchDuplicates += other.inBatchDuplicates
        outages += other.outages
        backlogEvents += other.backlogEvents
        eventsAcked += other.eventsAcked
        lostForGood += other.lostForGood
        pendingPasses += other.pendingPasses
        counterRestarts += other.counterRestarts
        statusRequests += other.statusRequests
        statusReports += other.statusReports
        unacknowledged += other.unacknowledged
        anomalies.merge(other.anomalies)
        latency.add(other.latency)
    }
}

/// Answers that break the contract. Any of them fails `--verify`.
struct Anomalies: Sendable {
    /// A valid event answered as rejected.
    var validRejected = 0
    /// A deliberately invalid event not rejected.
    var invalidAccepted = 0
    /// An invalid event rejected with another reason than the contract's (reported, does not fail).
    var reasonMismatches = 0
    /// `accepted`/`duplicates` inconsistent with what was sent (e.g. a resend counted as new).
    var countMismatches = 0
    /// 4xx answers to requests holding valid events, and malformed answers.
    var badAnswers = 0
    var samples: [String] = []

    static let sampleLimit = 10

    var failing: Int { validRejected + invalidAccepted + countMismatches + badAnswers }

    mutating func note(_ sample: String) {
        if samples.count < Self.sampleLimit { samples.append(sample) }
    }

    mutating func merge(_ other: Anomalies) {
        validRejected += other.validRejected
        invalidAccepted += other.invalidAccepted
        reasonMismatches += other.reasonMismatches
        countMismatches += other.countMismatches
        badAnswers += other.badAnswers
        for s in other.samples { note(s) }
    }
}

/// A worker's stats behind a lock: the worker writes after each request, the progress line reads once a second.
final class StatsBox: Sendable {
    let state = Mutex(LoadStats())

    func update(_ body: (inout LoadStats) -> Void) {
        state.withLock { body(&$0) }
    }

    func snapshot() -> LoadStats {
        state.withLock { $0 }
    }
}
