import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// Credentials end to end with the real binary and curl: tokens made by `speedflow token`, a server and an API
/// node following one credentials file, revocation reaching both without a restart, and kill -9 with
/// authenticated traffic still exact.
@Suite("Auth with the real binary and curl", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct AuthTests {
    /// `curl` with the token in a header file (never on its command line, which `ps` shows): status and body.
    static func curl(_ url: String, token: String?, method: String = "GET", body: String? = nil, in dir: URL) async throws -> (Int, String) {
        let headers = dir.appendingPathComponent("h-\(UUID().uuidString)")
        let out = dir.appendingPathComponent("o-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: headers)
            try? FileManager.default.removeItem(at: out)
        }
        try Data(((token.map { "Authorization: Bearer \($0)\n" } ?? "") + "Content-Type: application/json\n").utf8).write(to: headers)
        let arguments = ["-s", "-X", method, "-o", out.path, "-w", "%{http_code}", "-H", "@" + headers.path, url]
            + (body.map { ["--data-binary", $0] } ?? [])
        let (status, output) = try await offCooperativePool { () -> (Int32, String) in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            p.arguments = arguments
            let pipe = Pipe()
            p.standardOutput = pipe
            do { try p.run() } catch { return (-1, "\(error)") }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        guard status == 0, let code = Int(output) else { throw SpeedflowProcess.ProcessError("curl failed (\(status)): \(output)") }
        return (code, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// `speedflow token create …` off the cooperative pool: the token (`SpeedflowProcess.createToken`), or for
    /// other `token` subcommands their output.
    static func token(_ arguments: [String]) async throws -> String {
        guard arguments.first == "create" else { return try await speedflow(["token"] + arguments) }
        var rest = Array(arguments.dropFirst())
        let at = try #require(rest.firstIndex(of: "--data-dir"))
        let data = rest[at + 1]
        rest.removeSubrange(at...(at + 1))
        let options = rest
        return try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, options) }
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("tokens from the CLI; 401/403 and per-event forbidden_kvfv_id through curl; revocation reaches a second node; kill -9 stays exact")
    func endToEnd() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let admin = try await Self.token(["create", "--role", "admin", "--data-dir", data, "--name", "ops"])
        let camera = try await Self.token(["create", "--role", "camera", "--kvfv", "AUTH1", "--kvfv", "AUTHP-*", "--data-dir", data])
        #expect(admin.hasPrefix("sft_") && camera.hasPrefix("sft_"))
        try await server.start()
        let api = try SpeedflowProcess(subcommand: "api", extraArguments: [
            "--auth", "required", "--credentials", data + "/credentials.json", "--data-dir", data,
        ])
        defer { api.remove() }
        try await api.start()
        let dir = server.directory

        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let t = (now / 300_000 - 1) * 300_000 + 500
        func event(_ camera: String, _ i: Int) -> String {
            "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(t + Int64(i)))\",\"vehicle_speed\":\(60 + i % 40),\"event_id\":\"\(camera)-\(i)\"}"
        }
        var (code, body) = try await Self.curl(server.url + "/events", token: nil, method: "POST", body: event("AUTH1", 0), in: dir)
        #expect(code == 401 && Self.json(body)["reason"] as? String == "unauthorized")
        (code, body) = try await Self.curl(server.url + "/kvfv", token: camera, in: dir)
        #expect(code == 403 && Self.json(body)["reason"] as? String == "forbidden")
        func cameraOf(_ i: Int) -> String { i % 3 == 2 ? "OTHER" : i % 3 == 1 ? "AUTHP-\(i % 5)" : "AUTH1" }
        let batch = "[" + (0..<300).map { event(cameraOf($0), $0) }.joined(separator: ",") + "]"
        (code, body) = try await Self.curl(server.url + "/events", token: camera, method: "POST", body: batch, in: dir)
        #expect(code == 200)
        #expect(Self.json(body)["accepted"] as? Int == 200)
        #expect((Self.json(body)["rejected_by_reason"] as? [String: Int]) == ["forbidden_kvfv_id": 100])

        // A reader made while both nodes run works on both once they reload the file; revoked, on neither.
        let reader = try await Self.token(["create", "--role", "reader", "--data-dir", data])
        for node in [server, api] {
            try await waitUntil("the new reader token is accepted by \(node.subcommand)", timeout: .seconds(10)) {
                try await Self.curl(node.url + "/kvfv", token: reader, in: dir).0 == 200
            }
        }
        let readerId = String(reader.split(separator: "_")[1])
        let list = try await Self.token(["list", "--data-dir", data])
        #expect(list.contains(readerId) && !list.contains(reader))
        _ = try await Self.token(["revoke", readerId, "--data-dir", data])
        for node in [server, api] {
            try await waitUntil("the revoked reader token is refused by \(node.subcommand)", timeout: .seconds(10)) {
                try await Self.curl(node.url + "/kvfv", token: reader, in: dir).0 == 401
            }
        }
        let audit = try String(contentsOfFile: data + "/audit.log", encoding: .utf8)
        #expect(audit.split(separator: "\n").count == 4)
        #expect(audit.contains("\"action\":\"revoke\"") && audit.contains("\"actor\":\"cli:"))

        // kill -9 after authenticated writes: the restarted server answers exactly what was acknowledged.
        server.kill9()
        try await server.start()
        let from = Timestamp.format(t - 500), to = Timestamp.format(t - 500 + 300_000)
        (code, body) = try await Self.curl(server.url + "/kvfv/AUTH1/avg-speed?from=\(from)&to=\(to)", token: admin, in: dir)
        #expect(code == 200)
        let windows = (Self.json(body)["windows"] as? [[String: Any]]) ?? []
        #expect(windows.first?["count"] as? Int == 100)
        let mine: [Double] = (0..<300).filter { $0 % 3 == 0 }.map { Double(60 + $0 % 40) }
        let expected: Double = mine.reduce(0, +) / Double(mine.count)
        let avg = windows.first?["avg_speed"] as? Double
        #expect(avg.map { abs($0 - expected) < 1e-9 } == true, "\(String(describing: avg)) vs \(expected)")
    }

    @Test("a leaked token's writes: listed by `log writes`, left out by `rebuild --exclude-credential`, exact against an oracle")
    func excludeCredential() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let camera = try await Self.token(["create", "--role", "camera", "--kvfv", "EXC1", "--data-dir", data])
        let leaked = try await Self.token(["create", "--role", "camera", "--kvfv", "EXC*", "--data-dir", data, "--name", "leaked"])
        let admin = try await Self.token(["create", "--role", "admin", "--data-dir", data])
        try await server.start()
        let dir = server.directory
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let base = (now / 300_000 - 6) * 300_000
        func event(_ i: Int, _ speed: Double) -> String {
            "{\"kvfv_id\":\"EXC1\",\"timestamp\":\"\(Timestamp.format(base + Int64(i) * 11_000))\",\"vehicle_speed\":\(speed),\"event_id\":\"EXC1-\(i)\"}"
        }
        // The leaked token posts fake passes first, squatting half of the camera's next event ids.
        let fake = "[" + (0..<100).filter { $0 % 2 == 0 }.map { event($0, 250) }.joined(separator: ",") + "]"
        var (code, body) = try await Self.curl(server.url + "/events", token: leaked, method: "POST", body: fake, in: dir)
        #expect(code == 200 && Self.json(body)["accepted"] as? Int == 50)
        let real: [Double] = (0..<100).map { Double(50 + ($0 * 7) % 60) }
        let realBody = "[" + (0..<100).map { event($0, real[$0]) }.joined(separator: ",") + "]"
        (code, body) = try await Self.curl(server.url + "/events", token: camera, method: "POST", body: realBody, in: dir)
        #expect(code == 200 && Self.json(body)["duplicates"] as? Int == 50)
        server.stop()

        let leakedId = String(leaked.split(separator: "_")[1]), cameraId = String(camera.split(separator: "_")[1])
        let summary = try await Self.speedflow(["log", "writes", "--data-dir", data])
        #expect(summary.contains(leakedId) && summary.contains(cameraId))
        let listed = try await Self.speedflow(["log", "writes", "--credential", leakedId, "--data-dir", data])
        let lines = listed.split(separator: "\n").map { Self.json(String($0)) }
        #expect(lines.count == 50 && lines.allSatisfy { $0["vehicle_speed"] as? Double == 250 && $0["writer"] as? String == leakedId })

        let rebuilt = try await Self.speedflow(["rebuild", "--exclude-credential", leakedId, "--data-dir", data])
        #expect(rebuilt.contains("left out 50 events"), "\(rebuilt)")
        try await server.start()
        let from = Timestamp.format(base), to = Timestamp.format(base + 30 * 60_000)
        (code, body) = try await Self.curl(server.url + "/kvfv/EXC1/avg-speed?from=\(from)&to=\(to)&interval=5m", token: admin, in: dir)
        #expect(code == 200)
        let windows = (Self.json(body)["windows"] as? [[String: Any]]) ?? []
        // The oracle: the camera's own 100 passes, by 5-minute window.
        var truth: [Int64: [Double]] = [:]
        for i in 0..<100 { truth[(base + Int64(i) * 11_000) / 300_000 * 300_000, default: []].append(real[i]) }
        #expect(windows.count == 6)
        for w in windows {
            let start = try #require(Timestamp.parse(w["start"] as? String ?? ""))
            let speeds = truth[start] ?? []
            #expect(w["count"] as? Int == speeds.count, "\(w)")
            if !speeds.isEmpty {
                let avg = w["avg_speed"] as? Double ?? -1
                #expect(abs(avg - speeds.reduce(0, +) / Double(speeds.count)) < 1e-9, "\(w)")
                #expect(w["max_speed"] as? Double == speeds.max())
            }
        }
    }

    /// `speedflow <arguments>` to completion, off the cooperative pool: stdout and stderr together.
    static func speedflow(_ arguments: [String]) async throws -> String {
        let r = try await offCooperativePool { try SpeedflowProcess.run(arguments) }
        guard r.status == 0 else { throw SpeedflowProcess.ProcessError("speedflow \(arguments) failed (\(r.status)): \(r.output)") }
        return r.output
    }

    @Test("auth off on a non-loopback address is allowed only when asked for, and warned about at start")
    func offOnPublicAddress() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--host", "0.0.0.0", "--auth", "off"])
        defer { server.remove() }
        try await server.start()
        #expect(server.logTail().contains("Authentication is off on a non-loopback address"))
        let required = try SpeedflowProcess(extraArguments: ["--host", "0.0.0.0"])
        defer { required.remove() }
        try await required.start()
        let (code, _) = try await Self.curl(required.url + "/kvfv", token: nil, in: required.directory)
        #expect(code == 401)
        #expect(required.logTail().contains("no credential exists yet"))
    }
}
