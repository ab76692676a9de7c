#if Kafka
import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
@testable import SpeedflowScaleOut
import SpeedflowTestSupport
import Testing

/// Numbered passes and camera reports through the scale-out chain: `KafkaEventSink` (records split per camera,
/// version 4 with seq and reports) → librdkafka's mock cluster → partition aggregators → their stores. A second
/// consumer group run over the same stores (a takeover) gets every delivery again: nothing counts twice.
struct SequenceChainTests {
    @Test func numberedPassesAndReportsAreExactThroughKafkaAndATakeover() async throws {
        let chain = try KafkaChain(partitions: 3)
        defer { chain.remove() }
        let sink = chain.sink
        let now = nowMs()
        let fleet = SequencedFleet(seed: 5, cameras: 6, passes: 200, nowMs: now)
        var truth = SequenceTruth()
        var messages = 0
        for d in fleet.deliveries {
            for e in d.events { _ = truth.add(e, arrivalMs: d.arrivalMs) }
            for r in d.reports { truth.add(r, arrivalMs: d.arrivalMs) }
            _ = try await sink.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil)
            messages += Set(d.events.map(\.kvfvId) + d.reports.map(\.kvfvId)).count
        }
        let range = (now - 2 * 86_400_000, now + 600_000)
        #expect(truth.counted.keys.contains { truth.backlog($0) != nil }, "the stream has a backlog")
        func check(_ aggregators: [Aggregator]) async throws {
            for camera in truth.counted.keys.sorted() {
                // The partition that owns the camera answers for it.
                let owner = try #require(aggregators.first { $0.hotStates(kvfvId: camera, buckets: 0..<0) != nil })
                var one = SequenceTruth()
                one.counted = truth.counted.filter { $0.key == camera }
                one.reports = truth.reports.filter { $0.key == camera }
                let queries = CameraQueries(view: owner, store: owner.store, configuration: EngineConfiguration())
                try await expectSequencesExact(queries, one, fromMs: range.0, toMs: range.1)
            }
        }
        try await check(try await chain.aggregate(group: "first", messages: messages))

        // Every delivery again, then a new group over the same stores replays the whole topic: all duplicates.
        for d in fleet.deliveries { _ = try await sink.ingest(d.events, reports: d.reports, arrivalMs: d.arrivalMs, writer: nil) }
        await chain.producer.close()
        let again = try await chain.aggregate(group: "second", messages: 2 * messages)
        try await check(again)
    }
}
#endif
