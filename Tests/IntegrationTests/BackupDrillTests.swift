import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `speedflow backup`, `restore` and `check` with the real binary: backups taken while a client ingests
/// continuously, restored and served, exact for everything acknowledged before the backup; `check` finding a
/// flipped byte in a log segment, the store and a backup; `restore` refusing every bad backup, leaving nothing.
@Suite("Backup, restore and check with the real binary", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct BackupDrillTests {
    struct Event: Hashable {
        var camera: String
        var ms: Int64
        var speed: Int
        var id: String

        var json: String {
            "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed),\"event_id\":\"\(id)\"}"
        }
    }

    static let cameras = ["KVB0", "KVB1", "KVB2", "KVB3"]

    /// `count` batches of 40 events over the last 3 hours (whole speeds: sums are exact), ids unique.
    static func workload(batches count: Int, nowMs: Int64, tag: String) -> [[Event]] {
        var rng = SeededRandom(seed: 7)
        return (0..<count).map { b in
            (0..<40).map { i in
                let camera = cameras[Int(rng.next() % UInt64(cameras.count))]
                return Event(
                    camera: camera, ms: nowMs - Int64(rng.next() % 10_800_000), speed: 30 + Int(rng.next() % 100), id: "\(tag)-\(b)-\(i)")
            }
        }
    }

    struct Answer {
        var status: Int
        var json: [String: Any]
    }

    static func post(_ batch: [Event], to url: String) async -> Answer? {
        var request = HTTPClientRequest(url: url + "/events")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.body = .bytes(ByteBuffer(string: batch.map(\.json).joined(separator: "\n")))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)),
            let body = try? await response.body.collect(upTo: 1 << 20)
        else { return nil }
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        return Answer(status: Int(response.status.code), json: json)
    }

    /// Every 5-minute window of every camera over the workload's period equals the truth of `events`.
    static func expectWindows(_ url: String, equal events: Set<Event>, nowMs: Int64, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var truth: [String: [Int64: (n: Int, sum: Int, min: Int, max: Int)]] = [:]
        for e in events {
            let bucket = e.ms.floorDiv(300_000)
            var v = truth[e.camera, default: [:]][bucket] ?? (0, 0, Int.max, Int.min)
            v.n += 1
            v.sum += e.speed
            v.min = Swift.min(v.min, e.speed)
            v.max = Swift.max(v.max, e.speed)
            truth[e.camera, default: [:]][bucket] = v
        }
        let from = (nowMs - 4 * 3_600_000).floorDiv(300_000) * 300_000
        let to = (nowMs + 600_000).floorDiv(300_000) * 300_000
        var mismatches = 0
        for camera in cameras {
            let uri = "\(url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from))&to=\(Timestamp.format(to))&interval=5m"
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: uri), timeout: .seconds(30))
            #expect(response.status == .ok, sourceLocation: sourceLocation)
            let body = try await response.body.collect(upTo: 16 << 20)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
            let windows = try #require(json["windows"] as? [[String: Any]])
            #expect(windows.count == Int((to - from) / 300_000), sourceLocation: sourceLocation)
            for (i, w) in windows.enumerated() {
                let expected = truth[camera]?[from / 300_000 + Int64(i)] ?? (0, 0, 0, 0)
                let count = w["count"] as? Int ?? -1
                var ok = count == expected.n
                if ok && expected.n > 0 {
                    ok = w["min_speed"] as? Double == Double(expected.min) && w["max_speed"] as? Double == Double(expected.max)
                        && abs((w["avg_speed"] as? Double ?? 0) - Double(expected.sum) / Double(expected.n)) <= 1e-9 * Double(expected.max)
                }
                if !ok {
                    mismatches += 1
                    if mismatches <= 5 {
                        Issue.record("\(camera) \(w["start"] ?? "?"): \(w) != \(expected)", sourceLocation: sourceLocation)
                    }
                }
            }
        }
        #expect(mismatches == 0, sourceLocation: sourceLocation)
    }

    /// Runs the binary off the cooperative pool.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try SpeedflowProcess.run(arguments) }) }
        }
    }

    /// Hidden temporary siblings a backup or restore would leave if it failed half-way.
    static func leftovers(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            $0.hasPrefix(".") && ($0.contains(".partial-") || $0.contains(".restoring-"))
        }
    }

    @Test("backups under continuous ingest, restored and served: every event acknowledged before a backup is in it, every window exact")
    func drill() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"])
        defer { server.remove() }
        try await server.start()
        let work = server.directory.path
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let batches = Self.workload(batches: 600, nowMs: now, tag: "d")

        // A client ingesting continuously: 4 workers, each batch retried until acknowledged.
        actor Ledger {
            var next = 0
            var acked: Set<Int> = []
            func take(_ limit: Int) -> Int? {
                guard next < limit else { return nil }
                defer { next += 1 }
                return next
            }
            func ack(_ b: Int) { acked.insert(b) }
        }
        let ledger = Ledger()
        let url = server.url
        let client = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        while let b = await ledger.take(batches.count) {
                            while await Self.post(batches[b], to: url)?.status != 200 { try? await Task.sleep(for: .milliseconds(20)) }
                            await ledger.ack(b)
                            try? await Task.sleep(for: .milliseconds(5))
                        }
                    }
                }
            }
        }

        // Backups while it runs: what was acknowledged before each started must be in it.
        var backups: [(dir: String, ackedBefore: Set<Int>)] = []
        for k in 0..<2 {
            try await waitUntil("some batches acknowledged", timeout: .seconds(120)) { await ledger.acked.count >= 120 * (k + 1) }
            let ackedBefore = await ledger.acked
            let dir = work + "/backup-\(k)"
            let r = try await Self.run(["backup", "--data-dir", server.dataDirectory.path, "--to", dir])
            #expect(r.status == 0, "backup \(k): \(r.output)")
            #expect(await ledger.next < batches.count, "the client was still ingesting after backup \(k)")
            backups.append((dir, ackedBefore))
            // check on the live data directory, beside the server: sound.
            let c = try await Self.run(["check", "--data-dir", server.dataDirectory.path])
            #expect(c.status == 0, "live check: \(c.output)")
            #expect(c.output.contains("a server is running on it"))
        }
        await client.value
        #expect(await ledger.acked.count == batches.count)
        let all = Set(batches.flatMap { $0 })
        try await Self.expectWindows(server.url, equal: all, nowMs: now)
        server.stop()

        for (k, backup) in backups.enumerated() {
            let c = try await Self.run(["check", "--backup", backup.dir])
            #expect(c.status == 0, "check --backup \(k): \(c.output)")
            let restored = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"])
            defer { restored.remove() }
            let r = try await Self.run(["restore", "--from", backup.dir, "--data-dir", restored.dataDirectory.path])
            #expect(r.status == 0, "restore \(k): \(r.output)")
            let rc = try await Self.run(["check", "--data-dir", restored.dataDirectory.path])
            #expect(rc.status == 0, "check of the restored directory \(k): \(rc.output)")
            try await restored.start()

            // Every batch acknowledged before the backup started is in it: resent, all duplicates.
            var beforeDuplicates = 0
            for b in backup.ackedBefore.sorted() {
                let a = try #require(await Self.post(batches[b], to: restored.url))
                #expect(a.status == 200 && a.json["accepted"] as? Int == 0, "batch \(b), acknowledged before backup \(k), is in it")
                beforeDuplicates += a.json["duplicates"] as? Int ?? 0
            }
            #expect(beforeDuplicates == backup.ackedBefore.count * 40)
            // The rest: whatever of it the backup holds is a duplicate, the others are new; then every window is
            // exact over everything: nothing counted twice, nothing lost.
            var newlyAccepted = 0
            for b in batches.indices where !backup.ackedBefore.contains(b) {
                let a = try #require(await Self.post(batches[b], to: restored.url))
                #expect(a.status == 200)
                newlyAccepted += a.json["accepted"] as? Int ?? 0
            }
            #expect(newlyAccepted < (batches.count - backup.ackedBefore.count) * 40, "the backup holds some of what was acknowledged while it ran")
            try await Self.expectWindows(restored.url, equal: all, nowMs: now)
            restored.stop()
        }
    }

    /// Flips one byte of `path` at `offset`.
    static func flip(_ path: String, at offset: UInt64) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: offset)
        let byte = try #require(try h.read(upToCount: 1)).first!
        try h.seek(toOffset: offset)
        try h.write(contentsOf: Data([byte ^ 0x5A]))
    }

    @Test("check finds a flipped byte in a log segment, in store.sqlite and in a backup file; restore refuses bad backups and leaves nothing")
    func damage() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"])
        defer { server.remove() }
        try await server.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for batch in Self.workload(batches: 60, nowMs: now, tag: "f") {
            #expect(await Self.post(batch, to: server.url)?.status == 200)
        }
        let data = server.dataDirectory.path
        let work = server.directory.path
        #expect(try await Self.run(["backup", "--data-dir", data, "--to", work + "/b"]).status == 0)
        server.stop()
        #expect(try await Self.run(["check", "--data-dir", data]).status == 0)

        // A log segment: one byte of a record in the middle.
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: data + "/log").first { $0.hasSuffix(".log") })
        let size = try #require(try FileManager.default.attributesOfItem(atPath: data + "/log/" + segment)[.size] as? UInt64)
        let original = try Data(contentsOf: URL(fileURLWithPath: data + "/log/" + segment))
        try Self.flip(data + "/log/" + segment, at: size / 2)
        var c = try await Self.run(["check", "--data-dir", data])
        #expect(c.status == 1 && c.output.contains("DAMAGED [log_corrupt]"), "\(c.output)")
        try original.write(to: URL(fileURLWithPath: data + "/log/" + segment))
        #expect(try await Self.run(["check", "--data-dir", data]).status == 0)

        // store.sqlite: the last byte of a bucket row's state (the end of a leaf page of table `bucket`).
        let store = data + "/store.sqlite"
        let (pageSize, pages) = try PageDamage.leafPages(store, of: "bucket")
        let page = try #require(pages.first)
        try Self.flip(store, at: UInt64(page * pageSize - 1))
        c = try await Self.run(["check", "--data-dir", data])
        #expect(c.status == 1 && c.output.contains("DAMAGED [store_corrupt]"), "\(c.output)")

        // The backup: sound, then a flipped byte in its store copy, then in a log segment copy.
        let backup = work + "/b"
        #expect(try await Self.run(["check", "--backup", backup]).status == 0)
        let copy = try Data(contentsOf: URL(fileURLWithPath: backup + "/store.sqlite"))
        try Self.flip(backup + "/store.sqlite", at: UInt64(copy.count / 2))
        c = try await Self.run(["check", "--backup", backup])
        #expect(c.status == 1 && c.output.contains("DAMAGED [backup_checksum_mismatch]") && c.output.contains("store.sqlite"), "\(c.output)")
        var r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (backup_checksum_mismatch)"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: work + "/r") && Self.leftovers(in: work).isEmpty)
        try copy.write(to: URL(fileURLWithPath: backup + "/store.sqlite"))
        #expect(try await Self.run(["check", "--backup", backup]).status == 0)

        // Truncated: a log segment cut short.
        let logCopy = backup + "/log/" + segment
        let segmentCopy = try Data(contentsOf: URL(fileURLWithPath: logCopy))
        try segmentCopy.prefix(segmentCopy.count - 100).write(to: URL(fileURLWithPath: logCopy))
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (backup_truncated)"), "\(r.output)")
        c = try await Self.run(["check", "--backup", backup])
        #expect(c.status == 1 && c.output.contains("DAMAGED [backup_truncated]"), "\(c.output)")
        try segmentCopy.write(to: URL(fileURLWithPath: logCopy))

        // An added file; a missing manifest; a damaged manifest.
        try Data("x".utf8).write(to: URL(fileURLWithPath: backup + "/log/99999999999999999999.log"))
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (backup_unexpected_file)"), "\(r.output)")
        try FileManager.default.removeItem(atPath: backup + "/log/99999999999999999999.log")
        let manifest = try Data(contentsOf: URL(fileURLWithPath: backup + "/manifest.json"))
        try FileManager.default.removeItem(atPath: backup + "/manifest.json")
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (backup_incomplete)"), "\(r.output)")
        let edited = String(decoding: manifest, as: UTF8.self).replacingOccurrences(of: "\"data_format\" : 5", with: "\"data_format\" : 99")
        #expect(edited != String(decoding: manifest, as: UTF8.self))
        try Data(edited.utf8).write(to: URL(fileURLWithPath: backup + "/manifest.json"))
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (manifest_damaged)"), "\(r.output)")

        // From a newer speedflow: the manifest says so (and its checksum agrees).
        let digest = try Self.sha256Hex(Data(edited.utf8))
        try Data("\(digest)  manifest.json\n".utf8).write(to: URL(fileURLWithPath: backup + "/manifest.json.sha256"))
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (newer_format)"), "\(r.output)")
        c = try await Self.run(["check", "--backup", backup])
        #expect(c.status == 2 && c.output.contains("newer_format"), "\(c.output)")
        try manifest.write(to: URL(fileURLWithPath: backup + "/manifest.json"))
        try Data("\(try Self.sha256Hex(manifest))  manifest.json\n".utf8).write(to: URL(fileURLWithPath: backup + "/manifest.json.sha256"))

        // A non-empty target.
        try FileManager.default.createDirectory(atPath: work + "/r", withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: work + "/r/file"))
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 1 && r.output.contains("error (target_not_empty)"), "\(r.output)")
        #expect(try String(contentsOfFile: work + "/r/file", encoding: .utf8) == "keep")
        #expect(Self.leftovers(in: work).isEmpty, "\(Self.leftovers(in: work))")
        // And a backup into a non-empty directory.
        let b = try await Self.run(["backup", "--data-dir", data, "--to", work + "/r"])
        #expect(b.status == 1 && b.output.contains("error (target_not_empty)"), "\(b.output)")

        // The untouched backup restores and serves.
        try FileManager.default.removeItem(atPath: work + "/r")
        r = try await Self.run(["restore", "--from", backup, "--data-dir", work + "/r"])
        #expect(r.status == 0, "\(r.output)")
    }

    static func sha256Hex(_ data: Data) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(data)
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }
}
