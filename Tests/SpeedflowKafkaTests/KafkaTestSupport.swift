#if Kafka
import Logging
import SpeedflowKafka
import Synchronization
import Testing

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Runs `body`, failing with `TimedOut` (and cancelling it) after `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration, _ what: String,
                              _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw TimedOut(description: "timed out after \(timeout): \(what)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Waits until `condition` holds, checking every 20 ms, failing after `timeout`.
func eventually(_ timeout: Duration, _ what: String, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TimedOut(description: "timed out after \(timeout): \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .error
    return logger
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// Reads from a fresh consumer group until `count` messages arrived; returns them in arrival order.
func consumeAll(bootstrap: String, topic: String, group: String, count: Int,
                startOffsets: @escaping KafkaConsumer.StartOffsets = { _ in [:] }) async throws -> [KafkaConsumerMessage] {
    let consumer = try KafkaConsumer(
        configuration: KafkaConsumerConfiguration(bootstrapServers: bootstrap, groupID: group, topics: [topic]),
        logger: testLogger("consumer"), startOffsets: startOffsets)
    let messages = try await withTimeout(.seconds(90), "consuming \(count) messages from \(topic)") {
        var received: [KafkaConsumerMessage] = []
        for try await event in consumer.events {
            if case .messages(let batch) = event { received += batch }
            if received.count >= count { break }
        }
        return received
    }
    await consumer.close()
    return messages
}

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
