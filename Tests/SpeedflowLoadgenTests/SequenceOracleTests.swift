import Foundation
import Testing

@testable import SpeedflowLoadgen

/// The sequence side of `--verify`: the record of what each numbering camera did, the expectation derived from
/// it (gaps, backlog, `complete`/`missing`), lateness, and the comparison with the server's answers. If these were
/// wrong, a passing `--verify` would prove nothing.
@Suite("Loadgen sequence oracle")
struct SequenceOracleTests {
    /// One numbered pass and what became of it.
    struct Pass {
        var epoch: Int64
        var seq: Int64
        var timeMs: Int64
        var fate: SequenceRecord.Fate
    }

    /// The brute-force truth over every pass: sets and sorts, nothing clever.
    struct BruteForce {
        var passes: [Pass]
        var report: SequenceRecord.Report?

        var received: [Int64: [Int64: Int64]] {  // epoch → seq → time
            var out: [Int64: [Int64: Int64]] = [:]
            for p in passes { if case .sent = p.fate { out[p.epoch, default: [:]][p.seq] = p.timeMs } }
            return out
        }

        var gaps: [SequenceExpectation.Gap] {
            var out: [SequenceExpectation.Gap] = []
            let r = received
            for epoch in r.keys.sorted() {
                let seqs = r[epoch]!.keys.sorted()
                for (a, b) in zip(seqs, seqs.dropFirst()) where b > a + 1 {
                    out.append(.init(epoch: epoch, first: a + 1, last: b - 1, afterMs: r[epoch]![a]!, beforeMs: r[epoch]![b]!))
                }
            }
            return out
        }

        var backlog: SequenceExpectation.Backlog? {
            guard let report else { return nil }
            let r = received
            if let mine = r[report.epoch], let newest = mine.keys.max() {
                return report.seq > newest ? .init(events: report.seq - newest, sinceMs: mine[newest]!, untilMs: report.timeMs) : nil
            }
            if let latest = r.keys.max(), latest > report.epoch { return nil }
            return .init(events: report.seq + 1, sinceMs: nil, untilMs: report.timeMs)
        }

        func window(startMs: Int64, endMs: Int64) -> (complete: Bool, missing: Int64)? {
            let r = received
            guard !r.isEmpty || report != nil else { return nil }
            var missing: Int64 = 0
            for g in gaps where min(g.afterMs, g.beforeMs) < endMs && max(g.afterMs, g.beforeMs) >= startMs { missing += g.count }
            if let b = backlog, (b.sinceMs ?? .min) < endMs && b.untilMs >= startMs { missing += b.events }
            var known = Int64.min
            if let latest = r.keys.max() { known = r[latest]![r[latest]!.keys.max()!]! }
            if let report { known = max(known, report.timeMs) }
            return (missing == 0 && known >= endMs - 1, missing)
        }
    }

    /// A camera's random life: epochs, a reserved history range numbered late, losses, pending passes at the end,
    /// reports acknowledged now and then (some of them older than one already held).
    static func randomCamera(seed: UInt64) -> (record: SequenceRecord, truth: BruteForce) {
        var rng = FastRandom(seed: seed)
        let base: Int64 = 1_743_800_000_000
        var record = SequenceRecord()
        var truth = BruteForce(passes: [], report: nil)
        var recorded: [Pass] = []
        func pass(_ epoch: Int64, _ seq: Int64, fate: SequenceRecord.Fate) {
            let p = Pass(epoch: epoch, seq: seq, timeMs: base + Int64(rng.below(4 * 3_600_000)), fate: fate)
            record.note(epoch: p.epoch, seq: p.seq, timeMs: p.timeMs, fate: p.fate)
            truth.passes.append(p)
            recorded.append(p)
            if rng.chance(0.05) {
                let about = recorded[rng.below(recorded.count)]
                let r = SequenceRecord.Report(epoch: about.epoch, seq: about.seq, timeMs: about.timeMs,
                                              arrivalFromMs: about.timeMs + 5, arrivalToMs: about.timeMs + 9)
                record.acknowledged(r)
                if let held = truth.report, (held.epoch, held.seq) >= (r.epoch, r.seq) {} else { truth.report = r }
            }
        }
        let epochs = 1 + rng.below(3)
        let lossRate = [0, 0.02, 0.2, 0.7][rng.below(4)]
        for epoch in 0..<Int64(epochs) {
            let start: Int64 = epoch == 0 ? Int64(rng.below(1_000_000)) : 0
            let history = epoch == 0 && rng.chance(0.5) ? Int64(rng.below(40)) : 0
            var next = start + history
            let n = rng.below(120)
            let historyAt = rng.below(n + 1)
            for i in 0..<n {
                if i == historyAt {
                    for h in start..<(start + history) { pass(epoch, h, fate: rng.chance(lossRate) ? .lost : .sent) }
                }
                pass(epoch, next, fate: rng.chance(lossRate) ? .lost : .sent)
                next += 1
            }
            if epoch == Int64(epochs - 1) {
                for _ in 0..<rng.below(4) {
                    pass(epoch, next, fate: .pending)
                    next += 1
                }
            }
        }
        return (record, truth)
    }

    @Test("Gaps, backlog, complete and missing equal the brute-force truth", arguments: 0..<300)
    func expectationIsTheTruth(seed: Int) {
        let (record, truth) = Self.randomCamera(seed: UInt64(seed))
        let expected = SequenceExpectation(record)
        #expect(expected.gaps == truth.gaps)
        #expect(expected.backlog == truth.backlog)
        #expect(expected.report == truth.report)
        #expect(expected.received == Int64(truth.received.values.reduce(0) { $0 + $1.count }))
        #expect(expected.sequenced == (!truth.received.isEmpty || truth.report != nil))
        let start: Int64 = 1_743_800_000_000 / 300_000 * 300_000 - 600_000
        for w in 0..<60 {
            let from = start + Int64(w) * 300_000
            let got = expected.window(startMs: from, endMs: from + 300_000)
            let want = truth.window(startMs: from, endMs: from + 300_000)
            #expect(got?.complete == want?.complete && got?.missing == want?.missing, "window \(w)")
        }
    }

    @Test("A report is kept as the server keeps it: newest (epoch, seq) wins, an identical one keeps the first arrival")
    func reports() {
        var record = SequenceRecord()
        let a = SequenceRecord.Report(epoch: 0, seq: 10, timeMs: 100, arrivalFromMs: 1, arrivalToMs: 2)
        record.acknowledged(a)
        record.acknowledged(.init(epoch: 0, seq: 10, timeMs: 100, arrivalFromMs: 50, arrivalToMs: 60))
        #expect(record.report == a)
        record.acknowledged(.init(epoch: 0, seq: 9, timeMs: 200, arrivalFromMs: 70, arrivalToMs: 80))
        #expect(record.report == a)
        let restarted = SequenceRecord.Report(epoch: 1, seq: 0, timeMs: 300, arrivalFromMs: 90, arrivalToMs: 95)
        record.acknowledged(restarted)
        #expect(record.report == restarted)
    }

    @Test("Nothing of the reported epoch arrived: the backlog is every number from 0, since unknown; stale after a newer epoch")
    func backlogOfAnEmptyEpoch() {
        var record = SequenceRecord()
        record.note(epoch: 0, seq: 500, timeMs: 1000, fate: .sent)
        record.note(epoch: 1, seq: 0, timeMs: 2000, fate: .lost)
        record.note(epoch: 1, seq: 1, timeMs: 3000, fate: .pending)
        record.acknowledged(.init(epoch: 1, seq: 1, timeMs: 3000, arrivalFromMs: 0, arrivalToMs: 0))
        let e = SequenceExpectation(record)
        #expect(e.backlog == .init(events: 2, sinceMs: nil, untilMs: 3000))
        #expect(e.knownThroughMs == 3000)
        // Every window up to the report is missing those two.
        #expect(e.window(startMs: -300_000, endMs: 0)?.missing == 2)
        #expect(e.window(startMs: 3001, endMs: 300_000)?.missing == 0)
        // A report of an older epoch than one that arrived is stale: no backlog.
        var stale = SequenceRecord()
        stale.note(epoch: 2, seq: 0, timeMs: 5000, fate: .sent)
        stale.acknowledged(.init(epoch: 1, seq: 7, timeMs: 4000, arrivalFromMs: 0, arrivalToMs: 0))
        #expect(SequenceExpectation(stale).backlog == nil)
        #expect(SequenceExpectation(stale).knownThroughMs == 5000)
        #expect(SequenceExpectation(SequenceRecord()).window(startMs: 0, endMs: 300_000) == nil)
    }

    @Test("Complete needs no missing pass and the camera to have told what it recorded up to the window's last millisecond")
    func completeness() {
        var record = SequenceRecord()
        record.note(epoch: 0, seq: 1, timeMs: 10_000, fate: .sent)
        record.note(epoch: 0, seq: 2, timeMs: 299_999, fate: .sent)
        func at(_ e: SequenceExpectation, _ from: Int64, _ to: Int64) -> String {
            e.window(startMs: from, endMs: to).map { "\($0.complete) \($0.missing)" } ?? "nil"
        }
        var e = SequenceExpectation(record)
        #expect(at(e, 0, 300_000) == "true 0")
        #expect(at(e, 300_000, 600_000) == "false 0")
        record.note(epoch: 0, seq: 3, timeMs: 400_000, fate: .lost)
        record.note(epoch: 0, seq: 4, timeMs: 900_000, fate: .sent)
        e = SequenceExpectation(record)
        // The gap's span [299_999, 900_000] reaches the first window by its last millisecond.
        #expect(at(e, 0, 300_000) == "false 1")
        #expect(at(e, 600_000, 900_000) == "false 1")
        #expect(at(e, 900_000, 1_200_000) == "false 1")
        #expect(at(e, 900_001, 1_500_000) == "false 0")
    }

    @Test("Lateness: late only when the earliest possible arrival is past the grace deadline, on time when the latest is not")
    func lateness() {
        let bucket: Int64 = 1_743_848_100_000  // a bucket start
        let deadline = bucket + 300_000 + 300_000
        let t = bucket + 123
        #expect(Lateness.of(eventMs: t, arrivalFromMs: deadline + 1, arrivalToMs: deadline + 9, graceMs: 300_000) == .late)
        #expect(Lateness.of(eventMs: t, arrivalFromMs: deadline - 9, arrivalToMs: deadline, graceMs: 300_000) == .onTime)
        #expect(Lateness.of(eventMs: t, arrivalFromMs: deadline, arrivalToMs: deadline + 1, graceMs: 300_000) == .ambiguous)
        var w = ExpectedWindow()
        w.noteArrival(.late, arrivalFromMs: 10, arrivalToMs: 20)
        w.noteArrival(.late, arrivalFromMs: 5, arrivalToMs: 30)
        w.noteArrival(.ambiguous, arrivalFromMs: 40, arrivalToMs: 50)
        w.noteArrival(.onTime, arrivalFromMs: 60, arrivalToMs: 70)
        #expect(w.lateSure == 2 && w.lateAmbiguous == 1 && w.revisedFromMs == 10 && w.revisedToMs == 50)
    }

    func window(late: Int, revised: String?, complete: Bool?, missing: Int?) -> MiniJSON {
        .object([
            "late_count": .number(Double(late)), "revised_at": revised.map(MiniJSON.string) ?? .null,
            "complete": complete.map(MiniJSON.bool) ?? .null, "missing": missing.map { .number(Double($0)) } ?? .null,
        ])
    }

    @Test("Window checks: late_count exact or within the ambiguous range, revised_at within its bounds, complete/missing exact")
    func windowChecks() {
        var w = ExpectedWindow()
        let from = UTCTime.parseMillis("2025-04-05T10:20:00Z")!
        w.noteArrival(.late, arrivalFromMs: from, arrivalToMs: from + 2000)
        #expect(Verifier.lateness(of: window(late: 1, revised: "2025-04-05T10:20:01.5Z", complete: nil, missing: nil), w).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 2, revised: "2025-04-05T10:20:01.5Z", complete: nil, missing: nil), w).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 1, revised: "2025-04-05T10:20:03Z", complete: nil, missing: nil), w).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 1, revised: nil, complete: nil, missing: nil), w).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 0, revised: nil, complete: nil, missing: nil), w).isEmpty)
        w.noteArrival(.ambiguous, arrivalFromMs: from, arrivalToMs: from + 5000)
        #expect(Verifier.lateness(of: window(late: 2, revised: "2025-04-05T10:20:04Z", complete: nil, missing: nil), w).isEmpty)
        #expect(Verifier.lateness(of: window(late: 1, revised: "2025-04-05T10:20:01Z", complete: nil, missing: nil), w).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 3, revised: "2025-04-05T10:20:01Z", complete: nil, missing: nil), w).isEmpty)
        #expect(Verifier.lateness(of: window(late: 0, revised: nil, complete: nil, missing: nil), ExpectedWindow()).isEmpty)
        #expect(!Verifier.lateness(of: window(late: 0, revised: "2025-04-05T10:20:01Z", complete: nil, missing: nil), ExpectedWindow()).isEmpty)

        #expect(Verifier.completeness(of: window(late: 0, revised: nil, complete: false, missing: 3), (false, 3)).isEmpty)
        #expect(Verifier.completeness(of: window(late: 0, revised: nil, complete: true, missing: 3), (false, 3)).count == 1)
        #expect(Verifier.completeness(of: window(late: 0, revised: nil, complete: false, missing: 2), (false, 3)).count == 1)
        #expect(Verifier.completeness(of: window(late: 0, revised: nil, complete: nil, missing: nil), nil).isEmpty)
        #expect(Verifier.completeness(of: window(late: 0, revised: nil, complete: true, missing: 0), nil).count == 2)
    }

    @Test("The gaps answer is compared field by field, backlog included")
    func gapsComparison() throws {
        var record = SequenceRecord()
        let t0 = UTCTime.parseMillis("2025-04-05T10:00:00Z")!
        for (seq, fate) in [(10, SequenceRecord.Fate.sent), (11, .lost), (12, .lost), (13, .sent), (14, .sent), (15, .pending)] {
            record.note(epoch: 0, seq: Int64(seq), timeMs: t0 + Int64(seq) * 1000, fate: fate)
        }
        record.acknowledged(.init(epoch: 0, seq: 15, timeMs: t0 + 15_000, arrivalFromMs: t0 + 20_000, arrivalToMs: t0 + 21_000))
        let expected = SequenceExpectation(record)
        let good = """
            {"kvfv_id":"KV00001","sequenced":true,"received":3,"missing_total":2,"truncated":false,
             "gaps":[{"seq_epoch":0,"first_seq":11,"last_seq":12,"count":2,"after":"2025-04-05T10:00:10Z","before":"2025-04-05T10:00:13Z"}],
             "backlog":{"reported_seq":15,"seq_epoch":0,"reported_time":"2025-04-05T10:00:15Z","reported_at":"2025-04-05T10:00:20.5Z",
                        "events":1,"since":"2025-04-05T10:00:14Z"}}
            """
        #expect(Verifier.compareGaps(try #require(MiniJSON.parse(Array(good.utf8))), expected) == [])
        for (from, to, field) in [
            (#""last_seq":12"#, #""last_seq":13"#, "last_seq"), (#""before":"2025-04-05T10:00:13Z""#, #""before":"2025-04-05T10:00:14Z""#, "before"),
            (#""events":1"#, #""events":2"#, "events"), (#""reported_at":"2025-04-05T10:00:20.5Z""#, #""reported_at":"2025-04-05T10:00:25Z""#, "reported_at"),
            (#""received":3"#, #""received":4"#, "received"), (#""since":"2025-04-05T10:00:14Z""#, #""since":null"#, "since"),
        ] {
            let bad = try #require(MiniJSON.parse(Array(good.replacingOccurrences(of: from, with: to).utf8)))
            let problems = Verifier.compareGaps(bad, expected)
            #expect(problems.count == 1 && problems[0].contains(field), "\(field): \(problems)")
        }
    }

    @Test("Generated passes are numbered: history takes the reserved numbers below the live ones; lost passes are never returned")
    func numbering() {
        var configuration = LoadgenConfiguration()
        configuration.invalidShare = 0
        configuration.outageShare = 1
        configuration.backlogEvents = 50
        configuration.lossShare = 0.2
        configuration.counterRestartShare = 0
        var rng = FastRandom(seed: 3)
        var generator = TrafficGenerator(seed: 4, configuration: configuration)
        var camera = TrafficGenerator.makeCamera(index: 0, configuration: configuration, rng: &rng)
        let start = camera.historyNext
        #expect(camera.historyEnd == start + 50 && camera.nextSeq == start + 50 && start < 1 << 40)
        let now: Int64 = 1_743_848_130_123
        var sent: [SimulatedEvent] = []
        for _ in 0..<100 {
            var e = generator.makeLiveEvent(camera: &camera, nowMillis: now, spreadMillis: 1000)
            if generator.number(&e, camera: &camera) { sent.append(e) }
        }
        let backlog = generator.makeBacklog(camera: &camera, offlineSince: now - 5000, nowMillis: now, liveRatePerCamera: 10)
        sent += backlog
        let history = backlog.filter { $0.seq < start + 50 }
        #expect(history.allSatisfy { $0.seq >= start && $0.epoch == 0 })
        #expect(zip(history, history.dropFirst()).allSatisfy { $0.seq < $1.seq })
        #expect(backlog.filter { $0.seq >= start + 50 }.allSatisfy { $0.seq >= start + 150 })
        #expect(Set(sent.map(\.seq)).count == sent.count)
        // The record holds exactly what was sent, and the lost numbers as its gaps (bar those at either end).
        let expected = SequenceExpectation(camera.record)
        #expect(expected.received == Int64(sent.count))
        #expect(Int64(camera.record.lost) + Int64(sent.count) == camera.nextSeq - start)
        let lostInside = expected.gaps.reduce(Int64(0)) { $0 + $1.count }
        #expect(lostInside <= Int64(camera.record.lost) && lostInside > 0)
        #expect(camera.newest?.seq == camera.nextSeq - 1)
    }

    @Test("Numbered events carry seq, and seq_epoch only after a restart")
    func encoding() throws {
        let encoder = EventEncoder(cameraIds: [Array("KV00001".utf8)], cameraOffsetMinutes: [0], runTag: Array("t".utf8))
        var event = SimulatedEvent(camera: 0, sequence: 5, millis: 1_743_848_130_123, speedTenths: 852, lane: 1, flaw: nil)
        event.seq = 1_099_511_627_775
        var out: [UInt8] = []
        encoder.append(event, to: &out)
        var object = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        #expect(object["seq"] as? Int == 1_099_511_627_775 && object["seq_epoch"] == nil)
        event.seq = 0
        event.epoch = 3
        out = []
        encoder.append(event, to: &out)
        object = try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
        #expect(object["seq"] as? Int == 0 && object["seq_epoch"] as? Int == 3)
        event.seq = -1
        out = []
        encoder.append(event, to: &out)
        #expect(!String(decoding: out, as: UTF8.self).contains("seq"))
    }
}
