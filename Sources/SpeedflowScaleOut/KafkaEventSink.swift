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

    /// One message per camera, keyed by `kvfv_id`, each camera's events in request order.
    func messages(
        _ events: [CameraEvent], reports: [CameraReport] = [], arrivalMs: Int64, writer: String? = nil
    ) -> [KafkaProducerMessage] {
        var order: [String] = []
        var byCamera: [String: [CameraEvent]] = [:]
        var reportsByCamera: [String: [CameraReport]] = [:]
        for e in events {
            if byCamera[e.kvfvId] == nil { order.append(e.kvfvId) }
            byCamera[e.kvfvId, default: []].append(e)
        }
        for r in reports {
            if byCamera[r.kvfvId] == nil && reportsByCamera[r.kvfvId] == nil { order.append(r.kvfvId) }
            reportsByCamera[r.kvfvId, default: []].append(r)
        }
        return order.map { camera in
            KafkaProducerMessage(
                topic: topic, key: Array(camera.utf8),
                value: EventRecord(
                    arrivalMs: arrivalMs, events: byCamera[camera] ?? [], writer: writer,
                    reports: reportsByCamera[camera] ?? []
                ).encoded())
        }
    }

    public func ingest(
        _ events: [CameraEvent], reports: [CameraReport], arrivalMs: Int64, writer: String? = nil
    ) async throws(IngestError) -> IngestOutcome {
        guard !events.isEmpty || !reports.isEmpty else { return IngestOutcome() }
        let before = pending.add(events.count, ordering: .relaxed).oldValue
        defer { pending.subtract(events.count, ordering: .relaxed) }
        if before > 0 && before + events.count > maxPendingEvents {
            throw IngestError(.overloaded, "\(before) events are waiting for Kafka")
        }
        do {
            try await producer.send(messages(events, reports: reports, arrivalMs: arrivalMs, writer: writer))
        } catch {
            throw IngestError(.logFailure, "Kafka did not confirm delivery: \(error)")
        }
        return IngestOutcome(accepted: events.count)
    }

    public var queueDepth: Int { pending.load(ordering: .relaxed) }
}
#endif
