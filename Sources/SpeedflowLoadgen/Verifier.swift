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
}

/// Compares every 5-minute window of every camera with the oracle built from acknowledged events:
/// count exactly, average and harmonic mean to 1e-9 relative, min and max exactly.
struct Verifier: Sendable {
    static let relativeTolerance = 1e-9
    static let maxWindowsPerQuery: Int64 = 10_000
    static let mismatchSamples = 10

    let client: HTTPClient
    let baseURL: String
    let parallelism: Int
    /// `Authorization` for the queries (a reader or admin token), if the server requires one.
    var authorization: String? = nil

    func verify(oracles: [(id: String, oracle: WindowOracle)]) async -> VerificationReport {
        var report = VerificationReport(passed: false)
        await withTaskGroup(of: VerificationReport.self) { group in
            var next = 0
            while next < min(parallelism, oracles.count) {
                let (id, oracle) = oracles[next]
                group.addTask { await verifyCamera(id: id, oracle: oracle) }
                next += 1
            }
            while let part = await group.next() {
                report.cameras += part.cameras
                report.windowsCompared += part.windowsCompared
                report.nonEmptyWindows += part.nonEmptyWindows
                report.eventsExpected += part.eventsExpected
                report.eventsFound += part.eventsFound
                report.mismatches += part.mismatches
                for m in part.firstMismatches where report.firstMismatches.count < Self.mismatchSamples {
                    report.firstMismatches.append(m)
                }
                if next < oracles.count {
                    let (id, oracle) = oracles[next]
                    group.addTask { await verifyCamera(id: id, oracle: oracle) }
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

    private func verifyCamera(id: String, oracle: WindowOracle) async -> VerificationReport {
        var report = VerificationReport(passed: false)
        report.cameras = 1
        report.eventsExpected = oracle.events
        guard let first = oracle.windows.keys.min(), let last = oracle.windows.keys.max() else { return report }
        // One empty window either side: nothing may leak into the neighbours.
        var from = first - 1
        let end = last + 2
        func mismatch(_ text: String) {
            report.mismatches += 1
            if report.firstMismatches.count < Self.mismatchSamples { report.firstMismatches.append("\(id) \(text)") }
        }
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
}
