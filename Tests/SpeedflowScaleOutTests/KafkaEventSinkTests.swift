#if Kafka
import Foundation
import SpeedflowKafka
import SpeedflowEngine
import SpeedflowModel
import SpeedflowScaleOut
import SpeedflowTestSupport
import Testing

/// The ingest nodes' event sink through librdkafka's mock cluster: what lands in the topic, read back.
struct KafkaEventSinkTests {
    @Test func oneMessagePerCameraPerRequestKeyedByCameraEachCamerasEventsInRequestOrder() async throws {
        let cluster = try mockCluster(topic: "events", partitions: 6)
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(bootstrapServers: cluster.bootstrapServers),
                                         logger: testLogger("producer"))
        let sink = KafkaEventSink(producer: producer, topic: "events", maxPendingEvents: 1_000_000)
        let now = nowMs()
        // Requests interleave cameras; arrivalMs tells the requests apart.
        var records = randomRequests(seed: 5, cameras: 15, requests: 120, nowMs: now)
        for i in records.indices { records[i].arrivalMs = Int64(i) }
        for record in records {
            // Every other request is attributed to a credential; the writer travels with each camera's message.
            let outcome = try await sink.ingest(record.events, arrivalMs: record.arrivalMs, writer: record.arrivalMs % 2 == 0 ? "w\(record.arrivalMs)" : nil)
            #expect(outcome == IngestOutcome(accepted: record.events.count), "every valid event is accepted; dedup is downstream")
        }
        #expect(sink.queueDepth == 0)

        // Expected: per request, each camera once, with its events in request order.
        var expected: [String: [[CameraEvent]]] = [:]  // camera -> its messages' events, in request order
        var expectedCount = 0
        for record in records {
            var order: [String] = []
            var byCamera: [String: [CameraEvent]] = [:]
            for e in record.events {
                if byCamera[e.kvfvId] == nil { order.append(e.kvfvId) }
                byCamera[e.kvfvId, default: []].append(e)
            }
            for camera in order { expected[camera, default: []].append(byCamera[camera]!) }
            expectedCount += order.count
        }
        let messages = try await consumeAll(bootstrap: cluster.bootstrapServers, topic: "events", group: "check",
                                            count: expectedCount)
        await producer.close()
        #expect(messages.count == expectedCount)

        var got: [String: [[CameraEvent]]] = [:]
        var arrivals: [String: [Int64]] = [:]
        var partitionOf: [String: Int32] = [:]
        for m in messages {
            let key = String(decoding: m.key, as: UTF8.self)
            let record = try m.value.withUnsafeBytes { try EventRecord.decode($0) }
            #expect(record.events.allSatisfy { $0.kvfvId == key }, "keyed by the camera of every event it holds")
            #expect(record.writer == (record.arrivalMs % 2 == 0 ? "w\(record.arrivalMs)" : nil), "the request's writer")
            #expect(partitionOf[key, default: m.partition] == m.partition, "a camera lives in one partition")
            partitionOf[key] = m.partition
            got[key, default: []].append(record.events)
            arrivals[key, default: []].append(record.arrivalMs)
        }
        #expect(got == expected, "each camera's events in request order, one message per request it was in")
        for (camera, a) in arrivals {
            #expect(a == a.sorted() && Set(a).count == a.count, "camera \(camera): one message per request, in order")
        }
        #expect(Set(partitionOf.values).count > 1, "cameras spread over partitions")
    }
}
#endif
