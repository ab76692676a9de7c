#if Kafka
import Logging
import SpeedflowKafka

// Helpers of the Kafka test targets (SpeedflowKafkaTests, SpeedflowScaleOutTests), against librdkafka's mock
// cluster: the one sanctioned Kafka stand-in.

public struct TimedOut: Error, CustomStringConvertible {
    public var description: String
}

/// Runs `body`, failing with `TimedOut` (and cancelling it) after `timeout`.
public func withTimeout<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
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
public func eventually(_ timeout: Duration, _ what: String, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TimedOut(description: "timed out after \(timeout): \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A logger that shows errors only.
public func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .error
    return logger
}

/// Reads from a fresh consumer group until `count` messages arrived; returns them in arrival order.
public func consumeAll(
    bootstrap: String, topic: String, group: String, count: Int,
    startOffsets: @escaping KafkaConsumer.StartOffsets = { _ in [:] }
) async throws -> [KafkaConsumerMessage] {
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

/// A 3-broker mock cluster with `topic` of `partitions` partitions, replicated 3 times.
public func mockCluster(topic: String, partitions: Int) throws -> KafkaMockCluster {
    let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger("mock"))
    try cluster.createTopic(topic, partitions: partitions, replicationFactor: 3)
    return cluster
}
#endif
