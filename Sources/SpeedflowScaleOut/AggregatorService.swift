#if Kafka
import Logging
import NIOPosix
import ServiceLifecycle
import SpeedflowKafka

/// One aggregator of the consumer group: consume → apply → flush for every partition assigned to it.
///
/// `run()` joins the group and owns everything it starts: a thread pool for the blocking work (opening stores,
/// applying, final flushes; one thread, since events are handled one at a time in the order they come), a
/// second one for the partitions' background flushes (which the first may wait for), the
/// consumer, and a ticker that lands the last flushes when the topic goes quiet. Graceful shutdown ends any
/// retry backoff, relinquishes every partition (one last flush each) and only then leaves the group (so no
/// other member starts on a partition before its last flush landed), and returns; nothing it started outlives
/// it.
public struct AggregatorService: Service {
    public let consumerConfiguration: KafkaConsumerConfiguration
    public let aggregator: PartitionAggregator
    let logger: Logger
    /// How often due flushes are started when no records arrive. Default: 50 ms.
    public var tickInterval: Duration = .milliseconds(50)
    /// How often partition progress is logged (only when it changed). Default: 5 s.
    public var progressInterval: Duration = .seconds(5)
    /// Tests: sees the thread pool once it started.
    var poolStarted: (@Sendable (NIOThreadPool) -> Void)?

    public init(consumer: KafkaConsumerConfiguration, aggregator: PartitionAggregator, logger: Logger) {
        self.consumerConfiguration = consumer
        self.aggregator = aggregator
        self.logger = logger
    }

    public init(consumer: KafkaConsumerConfiguration, logger: Logger,
                openPartition: @escaping PartitionAggregator.OpenPartition) {
        self.init(consumer: consumer, aggregator: PartitionAggregator(logger: logger, openPartition: openPartition), logger: logger)
    }

    public func run() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let flushes = NIOThreadPool(numberOfThreads: 2)
        flushes.start()
        aggregator.startBackground(on: flushes)
        poolStarted?(pool)
        do {
            try await withTaskCancellationHandler {
                try await consume(pool: pool)
            } onCancel: {
                aggregator.stop()
            }
        } catch {
            try? await pool.shutdownGracefully()
            try? await flushes.shutdownGracefully()
            throw error
        }
        try await pool.shutdownGracefully()
        try await flushes.shutdownGracefully()
    }

    private func consume(pool: NIOThreadPool) async throws {
        let aggregator = self.aggregator
        let logger = self.logger
        let consumer = try KafkaConsumer(
            configuration: consumerConfiguration, logger: logger,
            startOffsets: { partitions in try await pool.runIfActive { try aggregator.assign(partitions) } })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [tickInterval, progressInterval] in
                await Self.tick(aggregator, every: tickInterval, reportEvery: progressInterval, logger: logger)
            }
            group.addTask {
                // Graceful shutdown: flush every partition (after the event in hand: one pool thread), then leave
                // the group, which ends the loop below. Cancelled instead: the loop ended by itself (or the
                // service was cancelled).
                guard (try? await gracefulShutdown()) != nil else { return }
                aggregator.stop()
                _ = try? await pool.runIfActive { aggregator.relinquishAll() }
                await consumer.close()
            }
            for try await event in consumer.events {
                switch event {
                case .assigned(let partitions):
                    logger.info("Consuming", metadata: ["partitions": "\(partitions.keys.sorted())"])
                case .messages(let messages):
                    try await pool.runIfActive { aggregator.apply(messages) }
                case .revoked(let partitions):
                    // Before asking for the next event: only then does the consumer let the partitions go.
                    try await pool.runIfActive { aggregator.revoke(partitions) }
                }
            }
            // Leaving: commit what we have.
            try await pool.runIfActive { aggregator.relinquishAll() }
            group.cancelAll()
        }
    }

    /// Ticks every partition every `interval`; logs where each is when that changed, at most every `reportEvery`.
    static func tick(_ aggregator: PartitionAggregator, every interval: Duration, reportEvery: Duration,
                     logger: Logger) async {
        var reported = ""
        var lastReport = ContinuousClock.now
        while !Task.isCancelled {
            aggregator.tick()
            if lastReport.duration(to: .now) >= reportEvery {
                lastReport = .now
                let progress = aggregator.progress
                if progress != reported {
                    logger.info("Partition progress", metadata: ["applied/stored": "\(progress)"])
                    reported = progress
                }
            }
            try? await Task.sleep(for: interval)
        }
    }
}
#endif
