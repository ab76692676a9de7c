#if Kafka
import Logging
import SpeedflowKafka
import Synchronization
import SpeedflowTestSupport
import Testing

/// The Kafka client layer against librdkafka's mock cluster (3 brokers, real Kafka protocol on loopback).
@Suite(.serialized)
struct KafkaClientTests {
    static let partitions = 6

    func cluster(topic: String) throws -> KafkaMockCluster {
        let cluster = try KafkaMockCluster(brokers: 3, logger: testLogger("mock"))
        try cluster.createTopic(topic, partitions: Self.partitions, replicationFactor: 3)
        return cluster
    }

    func producer(_ bootstrap: String, timeout: Duration = .seconds(30)) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(bootstrapServers: bootstrap)
        configuration.messageTimeout = timeout
        return try KafkaProducer(configuration: configuration, logger: testLogger("producer"))
    }

    @Test func keyedMessagesArriveOncePerKeyInOrderAfterConfirmedDelivery() async throws {
        let cluster = try cluster(topic: "events")
        let producer = try producer(cluster.bootstrapServers)
        let cameras = 20, perCamera = 100
        // Batches of 100 interleaving cameras; each send returns only after every delivery report.
        var sequence = 0
        while sequence < perCamera {
            var batch: [KafkaProducerMessage] = []
            for s in sequence..<(sequence + 5) {
                for camera in 0..<cameras {
                    batch.append(KafkaProducerMessage(topic: "events", key: bytes("cam-\(camera)"), value: bytes("cam-\(camera):\(s)")))
                }
            }
            try await producer.send(batch)
            sequence += 5
        }
        try await producer.send(topic: "events", key: bytes("cam-0"), value: bytes("cam-0:\(perCamera)"))
        await producer.close()

        let total = cameras * perCamera + 1
        let messages = try await consumeAll(bootstrap: cluster.bootstrapServers, topic: "events", group: "readers", count: total)
        #expect(messages.count == total)
        var partitionOfKey: [String: Int32] = [:]
        var lastSequence: [String: Int] = [:]
        var lastOffset: [Int32: Int64] = [:]
        for message in messages {
            let key = text(message.key)
            let parts = text(message.value).split(separator: ":")
            #expect(String(parts[0]) == key)
            let seq = Int(parts[1])!
            // One key, one partition; each partition in offset order; each key in send order, nothing twice.
            #expect(partitionOfKey[key, default: message.partition] == message.partition)
            partitionOfKey[key] = message.partition
            #expect(message.offset == lastOffset[message.partition, default: -1] + 1)
            lastOffset[message.partition] = message.offset
            #expect(seq == lastSequence[key, default: -1] + 1, "key \(key)")
            lastSequence[key] = seq
        }
        #expect(lastSequence.count == cameras)
        #expect(lastSequence.values.allSatisfy { $0 >= perCamera - 1 })
        #expect(Set(partitionOfKey.values).count > 1, "keys spread over partitions")
    }

    @Test func consumptionStartsAtTheOffsetsTheCallerChooses() async throws {
        let cluster = try cluster(topic: "events")
        let producer = try producer(cluster.bootstrapServers)
        try await producer.send((0..<600).map { KafkaProducerMessage(topic: "events", key: bytes("k\($0)"), value: bytes("\($0)")) })
        await producer.close()
        // Count per partition, then read again from offset 3 of every partition.
        let all = try await consumeAll(bootstrap: cluster.bootstrapServers, topic: "events", group: "first", count: 600)
        let perPartition = Dictionary(grouping: all, by: \.partition).mapValues(\.count)
        #expect(perPartition.count == Self.partitions)
        let expected = perPartition.values.reduce(0) { $0 + max(0, $1 - 3) }
        let asked = Mutex<[KafkaPartition]>([])
        let rest = try await consumeAll(bootstrap: cluster.bootstrapServers, topic: "events", group: "second",
                                        count: expected) { partitions in
            asked.withLock { $0 += partitions }
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, 3) })
        }
        #expect(asked.withLock { Set($0.map(\.partition)) } == Set(0..<Int32(Self.partitions)))
        #expect(rest.count == expected)
        #expect(rest.allSatisfy { $0.offset >= 3 })
        for partition in 0..<Int32(Self.partitions) where perPartition[partition, default: 0] > 3 {
            #expect(rest.first { $0.partition == partition }?.offset == 3)
        }
    }

    @Test func groupMembersSplitPartitionsAndTheSurvivorTakesOverOnClose() async throws {
        let cluster = try cluster(topic: "events")
        let all = Set((0..<Int32(Self.partitions)).map { KafkaPartition(topic: "events", partition: $0) })
        func member() throws -> KafkaConsumer {
            try KafkaConsumer(
                configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: "aggregators", topics: ["events"]),
                logger: testLogger("member"))
        }
        let logA = ConsumerLog(), logB = ConsumerLog()
        let a = try member()
        let taskA = Task { await logA.run(a) }
        try await eventually(.seconds(60), "first member owns every partition") {
            logA.state.withLock { $0.assignment } == all
        }
        let b = try member()
        let taskB = Task { await logB.run(b) }
        try await eventually(.seconds(60), "two members split the partitions") {
            let (ownedA, ownedB) = (logA.state.withLock { $0.assignment }, logB.state.withLock { $0.assignment })
            return !ownedA.isEmpty && !ownedB.isEmpty && ownedA.isDisjoint(with: ownedB) && ownedA.union(ownedB) == all
        }
        #expect(logA.state.withLock { $0.revokedEvents.first } == all.sorted(), "eager: A gave up everything first")

        // Both receive messages of their own partitions.
        let producer = try producer(cluster.bootstrapServers)
        try await producer.send((0..<300).map { KafkaProducerMessage(topic: "events", key: bytes("k\($0)"), value: bytes("\($0)")) })
        try await eventually(.seconds(60), "300 messages split between the members") {
            logA.state.withLock { $0.messages.count } + logB.state.withLock { $0.messages.count } == 300
        }
        let ownedB = logB.state.withLock { $0.assignment }
        #expect(logB.state.withLock { $0.messages.allSatisfy { ownedB.contains($0.topicPartition) } })
        #expect(logA.state.withLock { $0.messages.allSatisfy { !ownedB.contains($0.topicPartition) } })

        // B leaves: A is revoked, then assigned everything, and reads what is produced next on all partitions.
        let revocationsBefore = logA.state.withLock { $0.revokedEvents.count }
        await b.close()
        await taskB.value
        #expect(logB.state.withLock { $0.ended && $0.error == nil })
        try await eventually(.seconds(60), "the survivor owns every partition") {
            logA.state.withLock { $0.assignment } == all
        }
        #expect(logA.state.withLock { $0.revokedEvents.count } > revocationsBefore)
        #expect(logA.state.withLock { $0.assignedEvents.last.map(Set.init) } == all)
        try await producer.send((300..<600).map { KafkaProducerMessage(topic: "events", key: bytes("k\($0)"), value: bytes("\($0)")) })
        try await eventually(.seconds(60), "the survivor reads the next 300") {
            logA.state.withLock { $0.messages.filter { Int(text($0.value))! >= 300 }.count } == 300
        }
        await producer.close()
        await a.close()
        await taskA.value
        #expect(logA.state.withLock { $0.error } == nil)
    }

    @Test func aBrokerDownAndUpLosesNothingAndEverySendSucceedsOrThrows() async throws {
        let cluster = try cluster(topic: "events")
        let producer = try producer(cluster.bootstrapServers, timeout: .seconds(3))
        struct Outcome { var delivered: [Int] = []; var failed: [Int] = []; var errors: [String] = [] }
        let outcome = Mutex(Outcome())
        let phase = Mutex(0)  // 0: before, 1: broker down, 2: back up, 3: stop
        let sender = Task {
            var next = 0
            while phase.withLock({ $0 }) < 3 {
                let ids = Array(next..<(next + 30))
                next += 30
                do {
                    try await producer.send(ids.map { KafkaProducerMessage(topic: "events", key: bytes("cam-\($0 % 12)"), value: bytes("\($0)")) })
                    outcome.withLock { $0.delivered += ids }
                } catch {
                    outcome.withLock { $0.failed += ids; $0.errors.append("\(error)") }
                }
            }
        }
        try await eventually(.seconds(30), "sends succeed before the outage") { outcome.withLock { $0.delivered.count } >= 300 }
        try cluster.setBrokerDown(2)
        phase.withLock { $0 = 1 }
        try await eventually(.seconds(60), "a send fails while broker 2 is down") { !outcome.withLock { $0.failed.isEmpty } }
        try cluster.setBrokerUp(2)
        let deliveredAtUp = outcome.withLock { $0.delivered.count }
        phase.withLock { $0 = 2 }
        try await eventually(.seconds(60), "sends succeed again after broker 2 is back") {
            outcome.withLock { $0.delivered.count } >= deliveredAtUp + 300
        }
        phase.withLock { $0 = 3 }
        await sender.value
        await producer.close()

        let (delivered, failed, errors) = outcome.withLock { ($0.delivered, $0.failed, $0.errors) }
        #expect(errors.allSatisfy { $0.contains("deliveryTimedOut") || $0.contains("deliveryFailed") }, "\(errors.prefix(3))")
        // Read everything back: every acknowledged message is there exactly once; failed ones at most once each.
        let readers = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(bootstrapServers: cluster.bootstrapServers, groupID: "verify", topics: ["events"]),
            logger: testLogger("verify"))
        let wanted = Set(delivered)
        let seen = try await withTimeout(.seconds(90), "reading back \(wanted.count) acknowledged messages") {
            var seen: [Int: Int] = [:]
            for try await event in readers.events {
                guard case .messages(let batch) = event else { continue }
                for message in batch { seen[Int(text(message.value))!, default: 0] += 1 }
                if wanted.isSubset(of: seen.keys) { break }
            }
            return seen
        }
        await readers.close()
        #expect(wanted.isSubset(of: seen.keys))
        #expect(seen.values.allSatisfy { $0 == 1 }, "the idempotent producer writes nothing twice")
        #expect(Set(seen.keys).isSubset(of: wanted.union(failed)))
    }
}
#endif
