import ArgumentParser
import Foundation
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowLog
import SpeedflowModel

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
        subcommands: [Check.self, Quarantine.self, Writes.self])

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

    struct Writes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who wrote the log: events per credential, or one credential's events as NDJSON.",
            discussion: """
                Without --credential: one line per writer (credential id; "-" for records written without one, \
                e.g. with --auth off or before attribution) with its records, events and first and last arrival. \
                With --credential ID: that credential's events, one JSON object per line (with arrival and writer), \
                to review what a leaked token sent before `speedflow rebuild --exclude-credential ID`. Run with the \
                server stopped.
                """)
        @OptionGroup var options: Options

        @Option(help: "A credential id: print its events as NDJSON.") var credential: String?

        func run() throws {
            guard FileManager.default.fileExists(atPath: options.path + "/log") else {
                throw ValidationError("\(options.path) is not a speedflow data directory (no log/ in it)")
            }
            let (log, _) = try DataDirectory.open(options.path, logger: Observability.bootstrapLogging("warning"))
            defer { try? log.close() }
            struct Tally { var records = 0, events = 0, first = Int64.max, last = Int64.min }
            var tallies: [String: Tally] = [:]
            try log.read(from: log.startOffset) { payload, _ in
                guard let record = try? EventRecord.decode(payload) else { return }
                let writer = record.writer ?? "-"
                if let credential {
                    guard writer == credential else { return }
                    for e in record.events {
                        var o: [String: Any] = [
                            "writer": writer, "arrival": Timestamp.format(record.arrivalMs), "kvfv_id": e.kvfvId,
                            "timestamp": Timestamp.format(e.timestampMs), "vehicle_speed": e.speed,
                        ]
                        if let id = e.eventId { o["event_id"] = id }
                        if let lane = e.lane { o["lane"] = lane }
                        Swift.print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
                    }
                    return
                }
                var t = tallies[writer, default: Tally()]
                t.records += 1
                t.events += record.events.count
                t.first = min(t.first, record.arrivalMs)
                t.last = max(t.last, record.arrivalMs)
                tallies[writer] = t
            }
            guard credential == nil else { return }
            Swift.print("WRITER            RECORDS     EVENTS  FIRST ARRIVAL             LAST ARRIVAL")
            for (writer, t) in tallies.sorted(by: { $0.key < $1.key }) {
                let first = Timestamp.format(t.first).padding(toLength: 24, withPad: " ", startingAt: 0)
                Swift.print("\(writer.padding(toLength: 16, withPad: " ", startingAt: 0))  \(pad(t.records, 7))  \(pad(t.events, 9))  \(first)  \(Timestamp.format(t.last))")
            }
        }

        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
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
