import ArgumentParser

@main
struct Speedflow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "speedflow",
        abstract: "Exact traffic-speed analytics for roadside speed cameras.",
        discussion: """
            Cameras POST vehicle passes; Speedflow answers the average speed (and harmonic mean, V15/V50/V85, flow) \
            at any camera for every 5-minute, 1-hour or 1-day window, exactly: late events are counted in their own \
            window, resent events are counted once, and an acknowledged event survives kill -9.

            Every option can also be set by an environment variable SPEEDFLOW_<OPTION> (e.g. SPEEDFLOW_PORT=9090, \
            SPEEDFLOW_MAX_SPEED=250) or in a JSON file given by --config (e.g. {"port": 9090, "max_speed": 250}). \
            Precedence: flag, then environment, then file, then the default.
            """,
        subcommands: [ServeCommand.self, RebuildCommand.self, LogCommand.self, BackupCommand.self, RestoreCommand.self, CheckCommand.self, LoadgenCommand.self, ClickHouseCommand.self, SourceCommand.self] + [ApiCommand.self, TokenCommand.self, CamerasCommand.self] + Self.kafkaCommands,
        defaultSubcommand: nil)
}

extension Speedflow {
    /// Scale-out commands that need librdkafka: only with the `Kafka` package trait.
    static var kafkaCommands: [any ParsableCommand.Type] {
        #if Kafka
        [IngestCommand.self, AggregateCommand.self, DevCommand.self]
        #else
        []
        #endif
    }
}
