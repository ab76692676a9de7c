import ArgumentParser
import Foundation
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowLog

/// `speedflow log check | quarantine`: what to do when the log's integrity check stops `serve`.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Check the embedded log's integrity, or set damaged log records aside.",
        discussion: """
            serve refuses to start when acknowledged log records it has not counted yet are damaged or missing, or \
            when the store has counted more of the log than the log holds. `check` reads every segment and says \
            what is wrong and whether the store already counts it; `quarantine` copies damaged records to \
            <data-dir>/log/quarantine/ and puts padding in their place (offsets after them stay valid), so serve \
            starts and replays the rest. Events in quarantined records that the store had not counted are lost \
            (restore the segment from a backup instead if you have one). Run either with the server stopped.
            """,
        subcommands: [Check.self, Quarantine.self])

    struct Options: ParsableArguments {
        @Option(help: "The data directory. Default: ./data. Env: SPEEDFLOW_DATA_DIR.")
        var dataDir: String?

        var path: String { dataDir ?? ProcessInfo.processInfo.environment["SPEEDFLOW_DATA_DIR"] ?? DataDirectory.defaultPath }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read every log segment; list damaged or missing ranges; exit 1 if there is any.")
        @OptionGroup var options: Options

        func run() throws {
            let report = try LogReport(path: options.path)
            report.print()
            if !report.damage.isEmpty || report.counted > report.end { throw ExitCode(1) }
        }
    }

    struct Quarantine: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set every damaged or missing log range aside (a copy is kept) so serve can start.")
        @OptionGroup var options: Options

        func run() throws {
            let report = try LogReport(path: options.path)
            report.print()
            var done = 0
            for d in report.damage {
                try report.log.quarantine(d)
                Swift.print("quarantined: \(d)")
                done += 1
            }
            // The store counted more than the log holds: record the rest as missing, so new records follow it.
            let end = report.log.endOffset.value
            if report.counted > end {
                let d = LogDamage(kind: .missing, range: end..<report.counted, segment: "")
                try report.log.quarantine(d)
                Swift.print("quarantined: \(d)")
                done += 1
            }
            Swift.print(done == 0 ? "nothing to quarantine" : "done: serve can start; copies in \(options.path)/log/quarantine/")
        }
    }
}

/// What `log check` finds: every damaged range, and how far the store has counted.
struct LogReport {
    let log: SegmentLog
    let damage: [LogDamage]
    let counted: UInt64
    let end: UInt64

    init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path + "/log") else {
            throw ValidationError("\(path) is not a speedflow data directory (no log/ in it)")
        }
        let logger = Observability.bootstrapLogging("warning")
        let (log, store) = try DataDirectory.open(path, logger: logger)
        self.log = log
        damage = try log.verify()
        counted = try store.logOffset()
        end = log.endOffset.value
    }

    func print() {
        Swift.print("log: offsets \(log.startOffset)..<\(end), \(log.sizeInBytes) bytes; the store has counted up to \(counted)")
        if counted > end {
            Swift.print("MISSING: the log ends \(counted - end) bytes before what the store counted (the store keeps those events)")
        }
        for d in damage {
            let note = d.range.upperBound <= counted
                ? "the store already counts these events (only the raw copy is damaged)"
                : "NOT counted yet: its events are lost unless the segment is restored from a backup"
            Swift.print("DAMAGED: \(d): \(note)")
        }
        for q in log.quarantined { Swift.print("quarantined earlier: \(q)") }
        if damage.isEmpty && counted <= end { Swift.print("ok: no damage") }
    }
}
