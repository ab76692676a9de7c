#if Kafka
import Logging
import SpeedflowKafka
import SpeedflowTestSupport
import Synchronization
import Testing

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// Thread-safe event log of one consumer, for tests that watch rebalances.
final class ConsumerLog: Sendable {
    struct State {
        var assignment: Set<KafkaPartition> = []
        var assignedEvents: [[KafkaPartition]] = []
        var revokedEvents: [[KafkaPartition]] = []
        var messages: [KafkaConsumerMessage] = []
        var ended = false
        var error: String?
    }
    let state = Mutex(State())

    func run(_ consumer: KafkaConsumer) async {
        do {
            for try await event in consumer.events {
                state.withLock { state in
                    switch event {
                    case .assigned(let offsets):
                        state.assignedEvents.append(offsets.keys.sorted())
                        state.assignment.formUnion(offsets.keys)
                    case .revoked(let partitions):
                        state.revokedEvents.append(partitions.sorted())
                        state.assignment.subtract(partitions)
                    case .messages(let batch):
                        state.messages += batch
                    }
                }
            }
        } catch {
            state.withLock { $0.error = "\(error)" }
        }
        state.withLock { $0.ended = true }
    }
}
#endif
