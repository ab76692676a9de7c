import AsyncHTTPClient
import Foundation
import NIOCore

/// The outcome of `--verify`.
public struct VerificationReport: Codable, Sendable {
    public var passed: Bool
    public var cameras = 0
    public var windowsCompared = 0
    public var nonEmptyWindows = 0
    /// Events the windows must hold: each acknowledged valid identity once.
    public var eventsExpected = 0
    /// Σ count over the compared windows as the server answered.
    public var eventsFound = 0
    public var mismatches = 0
    public var firstMismatches: [String] = []
    /// Cameras with acknowledged events that `GET /kvfv` does not list.
    public var camerasMissingFromList = 0
    /// With `--verify-wait`: seconds from the end of sending until every window matched (how far aggregation
    /// trailed the acknowledgements); `nil` when it never did.
    public var matchedAfterSeconds: Double?
    /// Contract breaches seen while sending (valid rejected, invalid accepted, wrong counts, bad answers).
    public var ingestAnomalies = 0
    /// Events never acknowledged: their fate is unknown, so the windows cannot be known exactly.
    public var unacknowledged = 0
    /// Cameras whose gaps and backlog were compared (`GET /kvfv/{id}/gaps`), the gaps and backlogs expected.
    public var sequencedCameras = 0
    public var gapsExpected = 0
    public var backlogsExpected = 0
    /// Windows expected incomplete (`complete: false`), and Σ `missing` expected over the compared windows.
    public var incompleteWindows = 0
    public var missingExpected = 0
    /// Events surely late (`late_count`), and events whose lateness could not be decided (their window's
    /// `late_count` is then checked as a range).
    public var lateEvents = 0
    public var lateAmbiguous = 0
}

/// One camera as `--verify` knows it: the windows it must hold and, for a numbering fleet, its sequence record.
struct VerifiedCamera: Sendable {
    var id: String
    var oracle: WindowOracle
    /// nil when the fleet does not number its passes: every window must then say `complete`/`missing` null.
    var sequence: SequenceRecord?
}

/// Compares every 5-minute window of every camera with the oracle built from acknowledged events:
/// count exactly, average and harmonic mean to 1e-9 relative, min and max exactly, `late_count` exactly (a range
/// where lateness is ambiguous), `revised_at` within the clock tolerance, `complete` and `missing` exactly; and
/// for numbering cameras every gap and the backlog of `GET /kvfv/{id}/gaps` exactly.
struct Verifier: Sendable {
    static let relativeTolerance = 1e-9
    static let maxWindowsPerQuery: Int64 = 10_000
    static let mismatchSamples = 10
    /// Samples kept per camera, so the report names several cameras' problems, not ten of one.
    static let mismatchSamplesPerCamera = 4

    let client: HTTPClient
    let baseURL: String
    let parallelism: Int
    /// `Authorization` for the queries (a reader or admin token), if the server requires one.
    var authorization: String? = nil

    func verify(oracles: [VerifiedCamera]) async -> VerificationReport {
        var report = VerificationReport(passed: false)
        await withTaskGroup(of: VerificationReport.self) { group in
            var next = 0
            while next < min(parallelism, oracles.count) {
                let camera = oracles[next]
                group.addTask { await verifyCamera(camera) }
                next += 1
            }
            while let part = await group.next() {
                report.cameras += part.cameras
                report.windowsCompared += part.windowsCompared
                report.nonEmptyWindows += part.nonEmptyWindows
                report.eventsExpected += part.eventsExpected
                report.eventsFound += part.eventsFound
                report.mismatches += part.mismatches
                report.sequencedCameras += part.sequencedCameras
                report.gapsExpected += part.gapsExpected
                report.backlogsExpected += part.backlogsExpected
                report.incompleteWindows += part.incompleteWindows
                report.missingExpected += part.missingExpected
                report.lateEvents += part.lateEvents
                report.lateAmbiguous += part.lateAmbiguous
                for m in part.firstMismatches where report.firstMismatches.count < Self.mismatchSamples {
                    report.firstMismatches.append(m)
                }
                if next < oracles.count {
                    let camera = oracles[next]
                    group.addTask { await verifyCamera(camera) }
                    next += 1
                }
            }
        }
        let listed = await listedCameras()
        if let listed {
            let missing = oracles.filter { $0.oracle.events > 0 && !listed.contains($0.id) }
            report.camerasMissingFromList = missing.count
            if let first = missing.first, report.firstMismatches.count < Self.mismatchSamples {
                report.firstMismatches.append("GET /kvfv does not list \(first.id) (and \(missing.count - 1) more)")
            }
        } else {
            report.mismatches += 1
            report.firstMismatches.append("GET /kvfv did not answer a readable camera list")
        }
        report.passed = report.mismatches == 0 && report.camerasMissingFromList == 0
        return report
    }

    /// Every camera `GET /kvfv` lists, page by page (`next` is the `after` of the following page).
    private func listedCameras() async -> Set<String>? {
        var listed = Set<String>()
        var after: String?
        repeat {
            let url = "\(baseURL)/kvfv?limit=1000" + (after.map { "&after=\($0)" } ?? "")
            guard let answer = await getJSON(url), let cameras = answer["cameras"]?.array else { return nil }
            listed.formUnion(cameras.compactMap { $0["kvfv_id"]?.string })
            after = answer["next"]?.string
        } while after != nil
        return listed
    }

    private func getJSON(_ url: String) async -> MiniJSON? {
        for attempt in 0..<5 {
            do {
                var request = HTTPClientRequest(url: url)
                if let authorization { request.headers.add(name: "Authorization", value: authorization) }
                let response = try await client.execute(request, timeout: .seconds(60))
                let body = try await response.body.collect(upTo: 64 << 20)
                if response.status == .ok { return MiniJSON.parse(body) }
                if response.status.code < 500, response.status.code != 429 { return nil }
            } catch {}
            try? await Task.sleep(for: .milliseconds(100 << attempt))
        }
        return nil
    }

    private func verifyCamera(_ camera: VerifiedCamera) async -> VerificationReport {
        let id = camera.id, oracle = camera.oracle
        var report = VerificationReport(passed: false)
        report.cameras = 1
        report.eventsExpected = oracle.events
        var mismatches: [String] = []
        let sequence = camera.sequence.map(SequenceExpectation.init)
        if let sequence, sequence.sequenced {
            report.sequencedCameras = 1
            report.gapsExpected = sequence.gaps.count
            report.backlogsExpected = sequence.backlog == nil ? 0 : 1
            mismatches = await verifyGaps(id: id, sequence)
        }
        func mismatch(_ text: String) {
            report.mismatches += 1
            if report.firstMismatches.count < Self.mismatchSamplesPerCamera { report.firstMismatches.append("\(id) \(text)") }
        }
        for m in mismatches { mismatch(m) }
        guard let first = oracle.windows.keys.min(), let last = oracle.windows.keys.max() else { return report }
        // One empty window either side: nothing may leak into the neighbours.
        var from = first - 1
        let end = last + 2
        while from < end {
            let to = min(end, from + Self.maxWindowsPerQuery)
            let fromText = UTCTime.string(millis: from * UTCTime.millisPerBucket)
            let toText = UTCTime.string(millis: to * UTCTime.millisPerBucket)
            let url = "\(baseURL)/kvfv/\(id)/avg-speed?from=\(fromText)&to=\(toText)&interval=5m"
            guard let windows = await getJSON(url)?["windows"]?.array else {
                mismatch("query \(fromText)..\(toText) failed or was unreadable")
                from = to
                continue
            }
            if windows.count != Int(to - from) {
                mismatch("\(fromText)..\(toText): \(windows.count) windows listed, expected \(to - from)")
            }
            for window in windows {
                guard let startText = window["start"]?.string, let startMillis = UTCTime.parseMillis(startText),
                      startMillis % UTCTime.millisPerBucket == 0
                else {
                    mismatch("window without a readable aligned start: \(window)")
                    continue
                }
                let bucket = startMillis / UTCTime.millisPerBucket
                let expected = oracle.windows[bucket] ?? ExpectedWindow()
                let count = window["count"]?.int ?? -1
                report.windowsCompared += 1
                report.eventsFound += max(count, 0)
                if expected.count > 0 { report.nonEmptyWindows += 1 }
                report.lateEvents += expected.lateSure
                report.lateAmbiguous += expected.lateAmbiguous
                for problem in Self.lateness(of: window, expected) { mismatch("\(startText): \(problem)") }
                let completeness = sequence?.window(startMs: startMillis, endMs: startMillis + UTCTime.millisPerBucket)
                if let c = completeness {
                    if !c.complete { report.incompleteWindows += 1 }
                    report.missingExpected += Int(c.missing)
                }
                for problem in Self.completeness(of: window, completeness) { mismatch("\(startText): \(problem)") }
                guard count == expected.count else {
                    mismatch("\(startText): count \(count), expected \(expected.count)")
                    continue
                }
                guard count > 0 else { continue }
                func check(_ field: String, _ want: Double, tolerance: Double) {
                    guard let got = window[field]?.double else {
                        mismatch("\(startText): \(field) missing, expected \(want)")
                        return
                    }
                    if abs(got - want) > tolerance * max(abs(want), 1e-300) {
                        mismatch("\(startText): \(field) \(got), expected \(want) (relative error \(abs(got - want) / abs(want)))")
                    }
                }
                check("avg_speed", expected.averageSpeed, tolerance: Self.relativeTolerance)
                check("harmonic_mean_speed", expected.harmonicMeanSpeed, tolerance: Self.relativeTolerance)
                check("min_speed", expected.minSpeed, tolerance: 1e-12)
                check("max_speed", expected.maxSpeed, tolerance: 1e-12)
            }
            from = to
        }
        return report
    }

    /// What is wrong with a window's `complete` and `missing` (both null for a camera that never numbered).
    static func completeness(of window: MiniJSON, _ expected: (complete: Bool, missing: Int64)?) -> [String] {
        var problems: [String] = []
        let complete = window["complete"], missing = window["missing"]
        func show(_ v: MiniJSON?) -> String { v.map { "\($0)" } ?? "absent" }
        if let expected {
            if complete != .some(.bool(expected.complete)) { problems.append("complete \(show(complete)), expected \(expected.complete)") }
            if missing?.int.map(Int64.init) != expected.missing { problems.append("missing \(show(missing)), expected \(expected.missing)") }
        } else {
            if complete != .some(.null) { problems.append("complete \(show(complete)), expected null") }
            if missing != .some(.null) { problems.append("missing \(show(missing)), expected null") }
        }
        return problems
    }

    /// What is wrong with a window's `late_count` and `revised_at`, if anything. `late_count` is exact when
    /// every event's lateness is known, else it must lie within what is sure and what may be late; `revised_at`
    /// (the server's clock at the latest late arrival) must lie within the bounds of those arrivals.
    static func lateness(of window: MiniJSON, _ expected: ExpectedWindow) -> [String] {
        var problems: [String] = []
        func show(_ v: MiniJSON?) -> String { v.map { "\($0)" } ?? "absent" }
        func time(_ ms: Int64) -> String { UTCTime.string(millis: ms, withMillis: true) }
        let late = window["late_count"]?.int ?? -1
        let lo = expected.lateSure, hi = expected.lateSure + expected.lateAmbiguous
        if !(lo...hi).contains(late) {
            problems.append("late_count \(show(window["late_count"])), expected \(lo == hi ? "\(lo)" : "\(lo)...\(hi)")")
        }
        let revised: Int64?
        switch window["revised_at"] {
        case .some(.null): revised = nil
        case .some(.string(let text)):
            guard let ms = UTCTime.parseMillis(text) else { return problems + ["revised_at \(text) unreadable"] }
            revised = ms
        default: return problems + ["revised_at \(show(window["revised_at"]))"]
        }
        if let revised {
            if hi == 0 {
                problems.append("revised_at \(time(revised)), expected null")
            } else if (lo > 0 && revised < expected.revisedFromMs) || revised > expected.revisedToMs {
                problems.append("revised_at \(time(revised)), expected within \(lo > 0 ? time(expected.revisedFromMs) : "…")..\(time(expected.revisedToMs))")
            }
        } else if lo > 0 {
            problems.append("revised_at null, expected a time (\(lo) late events)")
        }
        // The two fields must agree with each other whatever the ambiguity.
        if late >= 0, (late > 0) != (revised != nil) { problems.append("late_count \(late) with revised_at \(show(window["revised_at"]))") }
        return problems
    }

    /// `GET /kvfv/{id}/gaps` against the expectation: `sequenced`, `received`, `missing_total`, every gap's epoch,
    /// numbers, count and neighbour times, and the backlog (reported number, epoch and time, arrival within the
    /// clock tolerance, events, since). Returns the mismatches.
    private func verifyGaps(id: String, _ expected: SequenceExpectation) async -> [String] {
        guard let answer = await getJSON("\(baseURL)/kvfv/\(id)/gaps") else {
            return ["gaps: GET /kvfv/\(id)/gaps failed or was unreadable"]
        }
        return Self.compareGaps(answer, expected)
    }

    static func compareGaps(_ answer: MiniJSON, _ expected: SequenceExpectation) -> [String] {
        var problems: [String] = []
        func show(_ v: MiniJSON?) -> String { v.map { "\($0)" } ?? "absent" }
        func time(_ ms: Int64) -> String { UTCTime.string(millis: ms, withMillis: true) }
        func int(_ v: MiniJSON?) -> Int64? { v?.int.map(Int64.init) }
        if answer["sequenced"] != .some(.bool(true)) { problems.append("gaps: sequenced \(show(answer["sequenced"])), expected true") }
        if int(answer["received"]) != expected.received {
            problems.append("gaps: received \(show(answer["received"])), expected \(expected.received)")
        }
        let wantTotal = expected.gaps.reduce(Int64(0)) { $0 + $1.count }
        if int(answer["missing_total"]) != wantTotal {
            problems.append("gaps: missing_total \(show(answer["missing_total"])), expected \(wantTotal)")
        }
        let gaps = answer["gaps"]?.array ?? []
        let truncated = answer["truncated"] == .some(.bool(true))
        if truncated ? gaps.count >= expected.gaps.count : gaps.count != expected.gaps.count {
            problems.append("gaps: \(gaps.count) listed\(truncated ? " (truncated)" : ""), expected \(expected.gaps.count)")
        }
        for (got, want) in zip(gaps, expected.gaps) {
            let fields: [(String, Int64?, Int64)] = [
                ("seq_epoch", int(got["seq_epoch"]), want.epoch),
                ("first_seq", int(got["first_seq"]), want.first),
                ("last_seq", int(got["last_seq"]), want.last),
                ("count", int(got["count"]), want.count),
                ("after", got["after"]?.string.flatMap(UTCTime.parseMillis), want.afterMs),
                ("before", got["before"]?.string.flatMap(UTCTime.parseMillis), want.beforeMs),
            ]
            if let wrong = fields.first(where: { $0.1 != $0.2 }) {
                problems.append("gap \(want.epoch):\(want.first)...\(want.last) (after \(time(want.afterMs)), before \(time(want.beforeMs))): \(wrong.0) is \(show(got[wrong.0]))")
                break
            }
        }
        let backlog = answer["backlog"]
        guard let report = expected.report else {
            if backlog != .some(.null) { problems.append("gaps: backlog \(show(backlog)), expected null (the camera never reported)") }
            return problems
        }
        guard let backlog, case .object = backlog else {
            return problems + ["gaps: backlog \(show(backlog)), expected the report of seq \(report.seq)"]
        }
        let b = expected.backlog
        let arrival = backlog["reported_at"]?.string.flatMap(UTCTime.parseMillis)
        let since = backlog["since"]
        let checks: [(String, Bool, String)] = [
            ("reported_seq", int(backlog["reported_seq"]) == report.seq, "\(report.seq)"),
            ("seq_epoch", int(backlog["seq_epoch"]) == report.epoch, "\(report.epoch)"),
            ("reported_time", backlog["reported_time"]?.string.flatMap(UTCTime.parseMillis) == report.timeMs, time(report.timeMs)),
            ("reported_at", arrival.map { (report.arrivalFromMs...report.arrivalToMs).contains($0) } == true,
             "within \(time(report.arrivalFromMs))..\(time(report.arrivalToMs))"),
            ("events", int(backlog["events"]) == (b?.events ?? 0), "\(b?.events ?? 0)"),
            ("since", b?.sinceMs.map { since?.string.flatMap(UTCTime.parseMillis) == $0 } ?? (since == .some(.null)),
             b?.sinceMs.map(time) ?? "null"),
        ]
        for (field, ok, want) in checks where !ok {
            problems.append("backlog: \(field) \(show(backlog[field])), expected \(want)")
        }
        return problems
    }
}
