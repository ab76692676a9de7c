import ArgumentParser
import Foundation
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowLog
import SpeedflowModel
import SpeedflowStore

struct RebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Recompute the store from the log, e.g. after lowering --max-speed.",
        discussion: """
            Run it with the server stopped (the data directory is locked while serving). Every bucket the retained \
            log fully covers is dropped and recomputed by replaying the log under the current settings; older \
            buckets, whose events retention already removed from the log, are kept as they are. Events the log \
            never held (rejected at ingest) cannot come back: raising max_speed affects new events only. \
            Progress is printed to stderr.
            """)

    @OptionGroup var storage: StorageOptions

    func run() async throws {
        let settings = try await Settings.load(configFile: storage.configFile)
        let logger = bootstrapLogging(settings.string("log_level", storage.logLevel, default: "info"))
        let policy = try settings.policy(storage)
        let dataDir = settings.string("data_dir", storage.dataDir, default: "./data")
        let (log, store) = try openStorage(dataDir: dataDir, logger: logger)

        // If retention removed segments, the log covers event times from (oldest retained arrival − skew) on.
        let start = log.startOffset
        var firstBucket = Int64.min
        if start.value > 0 {
            var firstArrival: Int64?
            try? log.read(from: start) { payload, _ in
                if firstArrival == nil { firstArrival = (try? EventRecord.decode(payload))?.arrivalMs }
                throw CancellationError()
            }
            if let firstArrival {
                firstBucket = Bucket.index(ofTimestamp: firstArrival + policy.maxClockSkewMs + Bucket.durationMs - 1)
            }
        }
        // Reset first, then build the engine: it loads its state from the reset store.
        try store.reset(fromBucket: firstBucket, logOffset: start.value)
        let engine = try Engine(log: log, store: store, configuration: EngineConfiguration(policy: policy), logger: logger)
        let cutoff = firstBucket == .min ? Int64.min : Bucket.start(ofIndex: firstBucket)
        let maxSpeed = policy.maxSpeed
        let began = Date()
        try engine.recover(
            filter: { $0.timestampMs >= cutoff && $0.speed <= maxSpeed },
            progress: { done, total, events in
                let pct = total == 0 ? 100 : Double(done) * 100 / Double(total)
                let rate = Double(events) / max(Date().timeIntervalSince(began), 0.001)
                FileHandle.standardError.write(
                    "rebuild: \(String(format: "%.1f", pct))% of \(total) log bytes, \(events) events (\(Int(rate))/s)\n"
                        .data(using: .utf8)!)
            })
        try log.close()
        print("rebuild done: \(dataDir) recomputed from the log in \(String(format: "%.1f", Date().timeIntervalSince(began))) s")
    }
}
