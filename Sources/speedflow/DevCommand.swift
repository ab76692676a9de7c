#if Kafka
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SpeedflowKafka

/// `speedflow dev`: development helpers. Built only with the `Kafka` package trait.
struct DevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Development helpers (tests and demos).",
        subcommands: [KafkaMockCommand.self])
}

/// `speedflow dev kafka-mock`: librdkafka's mock cluster as a process, the stand-in for Kafka in tests and demos.
struct KafkaMockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-mock",
        abstract: "Run librdkafka's mock Kafka cluster (real Kafka protocol on loopback) until SIGTERM/SIGINT.",
        discussion: """
            Starts --brokers brokers on ephemeral 127.0.0.1 ports (broker ids 1...N), creates --topic with \
            --partitions partitions (leaders spread over the brokers), and prints the bootstrap list as the first \
            line of stdout:

              bootstrap: 127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003

            Point Speedflow at it with --brokers <that list>. Producing (idempotent too), consumer groups with \
            offset commits and topic auto-creation work; the Admin API does not (create topics here).

            Commands on stdin, one per line, each answered on stdout by "ok <command>" or "error <command>: <why>":
              down <id>                          disconnect broker <id> and refuse connections (leaders stay)
              up <id>                            let broker <id> accept connections again
              topic <name> <partitions> [<rf>]   create a topic
              leader <topic> <partition> <id>    move a partition's leadership to broker <id>
            End of stdin is not a stop signal: the cluster keeps running until SIGTERM or SIGINT. All data is in \
            memory and is gone when the process ends.
            """)

    @Option(help: "Number of brokers.") var brokers: Int = 3
    @Option(help: "Topic to create at start.") var topic: String = "speedflow-events"
    @Option(help: "Partitions of --topic.") var partitions: Int = 6
    @Option(help: "Replication factor of --topic (at most --brokers). Default: min(3, brokers).")
    var replicationFactor: Int?
    @Option(help: "librdkafka log level on stderr: error, warning, info, debug.")
    var logLevel: String = "warning"

    func validate() throws {
        guard brokers >= 1 else { throw ValidationError("--brokers must be at least 1") }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        if let replicationFactor, !(1...brokers).contains(replicationFactor) {
            throw ValidationError("--replication-factor must be between 1 and --brokers")
        }
    }

    func run() async throws {
        var logger = Logger(label: "speedflow.kafka-mock")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        let cluster = try KafkaMockCluster(brokers: brokers, logger: logger)
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: replicationFactor ?? min(3, brokers))
        Self.say("bootstrap: \(cluster.bootstrapServers)")

        // Commands arrive on a thread of its own: reading stdin blocks.
        Thread.detachNewThread {
            while let line = readLine() {
                let command = line.trimmingCharacters(in: .whitespaces)
                guard !command.isEmpty else { continue }
                do {
                    try Self.apply(command, to: cluster)
                    Self.say("ok \(command)")
                } catch {
                    Self.say("error \(command): \(error)")
                }
            }
        }

        // Runs until SIGTERM or SIGINT (graceful shutdown), then stops the brokers.
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: MockClusterService(cluster: cluster))],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await serviceGroup.run()
    }

    static func apply(_ command: String, to cluster: KafkaMockCluster) throws {
        let words = command.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        func int32(_ i: Int) throws -> Int32 {
            guard words.count > i, let value = Int32(words[i]) else { throw ValidationError("expected a number at word \(i + 1)") }
            return value
        }
        switch words.first {
        case "down": try cluster.setBrokerDown(int32(1))
        case "up": try cluster.setBrokerUp(int32(1))
        case "topic":
            guard words.count >= 3 else { throw ValidationError("usage: topic <name> <partitions> [<rf>]") }
            let rf = words.count > 3 ? Int(try int32(3)) : min(3, cluster.brokerCount)
            try cluster.createTopic(words[1], partitions: Int(try int32(2)), replicationFactor: rf)
        case "leader":
            guard words.count == 4 else { throw ValidationError("usage: leader <topic> <partition> <id>") }
            try cluster.setPartitionLeader(topic: words[1], partition: int32(2), broker: int32(3))
        default:
            throw ValidationError("unknown command (down, up, topic, leader)")
        }
    }

    /// Writes one line to stdout at once (a test reads it through a pipe).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// Keeps the mock cluster up until graceful shutdown.
struct MockClusterService: Service {
    let cluster: KafkaMockCluster

    func run() async throws {
        try? await gracefulShutdown()  // or cancellation
        cluster.stop()
    }
}
#endif
