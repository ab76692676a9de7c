import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs of its own (root only: `mount -t tmpfs`), unmounted at the end.
final class SmallFileSystem {
    let path: String

    init(at path: String, size: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw SpeedflowProcess.ProcessError("mount -t tmpfs on \(path) failed (root needed)") }
    }

    var available: Int64 {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return -1 }
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// A filler file taking all but `leave` bytes of the free space.
    func fill(leaving leave: Int64, name: String = "filler") throws {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SpeedflowProcess.ProcessError("cannot create the filler") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xAB, count: 1 << 16)
        while available > leave {
            let n = Int(min(Int64(chunk.count), available - leave))
            guard n > 0, chunk.withUnsafeBytes({ write(fd, $0.baseAddress, n) }) == n else { break }
        }
    }

    func unfill(name: String = "filler") { unlink(path + "/" + name) }

    func unmount() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = ["-l", path]
        try? p.run()
        p.waitUntilExit()
    }
}

@Suite(
    "Free-space guard and full disks with the real binary",
    .enabled(if: SpeedflowProcess.binaryPath != nil && getuid() == 0), .serialized)
struct FreeSpaceGuardTests {
    typealias Event = BackupDrillTests.Event

    static func batch(_ n: Int, nowMs: Int64) -> [Event] {
        (0..<20).map { i in
            Event(camera: BackupDrillTests.cameras[i % 4], ms: nowMs - Int64((n * 20 + i) % 7200) * 1000, speed: 40 + (n + i) % 80, id: "g-\(n)-\(i)")
        }
    }

    static func get(_ url: String) async throws -> (Int, String) {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let body = try await r.body.collect(upTo: 16 << 20)
        return (Int(r.status.code), String(decoding: body.readableBytesView, as: UTF8.self))
    }

    @Test("below --min-free-space ingest answers 503 insufficient_storage, queries go on, nothing acknowledged is lost, ingest resumes when space returns")
    func guardOnTmpfs() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms", "--min-free-space", "16MiB"])
        let fs = try SmallFileSystem(at: server.dataDirectory.path, size: "64m")
        defer {
            server.stop()
            fs.unmount()
            server.remove()
        }
        try await server.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var acked: Set<Event> = []
        var n = 0
        for _ in 0..<20 {
            let b = Self.batch(n, nowMs: now)
            n += 1
            let a = try #require(await BackupDrillTests.post(b, to: server.url))
            #expect(a.status == 200)
            acked.formUnion(b)
        }

        // Under the threshold (8 MiB left of 64, 16 kept): refused within about a second, nothing stored.
        try fs.fill(leaving: 8 << 20)
        var refused: Answer?
        try await waitUntil("ingest refused with insufficient_storage", timeout: .seconds(15)) {
            let b = Self.batch(n, nowMs: now)
            n += 1
            var request = HTTPClientRequest(url: server.url + "/events")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-ndjson")
            request.body = .bytes(ByteBuffer(string: b.map(\.json).joined(separator: "\n")))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 1 << 20)
            if response.status == .ok { acked.formUnion(b) }  // before the guard's next look
            guard response.status == .serviceUnavailable else { return false }
            refused = Answer(
                retryAfter: response.headers.first(name: "Retry-After"),
                json: (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:])
            return true
        }
        let answer = try #require(refused)
        #expect(answer.json["reason"] as? String == "insufficient_storage", "\(answer.json)")
        #expect(answer.retryAfter != nil)
        // Every further batch is refused while the disk stays low; queries and health go on.
        for _ in 0..<5 {
            let b = Self.batch(n, nowMs: now)
            n += 1
            let a = try #require(await BackupDrillTests.post(b, to: server.url))
            #expect(a.status == 503 && a.json["reason"] as? String == "insufficient_storage")
        }
        let from = Timestamp.format((now - 3 * 3_600_000).floorDiv(300_000) * 300_000)
        let to = Timestamp.format((now + 600_000).floorDiv(300_000) * 300_000)
        #expect(try await Self.get("\(server.url)/kvfv/KVB1/avg-speed?from=\(from)&to=\(to)&interval=1h").0 == 200)
        #expect(try await Self.get("\(server.url)/kvfv").0 == 200)
        let metrics = try await Self.get(server.url + "/metrics").1
        #expect(metrics.contains("speedflow_free_space_guard_refusing 1"), "\(metrics.prefix(200))")
        #expect(metrics.contains("speedflow_ingest_refused_total{reason=\"insufficient_storage\"}"))
        #expect(server.logTail(100_000).contains("Free space below --min-free-space"))

        // Space returns: ingest resumes by itself.
        fs.unfill()
        try await waitUntil("ingest accepted again", timeout: .seconds(15)) {
            let b = Self.batch(n, nowMs: now)
            n += 1
            guard let a = await BackupDrillTests.post(b, to: server.url), a.status == 200 else { return false }
            acked.formUnion(b)
            return true
        }
        for _ in 0..<10 {
            let b = Self.batch(n, nowMs: now)
            n += 1
            #expect(await BackupDrillTests.post(b, to: server.url)?.status == 200)
            acked.formUnion(b)
        }
        // Exactly what was acknowledged: every refused batch left no trace.
        try await BackupDrillTests.expectWindows(server.url, equal: acked, nowMs: now)
        // And after a restart (replay from the log on the tmpfs).
        server.kill9()
        try await server.start()
        try await BackupDrillTests.expectWindows(server.url, equal: acked, nowMs: now)
    }

    struct Answer {
        var retryAfter: String?
        var json: [String: Any]
    }

    @Test("a backup onto a full disk fails with insufficient_storage and leaves nothing half-written")
    func backupOntoFullDisk() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--flush-interval", "200ms"])
        let target = server.directory.path + "/small"
        let fs = try SmallFileSystem(at: target, size: "16m")
        defer {
            server.stop()
            fs.unmount()
            server.remove()
        }
        try await server.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for n in 0..<50 { #expect(await BackupDrillTests.post(Self.batch(n, nowMs: now), to: server.url)?.status == 200) }
        try fs.fill(leaving: 64 << 10)
        let r = try await BackupDrillTests.run(["backup", "--data-dir", server.dataDirectory.path, "--to", target + "/b"])
        #expect(r.status == 1 && r.output.contains("error (insufficient_storage)"), "\(r.output)")
        let left = try FileManager.default.contentsOfDirectory(atPath: target)
        #expect(left == ["filler"], "nothing half-written: \(left)")
        // With room again, the same command succeeds (the server still running and ingesting meanwhile).
        fs.unfill()
        #expect(await BackupDrillTests.post(Self.batch(99, nowMs: now), to: server.url)?.status == 200)
        let ok = try await BackupDrillTests.run(["backup", "--data-dir", server.dataDirectory.path, "--to", target + "/b"])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(try await BackupDrillTests.run(["check", "--backup", target + "/b"]).status == 0)
    }
}
