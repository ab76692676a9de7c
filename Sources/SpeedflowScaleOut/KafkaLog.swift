#if Kafka
import SpeedflowKafka
import SpeedflowLog
import SpeedflowModel
import Synchronization

/// The log of an ingest node: appending produces to Kafka — one message per camera per request, keyed by
/// `kvfv_id`, value an `EventRecord` — and returns only when every delivery report says it is in Kafka
/// (idempotent producer, `acks=all`).
///
/// Keyed by camera so that a camera lives in one partition, read in order by one aggregator: "first copy wins"
/// is then decided the same way on every replay.
public final class KafkaLog: ConcurrentAppendLog {
    public let producer: KafkaProducer
    public let topic: String
    private let appended = Atomic<UInt64>(0)
    private let bytes = Atomic<Int64>(0)

    public init(producer: KafkaProducer, topic: String) {
        self.producer = producer
        self.topic = topic
    }

    /// One message per camera per record, keyed by `kvfv_id`, each camera's events in request order.
    func messages(_ payloads: [[UInt8]]) throws -> (messages: [KafkaProducerMessage], bytes: Int64) {
        var messages: [KafkaProducerMessage] = []
        var size: Int64 = 0
        for payload in payloads {
            let record = try payload.withUnsafeBytes { try EventRecord.decode($0) }
            var order: [String] = []
            var byCamera: [String: [CameraEvent]] = [:]
            for e in record.events {
                if byCamera[e.kvfvId] == nil { order.append(e.kvfvId) }
                byCamera[e.kvfvId, default: []].append(e)
            }
            for camera in order {
                let value = EventRecord(arrivalMs: record.arrivalMs, events: byCamera[camera]!).encoded()
                size += Int64(value.count)
                messages.append(KafkaProducerMessage(topic: topic, key: Array(camera.utf8), value: value))
            }
        }
        return (messages, size)
    }

    public func appendConcurrently(_ payload: [UInt8]) async throws {
        let (messages, size) = try self.messages([payload])
        do {
            try await producer.send(messages)
        } catch {
            throw LogError(.io, "Kafka did not confirm delivery: \(error)")
        }
        bytes.add(size, ordering: .relaxed)
        appended.add(1, ordering: .relaxed)
    }

    /// Ingest nodes append through `appendConcurrently` (the engine skips its group-commit thread when it does
    /// not aggregate); a blocking append would only hold the commit thread hostage to delivery reports.
    public func append(_ payloads: [[UInt8]]) throws -> [LogOffset] {
        throw LogError(.closed, "the Kafka log takes concurrent appends only (an engine that does not aggregate)")
    }

    public var endOffset: LogOffset { LogOffset(appended.load(ordering: .relaxed)) }
    public var startOffset: LogOffset { .zero }
    public var sizeInBytes: Int64 { bytes.load(ordering: .relaxed) }

    public func read(from offset: LogOffset, _ body: (UnsafeRawBufferPointer, LogOffset) throws -> Void) throws {
        // Ingest nodes keep no state to replay: aggregators read Kafka.
    }

    public func removeSegments(consumedUpTo consumed: LogOffset, lastWrittenBeforeMs cutoffMs: Int64) throws -> Int { 0 }
    public func close() throws {}
}
#endif
