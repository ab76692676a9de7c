#if Kafka
import Foundation
import Logging
import SpeedflowEngine
import SpeedflowKafka
import SpeedflowModel
import SpeedflowScaleOut
import SpeedflowStore
import Synchronization
import SpeedflowTestSupport
import Testing

/// The aggregator's consume loop, step by step, fed with the messages a partitioned topic would hand out;
/// real engines on real SQLite stores.
struct PartitionAggregatorTests {
    static let topic = "events"
    let p0 = KafkaPartition(topic: topic, partition: 0)
    let p1 = KafkaPartition(topic: topic, partition: 1)

    @Test func recordsAppliedInPartitionOrderLandExactlyInTheStoreAfterRelinquish() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        var records = randomRequests(seed: 7, cameras: 12, requests: 300, nowMs: now)
        records += records[100..<120]  // whole requests resent: their events are duplicates
        var oracle = CountOracle()
        for r in records { oracle.add(r.events) }
        let messages = partitionMessages(records, topic: Self.topic, partitions: 2)

        let aggregator = PartitionAggregator(logger: testLogger("aggregator"), openPartition: sqlitePartitions(dir))
        #expect(try aggregator.assign([p0, p1]) == [p0: 0, p1: 0])
        // Batches as the consumer hands them out: partitions interleaved, each in offset order.
        for start in stride(from: 0, to: messages.count, by: 37) {
            aggregator.apply(Array(messages[start..<min(start + 37, messages.count)]))
        }
        let engines = [aggregator.owned[p0]!, aggregator.owned[p1]!]
        aggregator.relinquishAll()

        for (engine, p) in zip(engines, [p0, p1]) {
            let end = UInt64(messages.filter { $0.partition == p.partition }.count)
            #expect(engine.appliedOffset == end)
            #expect(engine.storedOffset == end, "everything applied is in the store")
        }
        #expect(aggregator.offsetGaps == 0)
        #expect(try await storedCounts(engines.map(\.store), nowMs: now) == oracle.counts)
    }

    @Test func theNextOwnerContinuesFromTheStoredOffsetAndTheCountStaysExact() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let records = randomRequests(seed: 11, cameras: 6, requests: 200, nowMs: now)
        var oracle = CountOracle()
        for r in records { oracle.add(r.events) }
        let messages = partitionMessages(records, topic: Self.topic, partitions: 1)
        let half = messages.count / 2

        let first = PartitionAggregator(logger: testLogger("first"), openPartition: sqlitePartitions(dir))
        _ = try first.assign([p0])
        first.apply(Array(messages[..<half]))
        first.revoke([p0])
        // The next owner opens the same store: it continues where the store is, and a batch that starts a
        // little earlier (re-read) changes nothing it already has.
        let next = PartitionAggregator(logger: testLogger("next"), openPartition: sqlitePartitions(dir))
        #expect(try next.assign([p0]) == [p0: Int64(half)])
        next.apply(Array(messages[(half - 3)...]))
        #expect(next.offsetGaps == 1, "the re-read is reported")
        let engine = next.owned[p0]!
        next.relinquishAll()
        #expect(engine.storedOffset == UInt64(messages.count))
        #expect(try await storedCounts(engine.store, nowMs: now) == oracle.counts)
    }

    @Test func aRecordWhoseStoreCannotBeReadIsRetriedUntilItSucceedsAndCountsOnce() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let partitions = FlakyPartitions(dir)
        let logs = CapturedLogs()
        let aggregator = PartitionAggregator(
            logger: logs.logger, retryDelay: .milliseconds(1) ... .milliseconds(8),
            openPartition: partitions.open)
        _ = try aggregator.assign([p0])
        let store = try #require(partitions.store)
        let recent = CameraEvent(kvfvId: "KV0", timestampMs: now, speed: 50, eventId: "a", lane: 1, plate: "P")
        // Two hours late: its bucket is not in memory, so the engine reads it from the store.
        let late = CameraEvent(kvfvId: "KV0", timestampMs: now - 7_200_000, speed: 60, eventId: "b", lane: 1, plate: "P")
        let other = CameraEvent(kvfvId: "KV0", timestampMs: now - 1000, speed: 70, eventId: "c", lane: 1, plate: "P")
        let records = [
            EventRecord(arrivalMs: now, events: [recent]),
            EventRecord(arrivalMs: now, events: [other, late]),
            EventRecord(arrivalMs: now, events: [late, other]),  // resent
        ]
        let messages = records.enumerated().map { i, r in
            KafkaConsumerMessage(topic: Self.topic, partition: 0, offset: Int64(i), key: Array("KV0".utf8), value: r.encoded())
        }
        aggregator.apply([messages[0]])
        let attemptsBefore = store.loadAttempts.withLock { $0 }
        store.failuresLeft.withLock { $0 = 5 }
        aggregator.apply(Array(messages[1...]))

        #expect(store.failuresLeft.withLock { $0 } == 0)
        #expect(store.loadAttempts.withLock { $0 } - attemptsBefore == 6, "5 failures, then the load that worked")
        #expect(logs.count(.warning, "Apply failed; retrying") == 5)
        #expect(logs.all("Apply failed; retrying").allSatisfy { $0.metadata["offset"] == "1" }, "the same record each time")
        let engine = aggregator.owned[p0]!
        aggregator.relinquishAll()
        #expect(engine.storedOffset == 3)
        var oracle = CountOracle()
        for r in records { oracle.add(r.events) }
        #expect(try await storedCounts(engine.store, nowMs: now) == oracle.counts)
        #expect(oracle.counts["KV0"]!.values.reduce(0, +) == 3)
    }

    /// A new owner replaying late records over buckets the store holds (a handover, a restart): the buckets a
    /// poll's records need are read in one `loadBuckets` per partition, not once per record — and it stays exact.
    @Test func theLateBucketsOfAPollAreReadInOneGoAndTheCountStaysExact() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let hour: Int64 = 3_600_000
        // 40 records of KV0, each in its own bucket of the last 10 hours, then the same hours again (new events,
        // resends of the first ones): the second half's buckets are all in the store and none in memory.
        let first = (0..<40).map { i in
            EventRecord(arrivalMs: now, events: [
                CameraEvent(kvfvId: "KV0", timestampMs: now - Int64(i) * hour / 4, speed: 50 + Double(i), eventId: "a\(i)")])
        }
        let second = (0..<40).map { i in
            EventRecord(arrivalMs: now, events: [
                CameraEvent(kvfvId: "KV0", timestampMs: now - Int64(i) * hour / 4 - 1, speed: 90, eventId: "b\(i)"),
                first[(i * 7) % 40].events[0],
            ])
        }
        func messages(_ records: [EventRecord], from offset: Int) -> [KafkaConsumerMessage] {
            records.enumerated().map { i, r in
                KafkaConsumerMessage(topic: Self.topic, partition: 0, offset: Int64(offset + i), key: Array("KV0".utf8), value: r.encoded())
            }
        }
        let owner = PartitionAggregator(logger: testLogger("first"), openPartition: sqlitePartitions(dir))
        _ = try owner.assign([p0])
        owner.apply(messages(first, from: 0))
        owner.relinquishAll()

        let partitions = FlakyPartitions(dir)
        let next = PartitionAggregator(
            logger: testLogger("next"),
            openPartition: partitions.open)
        _ = try next.assign([p0])
        let store = try #require(partitions.store)
        next.apply(messages(second, from: 40))
        #expect(store.batchReads.withLock { $0 } == 1, "one read for the poll")
        #expect(store.loadAttempts.withLock { $0 } == 40, "each of the 40 stored buckets read once")
        let engine = next.owned[p0]!
        next.relinquishAll()
        var oracle = CountOracle()
        for r in first + second { oracle.add(r.events) }
        #expect(try await storedCounts(engine.store, nowMs: now) == oracle.counts)
        #expect(oracle.counts["KV0"]!.values.reduce(0, +) == 80)
    }

    @Test func stoppingEndsTheRetryAndLeavesTheRecordAndEverythingAfterItToTheNextOwner() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let partitions = FlakyPartitions(dir)
        let aggregator = PartitionAggregator(
            logger: testLogger("aggregator"), retryDelay: .seconds(60) ... .seconds(60),
            openPartition: partitions.open)
        _ = try aggregator.assign([p0])
        let store = try #require(partitions.store)
        let events = [
            CameraEvent(kvfvId: "KV0", timestampMs: now, speed: 50, eventId: "a", lane: 1, plate: "P"),
            CameraEvent(kvfvId: "KV0", timestampMs: now - 7_200_000, speed: 60, eventId: "b", lane: 1, plate: "P"),
            CameraEvent(kvfvId: "KV0", timestampMs: now - 1000, speed: 70, eventId: "c", lane: 1, plate: "P"),
        ]
        let messages = events.enumerated().map { i, e in
            KafkaConsumerMessage(topic: Self.topic, partition: 0, offset: Int64(i), key: Array("KV0".utf8),
                                 value: EventRecord(arrivalMs: now, events: [e]).encoded())
        }
        aggregator.apply([messages[0]])
        store.failuresLeft.withLock { $0 = .max }
        let before = store.loadAttempts.withLock { $0 }
        let stopper = Task {
            try await eventually(.seconds(30), "a failed load") { store.loadAttempts.withLock { $0 } > before }
            aggregator.stop()
        }
        // Would back off for a minute per attempt; returns once stopped.
        try await withTimeout(.seconds(30), "apply returns after stop") {
            await Task.detached { aggregator.apply(Array(messages[1...])) }.value
        }
        try await stopper.value
        let engine = aggregator.owned[p0]!
        #expect(engine.appliedOffset == 1, "the record the store could not take, and the one after it, are not applied")
        aggregator.apply([messages[2]])
        #expect(engine.appliedOffset == 1, "nothing is applied after a record was given up")
        store.failuresLeft.withLock { $0 = 0 }
        aggregator.relinquishAll()
        #expect(engine.storedOffset == 1)
    }

    @Test func nonContiguousOffsetsAreReportedAndStillApplied() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let logs = CapturedLogs()
        let aggregator = PartitionAggregator(logger: logs.logger, openPartition: sqlitePartitions(dir))
        _ = try aggregator.assign([p0])
        func message(_ offset: Int64) -> KafkaConsumerMessage {
            let e = CameraEvent(kvfvId: "KV0", timestampMs: now - offset, speed: 50, eventId: "e\(offset)", lane: 1, plate: "P")
            return KafkaConsumerMessage(topic: Self.topic, partition: 0, offset: offset, key: Array("KV0".utf8),
                                        value: EventRecord(arrivalMs: now, events: [e]).encoded())
        }
        aggregator.apply([message(0), message(1), message(3)])  // 2 is missing
        #expect(aggregator.offsetGaps == 1)
        let warnings = logs.all("Kafka offsets not contiguous")
        #expect(warnings.count == 1)
        #expect(warnings.first?.level == .warning)
        #expect(warnings.first?.metadata["expected"] == "2")
        #expect(warnings.first?.metadata["offset"] == "3")
        // The next batch is checked against where the engine is, not against the batch before.
        aggregator.apply([message(4)])
        #expect(aggregator.offsetGaps == 1)
        aggregator.apply([message(4)])  // read again
        #expect(aggregator.offsetGaps == 2)

        let engine = aggregator.owned[p0]!
        aggregator.relinquishAll()
        #expect(engine.storedOffset == 5)
        #expect(try await storedCounts(engine.store, nowMs: now)["KV0"]!.values.reduce(0, +) == 4, "0, 1, 3, 4; the re-read 4 once")
    }

    @Test func revocationRelinquishesThePartitionAndItsLaterMessagesAreSkipped() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = nowMs()
        let records = randomRequests(seed: 3, cameras: 8, requests: 120, nowMs: now)
        let messages = partitionMessages(records, topic: Self.topic, partitions: 2)
        let aggregator = PartitionAggregator(logger: testLogger("aggregator"), openPartition: sqlitePartitions(dir))
        _ = try aggregator.assign([p0, p1])
        let cut = messages.count * 2 / 3
        aggregator.apply(Array(messages[..<cut]))
        let revoked = aggregator.owned[p0]!
        let kept = aggregator.owned[p1]!
        let appliedAtRevoke = revoked.appliedOffset
        #expect(appliedAtRevoke > 0)

        aggregator.revoke([p0])
        #expect(aggregator.owned[p0] == nil)
        #expect(aggregator.owned.partitions == [p1])
        #expect(revoked.storedOffset == appliedAtRevoke, "flushed before letting go")
        // The store holds exactly what was applied before the revocation.
        var oracle = CountOracle()
        for m in messages[..<cut] where m.partition == 0 {
            oracle.add(try m.value.withUnsafeBytes { try EventRecord.decode($0) }.events)
        }
        #expect(try await storedCounts(revoked.store, nowMs: now) == oracle.counts)

        // Messages of the revoked partition still in a batch are skipped; the others are applied.
        aggregator.apply(Array(messages[cut...]))
        #expect(revoked.appliedOffset == appliedAtRevoke)
        #expect(try await storedCounts(revoked.store, nowMs: now) == oracle.counts)
        #expect(kept.appliedOffset == UInt64(messages.filter { $0.partition == 1 }.count))
        #expect(aggregator.offsetGaps == 0)
    }
}
#endif
