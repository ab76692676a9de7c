import Foundation
import Logging
import Metrics
import ServiceLifecycle
import SpeedflowEngine

#if canImport(Glibc)
import Glibc
#endif

/// Gauges read from the world rather than counted as things happen, refreshed every `interval` while a role
/// runs: what the alerts and the dashboard in `deploy/` need and no code path counts.
///
/// - `speedflow_data_dir_bytes{part}`: disk used by each part of the data directory (`log`, `store` —
///   `store.sqlite` with its WAL —, `aggregate`, `backups`, any other directory by its name, `other` files).
/// - `speedflow_data_dir_filesystem_avail_bytes` / `_size_bytes`: the data directory's file system, as
///   node_exporter's `node_filesystem_*` would report it (available to an unprivileged writer, and in all).
/// - `speedflow_cameras{health}`: the fleet by `GET /kvfv` health (`live`, `silent`, `lagging`, `clock_skew`,
///   `stuck`) on roles that answer queries.
public struct OperationalMetrics: Service {
    public let dataDir: String
    public let queries: CameraQueries?
    public let interval: Duration

    public init(dataDir: String, queries: CameraQueries?, interval: Duration = .seconds(10)) {
        self.dataDir = dataDir
        self.queries = queries
        self.interval = interval
    }

    /// Counters other code creates only when they first count, registered at 0 so that a scrape lists them from
    /// the start: an alert on `increase(...)` needs the series to exist before the first event.
    public static func registerLazyCounters() {
        _ = Counter(label: "speedflow_store_corruptions_total")
    }

    public func run() async {
        // Ends quietly on graceful shutdown: a service that throws would fail the whole group.
        await cancelWhenGracefulShutdown {
            var parts: Set<String> = []
            while !Task.isCancelled {
                parts = await self.refresh(reported: parts)
                try? await Task.sleep(for: self.interval)
            }
        }
    }

    /// One refresh; `reported`: the data directory's parts reported so far (a vanished one goes to 0). Returns
    /// those and the new ones.
    func refresh(reported: Set<String>) async -> Set<String> {
        let usage = Self.diskUsage(dataDir: dataDir)
        let parts = reported.union(usage.keys)
        for part in parts {
            Gauge(label: "speedflow_data_dir_bytes", dimensions: [("part", part)]).record(usage[part] ?? 0)
        }
        if let fs = Self.fileSystem(dataDir) {
            Gauge(label: "speedflow_data_dir_filesystem_avail_bytes").record(fs.avail)
            Gauge(label: "speedflow_data_dir_filesystem_size_bytes").record(fs.size)
        }
        if let queries, let counts = try? await Self.healthCounts(queries) {
            for (health, n) in counts { Gauge(label: "speedflow_cameras", dimensions: [("health", health)]).record(n) }
        }
        return parts
    }

    /// Cameras per health. The unhealthy ones are listed through `GET /kvfv`'s health filter (store reads only for
    /// them); `live` is the rest of the fleet, so a healthy fleet of any size costs one scan of memory per health.
    static func healthCounts(_ queries: CameraQueries) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        var total = 0
        var unhealthy = 0
        for health in [CameraStatus.Health.silent, .lagging, .clockSkew, .stuck] {
            var n = 0
            var after: String?
            repeat {
                let page = try await queries.cameraPage(
                    CameraPageRequest(after: after, limit: CameraPageRequest.maxLimit, health: health, scanLimit: .max))
                n += page.cameras.count
                total = page.total
                after = page.cameras.count == CameraPageRequest.maxLimit ? page.next : nil
            } while after != nil
            counts[health.rawValue] = n
            unhealthy += n
        }
        counts[CameraStatus.Health.live.rawValue] = max(0, total - unhealthy)
        return counts
    }

    /// Bytes allocated on disk under each top-level part of `dataDir` (empty when it does not exist).
    static func diskUsage(dataDir: String) -> [String: Int] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dataDir) else { return [:] }
        var usage: [String: Int] = [:]
        for entry in entries {
            let path = dataDir + "/" + entry
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }  // removed meanwhile
            let part: String
            if (st.st_mode & S_IFMT) == S_IFDIR {
                part = entry
            } else if entry == "store.sqlite" || entry.hasPrefix("store.sqlite-") {
                part = "store"
            } else {
                part = "other"
            }
            usage[part, default: 0] += allocatedBytes(path, st)
        }
        return usage
    }

    /// `st_blocks` (512-byte units) of a file, or of everything under a directory, symbolic links not followed.
    private static func allocatedBytes(_ path: String, _ st: stat) -> Int {
        var total = Int(st.st_blocks) * 512
        guard (st.st_mode & S_IFMT) == S_IFDIR, let children = try? FileManager.default.contentsOfDirectory(atPath: path) else {
            return total
        }
        for child in children {
            let p = path + "/" + child
            var s = stat()
            if lstat(p, &s) == 0 { total += allocatedBytes(p, s) }
        }
        return total
    }

    /// `statvfs` of the file system holding `path`: bytes available to an unprivileged writer, and its size.
    static func fileSystem(_ path: String) -> (avail: Int, size: Int)? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return (Int(s.f_bavail) * Int(s.f_frsize), Int(s.f_blocks) * Int(s.f_frsize))
    }
}
