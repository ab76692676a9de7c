import AsyncHTTPClient
import Foundation
import GRDB
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Random damage to the SQLite store (its pages, or its WAL after kill -9), with the real binary: every answer is
/// either exactly the truth or an error with a reason (never a wrong number, never an empty body), or the server
/// refuses to start and says why.
@Suite("SQLite store faults with the real binary", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct StoreFaultTests {
    static let cameras = (0..<6).map { "SQF\($0)" }
    static let perCamera = 3000

    /// Event `i` of a camera: spread over the last 20 hours, so the store has many buckets and pages.
    static func eventMs(_ i: Int, nowMs: Int64) -> Int64 { nowMs - 60_000 - Int64(i) * 23_917 % 72_000_000 }

    static func body(_ camera: String, _ range: Range<Int>, nowMs: Int64) -> String {
        range.map { i in
            "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(eventMs(i, nowMs: nowMs)))\",\"vehicle_speed\":\(30 + i % 100),\"event_id\":\"\(camera)-\(i)\"}"
        }.joined(separator: "\n")
    }

    /// Events per 5-minute bucket start (ms) of one camera: the truth.
    static func truth(nowMs: Int64) -> [Int64: Int] {
        var t: [Int64: Int] = [:]
        for i in 0..<perCamera { t[eventMs(i, nowMs: nowMs) / 300_000 * 300_000, default: 0] += 1 }
        return t
    }

    /// Corrupts one random page-sized range of `file` (random bytes), or flips a few bits: returns what it did.
    static func damage(_ file: URL, using rng: inout some RandomNumberGenerator) throws -> String {
        let size = Int(truncating: try FileManager.default.attributesOfItem(atPath: file.path)[.size] as! NSNumber)
        guard size > 4096 else { return "too small" }
        let handle = try FileHandle(forUpdating: file)
        defer { try? handle.close() }
        if Bool.random(using: &rng) {
            let page = Int.random(in: 1..<(size / 4096), using: &rng)
            try handle.seek(toOffset: UInt64(page * 4096))
            try handle.write(contentsOf: Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }))
            return "page \(page) of \(file.lastPathComponent) overwritten"
        }
        let at = Int.random(in: 100..<size, using: &rng)
        try handle.seek(toOffset: UInt64(at))
        var bytes = [UInt8](try handle.read(upToCount: 4) ?? Data())
        for i in bytes.indices { bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng)) }
        try handle.seek(toOffset: UInt64(at))
        try handle.write(contentsOf: Data(bytes))
        return "bits flipped at byte \(at) of \(file.lastPathComponent)"
    }

    /// The log offset the store's last commit reflects, read beside the running server as any SQLite reader may
    /// (WAL, read-only: it never writes or checkpoints the server's files).
    static func storeOffset(_ server: SpeedflowProcess) throws -> UInt64 {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: server.dataDirectory.appendingPathComponent("store.sqlite").path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT log_offset FROM checkpoint WHERE name = 'aggregator'") ?? 0)
        }
    }

    @Test("Random page overwrites and bit flips in store.sqlite and its WAL: exact, or an error with a reason")
    func randomStoreFaults() async throws {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<6 {
            let killed = round % 2 == 1
            let server = try SpeedflowProcess()
            defer { server.remove() }
            try await server.start()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for camera in Self.cameras {
                for chunk in stride(from: 0, to: Self.perCamera, by: 1000) {
                    let r = try await LogIntegrityTests.post(Self.body(camera, chunk..<(chunk + 1000), nowMs: now), to: server.url)
                    #expect(r.status == 200)
                }
            }
            let store = server.dataDirectory.appendingPathComponent("store.sqlite")
            if killed {
                // Cut the process once the store's last commit covers the whole log (every acknowledged event):
                // the WAL then holds the newest pages.
                let end = try LogIntegrityTests.logEnd(server)
                try await waitUntil("the store's checkpoint reaches the log's end (\(end))", timeout: .seconds(30)) {
                    try Self.storeOffset(server) >= end
                }
                server.kill9()
            } else {
                server.stop()
            }
            let wal = URL(fileURLWithPath: store.path + "-wal")
            let target = killed && FileManager.default.fileExists(atPath: wal.path) && Bool.random(using: &rng) ? wal : store
            let what = try Self.damage(target, using: &rng)

            do {
                try await server.start()
            } catch {
                let tail = server.logTail(8000)
                #expect(tail.contains("store_corrupt") || tail.contains("speedflow rebuild"), "round \(round) (\(what)): refused without a reason:\n\(tail)")
                continue
            }
            let truth = Self.truth(nowMs: now)
            let from = Timestamp.format((now - 72_000_000 - 600_000) / 300_000 * 300_000)
            let to = Timestamp.format((now / 300_000 + 1) * 300_000)
            for camera in Self.cameras {
                let (status, body) = try await LogIntegrityTests.get("\(server.url)/kvfv/\(camera)/avg-speed?from=\(from)&to=\(to)&interval=5m")
                let json = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
                if status == 200 {
                    let windows = json?["windows"] as? [[String: Any]] ?? []
                    var got: [Int64: Int] = [:]
                    for w in windows {
                        let n = w["count"] as? Int ?? -1
                        if n != 0 { got[Timestamp.parse(w["start"] as! String)!] = n }
                    }
                    #expect(got == truth, "round \(round) (\(what)): \(camera) answered 200 with wrong numbers")
                } else {
                    #expect(status >= 500 && (json?["reason"] as? String) == "store_corrupt",
                        "round \(round) (\(what)): \(camera) answered \(status) \(String(decoding: body, as: UTF8.self).prefix(300))")
                }
            }
        }
    }
}
