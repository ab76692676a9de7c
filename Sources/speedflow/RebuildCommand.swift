import ArgumentParser
import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowRuntime
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore

struct RebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Recompute the store from the log: after lowering --max-speed, or to repair a damaged store.",
        discussion: """
            Run it with the server stopped (the data directory is locked while serving). Every bucket the retained \
            log fully covers is dropped and recomputed by replaying the log under the current settings; older \
            buckets, whose events retention already removed from the log, are kept as they are. Events the log \
            never held (rejected at ingest) cannot come back: raising max_speed affects new events only. \
            A damaged store (PRAGMA quick_check, or a camera-day that disagrees with its summary) is moved aside \
            (store.sqlite.corrupt-<time>, never deleted); the days before the log's start that still verify are \
            carried over, the others stay marked damaged and answer store_corrupt until restored from a backup. \
            Progress is printed to stderr.
            """)

    @OptionGroup var storage: StorageOptions

    @Flag(help: """
        When the damaged store cannot be read at all and the log no longer covers everything, or the log has \
        quarantined records (speedflow log quarantine), rebuild anyway: what they held is then lost.
        """)
    var discardUnrecoverable = false

    @Option(help: "Leave out every event written with this credential (its id from `speedflow token list`; repeatable), e.g. a leaked camera token's injected passes. Exact for every bucket the retained log covers; revoke the credential too.")
    var excludeCredential: [String] = []

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = Observability.bootstrapLogging(settings.logLevel(storage))
        let policy = try settings.policy(storage)
        let dataDir = settings.dataDir(storage)
        func note(_ s: String) { FileHandle.standardError.write(Data("rebuild: \(s)\n".utf8)) }
        let began = Date()
        do {
            try Rebuild.run(
                dataDir: dataDir, policy: policy, lateGraceMs: try settings.lateGraceMs(storage), discardUnrecoverable: discardUnrecoverable,
                excludingWriters: Set(excludeCredential),
                logger: logger, note: note)
        } catch let error as RebuildError {
            throw ValidationError(error.description)
        }
        print("rebuild done: \(dataDir) recomputed from the log in \(String(format: "%.1f", Date().timeIntervalSince(began))) s")
    }
}
