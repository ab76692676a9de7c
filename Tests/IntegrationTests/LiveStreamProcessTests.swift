import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// The live stream of the real binary (`speedflow serve`), read by `curl -N`: a late event is pushed, and SIGTERM
/// ends the open streams (with `event: end`) instead of the graceful shutdown waiting on them.
@Suite("Live streams of the real binary", .enabled(if: SpeedflowProcess.binaryPath != nil))
struct LiveStreamProcessTests {
    @Test("a late event is pushed to curl -N; SIGTERM ends the stream with an end event and the server exits")
    func pushAndShutdown() async throws {
        let server = try SpeedflowProcess()
        defer { server.remove() }
        try await server.start()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let old = now - 3 * 3_600_000
        let event = { (ms: Int64, id: String) in
            "{\"kvfv_id\":\"KV1\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":80,\"event_id\":\"\(id)\"}"
        }
        #expect(try await LogIntegrityTests.post(event(old, "a") + "\n" + event(now - 1000, "b"), to: server.url).status == 200)
        let url = server.url + "/kvfv/KV1/avg-speed/stream?from=\(Timestamp.format(now - 6 * 3_600_000))"
        let curl = try await offCooperativePool { try CurlStream(url) }
        defer { curl.stop() }
        try await waitUntil("the snapshot", timeout: .seconds(30)) { !curl.sse.named("snapshot").isEmpty }
        let oldStart = Timestamp.format(old - ((old % 300_000) + 300_000) % 300_000)
        #expect(try await LogIntegrityTests.post(event(old + 1, "late"), to: server.url).status == 200)
        try await waitUntil("the revised window", timeout: .seconds(30)) {
            curl.sse.named("window").contains { $0.json["start"] as? String == oldStart && $0.json["count"] as? Int == 2 }
        }
        let process = try #require(server.process)
        server.send(signal: SIGTERM)
        // Without the stream ending, curl would wait (and the server's shutdown with it).
        try await waitUntil("the stream ended by the server", timeout: .seconds(20)) { curl.ended }
        #expect(curl.sse.named("end").last?.json["reason"] as? String == "shutting_down", "\(curl.text.suffix(300))")
        try await waitUntil("the server exited", timeout: .seconds(20)) { !process.isRunning }
        #expect(process.terminationStatus == 0, "\(server.logTail())")
    }
}
