import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Cameras that number their passes, end to end through the log, the bucket table and the SQLite store.
@Suite("Engine: sequence numbers, gaps, backlog, late counts")
struct SequenceEngineTests {
    @Test("Loss, delays, resends and conflicting resends: every gap, backlog and window equals the naive truth, across restarts and a replay", arguments: [1, 2] as [UInt64])
    func exactAcrossRestarts(seed: UInt64) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var engine = try makeEngine(dir) { $0.flushIntervalMs = 5 }
        engine.start()
        let now = engine.now
        let fleet = SequencedFleet(seed: seed, cameras: 4, passes: 400, nowMs: now)
        var truth = SequenceTruth()
        var accepted = 0, expected = 0
        for (i, d) in fleet.deliveries.enumerated() {
            for e in d.events where truth.add(e, arrivalMs: d.arrivalMs) { expected += 1 }
            for r in d.reports { truth.add(r, arrivalMs: d.arrivalMs) }
            accepted += try await engine.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil).accepted
            // Restart twice along the way: the ledger and the reports come back from the store.
            if i == fleet.deliveries.count / 3 || i == 2 * fleet.deliveries.count / 3 {
                engine.shutdown()
                engine = try makeEngine(dir) { $0.flushIntervalMs = 5 }
                engine.start()
            }
        }
        #expect(accepted == expected)
        #expect(truth.conflicting.values.reduce(0, +) > 0, "the stream has conflicting resends")
        #expect(truth.counted.keys.contains { !truth.gaps($0).isEmpty }, "the stream has gaps")
        #expect(truth.counted.keys.contains { truth.backlog($0) != nil }, "the stream has a backlog")
        let range = (now - 2 * 86_400_000, now + 600_000)
        try await expectSequencesExact(engine.queries, truth, fromMs: range.0, toMs: range.1)
        engine.shutdown()

        // The same log into an empty store: the ledger is rebuilt by the replay, the answers are the same.
        let replayed = try makeEngine(dir, storeName: "replayed.sqlite")
        try replayed.recover()
        try await expectSequencesExact(replayed.queries, truth, fromMs: range.0, toMs: range.1)
    }
}
