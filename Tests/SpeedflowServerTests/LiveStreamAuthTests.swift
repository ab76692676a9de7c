import Foundation
import SpeedflowAuth
import SpeedflowModel
import SpeedflowServer
import SpeedflowTestSupport
import Testing

/// A live stream outlives the request that opened it, so its credential is checked again while it lasts.
@Suite("Live streams: credentials")
struct LiveStreamAuthTests {
    @Test("a stream ends with end credential_revoked within seconds of its credential's revocation; others go on")
    func revokedCredentialEndsItsStreams() async throws {
        let dir = temporaryDirectory("speedflow-stream-auth")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("credentials.json").path
        let (readerRecord, reader) = try CredentialAdmin.create(at: path, role: .reader, kvfv: [], name: nil, actor: "test")
        let other = try CredentialAdmin.create(at: path, role: .reader, kvfv: [], name: nil, actor: "test").token
        let credentials = try CredentialStore(path: path)
        // Tokens go to curl in header files, never on its command line.
        @Sendable func headerFile(_ name: String, _ token: String) throws -> String {
            let file = dir.appendingPathComponent(name).path
            try Data("Authorization: Bearer \(token)\n".utf8).write(to: URL(fileURLWithPath: file))
            return "@" + file
        }
        let access = AccessControl(mode: .required, credentials: credentials)
        try await LiveServer.with(access: access) { server in
            let now = LiveServer.now()
            _ = try await server.engine.ingest([CameraEvent(kvfvId: "KVA", timestampMs: now - 60_000, speed: 70)], arrivalMs: now)
            let query = "/kvfv/KVA/avg-speed/stream?from=\(Timestamp.format(now - 3_600_000))&interval=5m"
            let revoked = try await server.curl(query, headers: [try headerFile("reader.header", reader)])
            let kept = try await server.curl(query, headers: [try headerFile("other.header", other)])
            for curl in [revoked, kept] {
                try await waitUntil("the snapshot", timeout: .seconds(20)) { !curl.sse.named("snapshot").isEmpty }
            }
            _ = try CredentialAdmin.revoke(at: path, id: readerRecord.id, actor: "test")
            _ = try credentials.reloadIfChanged()
            try await waitUntil("the revoked credential's stream ends", timeout: .seconds(10)) { revoked.ended }
            #expect(revoked.sse.named("end").last?.json["reason"] as? String == "credential_revoked")
            #expect(!kept.ended && kept.sse.named("end").isEmpty, "another credential's stream goes on")
            // And the revoked token opens nothing new.
            let again = try await server.curl(query, includeHead: true, headers: [try headerFile("reader.header", reader)])
            try await waitUntil("the refusal", timeout: .seconds(10)) { again.ended }
            #expect(again.text.hasPrefix("HTTP/1.1 401"))
        }
    }
}
