#if Kafka
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
import Synchronization

/// The event sink of an ingest node: one Kafka message per camera per request, keyed by `kvfv_id` (so a
/// camera lives in one partition, in order), value an `EventRecord`; returns only when every delivery report
/// says it is in Kafka (idempotent producer, `acks=all`). Requests wait for their own messages only: the
/// producer batches and pipelines them. Counting and dedup happen downstream in the aggregators, so every
/// valid event is "accepted".
public final class KafkaEventSink: EventSink {
    let producer: KafkaProducer
    let topic: String
    /// Events waiting for delivery reports beyond which requests are refused `overloaded`.
    let maxPendingEvents: Int
    private let pending = Atomic<Int>(0)

    public init(producer: KafkaProducer, topic: String, maxPendingEvents: Int) {
        self.producer = producer
        self.topic = topic
        self.maxPendingEvents = maxPendingEvents
    }

    /// One message per camera, keyed by `kvfv_id`, each camera's events in request order, with the camera's
    /// reports and rejection tallies (a camera with only rejections gets a message of its tallies alone).
    func messages(
        _ events: [CameraEvent], reports: [CameraReport] = [], rejections: [RejectionTally] = [], arrivalMs: Int64,
        writer: String? = nil
    ) -> [KafkaProducerMessage] {
        var order: [String] = []
        var seen: Set<String> = []
        var byCamera: [String: [CameraEvent]] = [:]
        var reportsByCamera: [String: [CameraReport]] = [:]
        var talliesByCamera: [String: [RejectionTally]] = [:]
        for e in events {
            if seen.insert(e.kvfvId).inserted { order.append(e.kvfvId) }
            byCamera[e.kvfvId, default: []].append(e)
        }
        for r in reports {
            if seen.insert(r.kvfvId).inserted { order.append(r.kvfvId) }
            reportsByCamera[r.kvfvId, default: []].append(r)
        }
        for t in rejections {
            if seen.insert(t.kvfvId).inserted { order.append(t.kvfvId) }
            talliesByCamera[t.kvfvId, default: []].append(t)
        }
        return order.map { camera in
            KafkaProducerMessage(
                topic: topic, key: Array(camera.utf8),
                value: EventRecord(
                    arrivalMs: arrivalMs, events: byCamera[camera] ?? [], writer: writer,
                    reports: reportsByCamera[camera] ?? [], rejections: talliesByCamera[camera] ?? []
                ).encoded())
        }
    }

    public func ingest(
        _ events: [CameraEvent], reports: [CameraReport], rejections: [RejectionTally], arrivalMs: Int64, writer: String? = nil
    ) async throws(IngestError) -> IngestOutcome {
        guard !events.isEmpty || !reports.isEmpty || !rejections.isEmpty else { return IngestOutcome() }
        let before = pending.add(events.count, ordering: .relaxed).oldValue
        defer { pending.subtract(events.count, ordering: .relaxed) }
        if before > 0 && before + events.count > maxPendingEvents {
            throw IngestError(.overloaded, "\(before) events are waiting for Kafka")
        }
        do {
            try await producer.send(messages(events, reports: reports, rejections: rejections, arrivalMs: arrivalMs, writer: writer))
        } catch {
            throw IngestError(.logFailure, "Kafka did not confirm delivery: \(error)")
        }
        return IngestOutcome(accepted: events.count)
    }

    public var queueDepth: Int { pending.load(ordering: .relaxed) }
}
#endif
