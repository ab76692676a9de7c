import AsyncHTTPClient
import Foundation
import NIOCore
import SpeedflowModel
import SpeedflowTestSupport
import Synchronization
import Testing

/// MQTT ingest end to end: the real binary with `--mqtt-port`, driven by clients nobody here wrote —
/// `mosquitto_pub` (Debian mosquitto-clients, libmosquitto) and Eclipse Paho for Python (Debian python3-paho-mqtt)
/// — in MQTT 3.1.1 and 5. What is acknowledged is queried back at once and must be exact.
@Suite(
    "MQTT ingest with the real binary, mosquitto_pub and Paho",
    .enabled(if: SpeedflowProcess.binaryPath != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/mosquitto_pub")),
    .serialized)
struct MQTTIngestTests {
    static let mosquittoPub = "/usr/bin/mosquitto_pub"
    /// Debian's Python, which has python3-paho-mqtt (a `python3` earlier on PATH may not).
    static let python = "/usr/bin/python3"

    /// The MQTT port of the server's current run: the last banner line in its log.
    static func mqttPort(_ server: SpeedflowProcess) async throws -> Int {
        var port: Int?
        try await waitUntil("the MQTT listener's banner", timeout: .seconds(30)) {
            port = lastMQTTPort(server.logTail(1 << 20))
            return port != nil
        }
        return port!
    }

    static func lastMQTTPort(_ log: String) -> Int? {
        let marker = "speedflow MQTT listening on mqtt"
        guard let range = log.range(of: marker, options: .backwards) else { return nil }
        let rest = log[range.upperBound...].drop { $0 == "s" }
        guard rest.hasPrefix("://127.0.0.1:") else { return nil }
        return Int(rest.dropFirst("://127.0.0.1:".count).prefix { $0.isNumber })
    }

    /// Runs a client to completion (killed after `timeout` seconds): exit status, stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, timeout: Int = 60) async throws -> (status: Int32, output: String) {
        let r = try await offCooperativePool { try ChildProcess.run(executable, arguments, input: stdin, timeout: .seconds(timeout)) }
        return (r.status, r.stdout + r.stderr)
    }

    /// `mosquitto_pub -h 127.0.0.1 -p PORT ARGUMENTS…` (exit 0 for QoS 1 only once every message was acknowledged).
    static func publish(port: Int, _ arguments: [String], stdin: Data? = nil) async throws -> (status: Int32, output: String) {
        try await run(mosquittoPub, ["-h", "127.0.0.1", "-p", "\(port)"] + arguments, stdin: stdin)
    }

    static func get(_ url: String, token: String? = nil) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    struct Event {
        var camera: String
        var ms: Int64
        var speed: Double
        var id: String
        var json: String {
            "{\"kvfv_id\":\"\(camera)\",\"timestamp\":\"\(Timestamp.format(ms))\",\"vehicle_speed\":\(speed),\"event_id\":\"\(id)\",\"lane\":1}"
        }
    }

    /// Events of `camera` over the last three whole 5-minute buckets before now, distinct ids from `first`.
    static func events(_ camera: String, count: Int, first: Int, base: Int64) -> [Event] {
        (0..<count).map { i in
            let n = first + i
            return Event(camera: camera, ms: base + Int64(n * 7_919 % 900_000), speed: Double(40 + n * 37 % 900) / 10 + 0.25, id: "\(camera)-\(n)")
        }
    }

    /// Every 5-minute window of `camera` from `from` (3 windows): count and average must be the truth's, exactly
    /// (the average to 1e-12 relative: the server adds in another order).
    static func expectWindows(_ url: String, camera: String, from: Int64, truth: [Event], token: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let uri = "\(url)/kvfv/\(camera)/avg-speed?from=\(Timestamp.format(from))&to=\(Timestamp.format(from + 900_000))&interval=5m"
        let (status, body) = try await get(uri, token: token)
        if truth.allSatisfy({ $0.camera != camera }) && status == 404 {
            // Nothing ever stored for the camera: it is unknown.
            #expect(json(body)["reason"] as? String == "unknown_kvfv", "\(body)", sourceLocation: sourceLocation)
            return
        }
        #expect(status == 200, "\(body)", sourceLocation: sourceLocation)
        let windows = json(body)["windows"] as? [[String: Any]] ?? []
        #expect(windows.count == 3, sourceLocation: sourceLocation)
        for (i, w) in windows.enumerated() {
            let start = from + Int64(i) * 300_000
            let inWindow = truth.filter { $0.camera == camera && $0.ms >= start && $0.ms < start + 300_000 }
            #expect(w["count"] as? Int == inWindow.count, "\(camera) window \(i)", sourceLocation: sourceLocation)
            if !inWindow.isEmpty {
                let expected = inWindow.map(\.speed).reduce(0, +) / Double(inWindow.count)
                let avg = w["avg_speed"] as? Double ?? .nan
                #expect(abs(avg - expected) <= 1e-12 * expected, "\(camera) window \(i): \(avg) vs \(expected)", sourceLocation: sourceLocation)
            }
        }
    }

    /// The start of the bucket 20 minutes back: three buckets wholly in the past.
    static func base() -> Int64 {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return (now / 300_000 - 4) * 300_000
    }

    static func gzip(_ data: Data, in dir: URL) async throws -> Data {
        let file = dir.appendingPathComponent("gz-\(UUID().uuidString)")
        try data.write(to: file)
        let r = try await run("/usr/bin/gzip", ["-n", "-f", file.path])
        #expect(r.status == 0, "\(r.output)")
        return try Data(contentsOf: URL(fileURLWithPath: file.path + ".gz"))
    }

    @Test("mosquitto_pub -q 1, MQTT 3.1.1 and 5: single events, NDJSON batches, a JSON array, gzip by topic and by content type; a batch sent twice counts once; exact right after the acknowledgement")
    func mosquittoPublishes() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "0"])
        defer { server.remove() }
        try await server.start()
        let port = try await Self.mqttPort(server)
        let dir = server.directory
        let base = Self.base()
        let topic = "speedflow/v1/events/MQ1"

        // 40 single events, one message per line (-l), 3.1.1 and 5.
        let singles = Self.events("MQ1", count: 40, first: 0, base: base)
        for (version, part) in [("mqttv311", singles[0..<20]), ("mqttv5", singles[20..<40])] {
            let lines = Data(part.map { $0.json + "\n" }.joined().utf8)
            let r = try await Self.publish(port: port, ["-V", version, "-q", "1", "-t", topic, "-l"], stdin: lines)
            #expect(r.status == 0, "\(version): \(r.output)")
        }
        try await Self.expectWindows(server.url, camera: "MQ1", from: base, truth: singles)

        // An NDJSON batch of 500 (3.1.1), sent twice: the second copy is all duplicates.
        let batch = Self.events("MQ1", count: 500, first: 1000, base: base)
        let ndjson = dir.appendingPathComponent("batch.ndjson")
        try Data(batch.map { $0.json + "\n" }.joined().utf8).write(to: ndjson)
        for _ in 0..<2 {
            let r = try await Self.publish(port: port, ["-q", "1", "-t", topic, "-f", ndjson.path])
            #expect(r.status == 0, "\(r.output)")
        }
        // A JSON array in MQTT 5.
        let array = Self.events("MQ1", count: 200, first: 2000, base: base)
        let r1 = try await Self.publish(port: port, ["-V", "mqttv5", "-q", "1", "-t", topic, "-m", "[" + array.map(\.json).joined(separator: ",") + "]"])
        #expect(r1.status == 0, "\(r1.output)")
        // gzip: by topic suffix (3.1.1), by content type (5).
        let zipped = Self.events("MQ1", count: 300, first: 3000, base: base)
        let gzFile = dir.appendingPathComponent("z.gz")
        try await Self.gzip(Data(zipped[0..<150].map { $0.json + "\n" }.joined().utf8), in: dir).write(to: gzFile)
        let r2 = try await Self.publish(port: port, ["-q", "1", "-t", topic + "/gzip", "-f", gzFile.path])
        #expect(r2.status == 0, "\(r2.output)")
        try await Self.gzip(Data(zipped[150...].map { $0.json + "\n" }.joined().utf8), in: dir).write(to: gzFile)
        let r3 = try await Self.publish(port: port, ["-V", "mqttv5", "-q", "1", "-t", topic, "-D", "publish", "content-type", "application/gzip", "-f", gzFile.path])
        #expect(r3.status == 0, "\(r3.output)")

        let all = singles + batch + array + zipped
        try await Self.expectWindows(server.url, camera: "MQ1", from: base, truth: all)
        let stats = Self.json(try await Self.get(server.url + "/stats").body)
        #expect(stats["accepted_total"] as? Int == all.count && stats["duplicates_total"] as? Int == batch.count, "\(stats)")
        let metrics = try await Self.get(server.url + "/metrics").body
        #expect(metrics.contains("speedflow_mqtt_publish_total{qos=\"1\"} 45"), "\(metrics.split(separator: "\n").filter { $0.contains("mqtt") })")
    }

    @Test("auth required: the token as password; a wrong password or none is refused at CONNACK; another camera's topic is forbidden_kvfv_id and a payload naming another camera topic_mismatch, counted, not stored")
    func credentials() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required", "--mqtt-port", "0"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let admin = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "admin"]) }
        let camera = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "camera", "--kvfv", "MQA"]) }
        let reader = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "reader"]) }
        let id = String(camera.split(separator: "_")[1])
        try await server.start()
        let port = try await Self.mqttPort(server)
        let base = Self.base()
        let good = Self.events("MQA", count: 3, first: 0, base: base)

        for version in ["mqttv311", "mqttv5"] {
            // Right credential.
            let r = try await Self.publish(port: port, ["-V", version, "-q", "1", "-u", id, "-P", camera, "-t", "speedflow/v1/events/MQA", "-m", good[version == "mqttv5" ? 1 : 0].json])
            #expect(r.status == 0, "\(version): \(r.output)")
            // A wrong secret with the right id; no credential at all; a reader's credential.
            let forged = "sft_\(id)_" + String(repeating: "A", count: 43)
            let wrong = try await Self.publish(port: port, ["-V", version, "-q", "1", "-u", id, "-P", forged, "-t", "speedflow/v1/events/MQA", "-m", good[2].json])
            #expect(wrong.status != 0 && wrong.output.lowercased().contains("bad user name or password"), "\(version): \(wrong)")
            let none = try await Self.publish(port: port, ["-V", version, "-q", "1", "-t", "speedflow/v1/events/MQA", "-m", good[2].json])
            #expect(none.status != 0 && none.output.lowercased().contains("not author"), "\(version): \(none)")
            let readerId = String(reader.split(separator: "_")[1])
            let read = try await Self.publish(port: port, ["-V", version, "-q", "1", "-u", readerId, "-P", reader, "-t", "speedflow/v1/events/MQA", "-m", good[2].json])
            #expect(read.status != 0 && read.output.lowercased().contains("not author"), "\(version): \(read)")
        }
        // Another camera's topic and events (3.1.1: acknowledged, every event rejected forbidden_kvfv_id).
        let other = Self.events("MQB", count: 4, first: 0, base: base)
        let r1 = try await Self.publish(port: port, ["-q", "1", "-u", id, "-P", camera, "-t", "speedflow/v1/events/MQB", "-m", "[" + other.map(\.json).joined(separator: ",") + "]"])
        #expect(r1.status == 0, "\(r1.output)")
        // Its own topic, but events naming another camera: topic_mismatch (the one good event is taken).
        let mixed = [other[0].json, good[2].json, other[1].json].joined(separator: "\n")
        let r2 = try await Self.publish(port: port, ["-q", "1", "-u", id, "-P", camera, "-t", "speedflow/v1/events/MQA", "-m", mixed])
        #expect(r2.status == 0, "\(r2.output)")

        try await Self.expectWindows(server.url, camera: "MQA", from: base, truth: good, token: admin)
        try await Self.expectWindows(server.url, camera: "MQB", from: base, truth: [], token: admin)
        let stats = Self.json(try await Self.get(server.url + "/stats", token: admin).body)
        #expect(stats["rejected_by_reason"] as? [String: Int] == ["forbidden_kvfv_id": 4, "topic_mismatch": 2], "\(stats)")
        let metrics = try await Self.get(server.url + "/metrics", token: admin).body
        #expect(metrics.contains("speedflow_events_rejected_total{reason=\"topic_mismatch\"} 2"))
        #expect(metrics.contains("speedflow_mqtt_connect_total{result=\"bad_credentials\"} 2"))
    }

    /// A Paho (Python) client that subscribes to its camera's rejections topic, publishes `stdin` with QoS 1 on
    /// the camera's events topic, and prints what it got as JSON: the packet id, whether it was acknowledged, the
    /// messages received.
    static let pahoScript = #"""
    import json, sys, threading, time
    import paho.mqtt.client as mqtt
    host, port, user, password, camera, version = sys.argv[1:7]
    v5 = version == "5"
    c = mqtt.Client(client_id="paho-" + camera + "-" + version, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    connected, subscribed, received = threading.Event(), threading.Event(), threading.Event()
    messages, acks = [], []
    c.on_connect = lambda client, userdata, flags, rc, properties=None: connected.set()
    c.on_subscribe = lambda client, userdata, mid, granted, properties=None: subscribed.set()
    def on_message(client, userdata, msg):
        messages.append({"topic": msg.topic, "qos": msg.qos, "payload": json.loads(msg.payload)})
        received.set()
    c.on_message = on_message
    c.on_publish = lambda client, userdata, mid: acks.append(mid)
    c.connect(host, int(port), keepalive=20)
    c.loop_start()
    assert connected.wait(10), "no CONNACK"
    c.subscribe("speedflow/v1/rejections/" + camera, qos=1)
    assert subscribed.wait(10), "no SUBACK"
    info = c.publish("speedflow/v1/events/" + camera, sys.stdin.read(), qos=1)
    info.wait_for_publish(10)
    received.wait(10)
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"mid": info.mid, "acked": info.mid in acks, "messages": messages}))
    """#

    @Test("Paho (3.1.1 and 5): a subscriber to its camera's rejections topic gets the report of its PUBLISH, with the packet id, after which the PUBACK comes")
    func rejectionsTopic() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python),
            try await Self.run(Self.python, ["-c", "import paho.mqtt.client"]).status == 0
        else {
            Issue.record("python3-paho-mqtt is not installed (scripts/test installs it)")
            return
        }
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required", "--mqtt-port", "0"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let admin = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "admin"]) }
        let camera = try await offCooperativePool { try SpeedflowProcess.createToken(dataDir: data, ["--role", "camera", "--kvfv", "MQR"]) }
        try await server.start()
        let port = try await Self.mqttPort(server)
        // Not "paho.py": the script's own name would shadow the paho package.
        let script = server.directory.appendingPathComponent("rejections_client.py")
        try Data(Self.pahoScript.utf8).write(to: script)
        let base = Self.base()
        var stored: [Event] = []
        for (n, version) in ["3", "5"].enumerated() {
            let good = Self.events("MQR", count: 2, first: 10 * n, base: base)
            stored += good
            let foreign = Self.events("MQX", count: 1, first: n, base: base)[0]
            let payload = [good[0].json, foreign.json, "{\"kvfv_id\":\"MQR\",\"timestamp\":\"\(Timestamp.format(base))\",\"vehicle_speed\":0}", good[1].json]
                .joined(separator: "\n")
            let r = try await Self.run(
                Self.python, [script.path, "127.0.0.1", "\(port)", String(camera.split(separator: "_")[1]), camera, "MQR", version],
                stdin: Data(payload.utf8))
            #expect(r.status == 0, "\(r.output)")
            let out = Self.json(r.output.split(separator: "\n").last.map(String.init) ?? "")
            #expect(out["acked"] as? Bool == true, "\(r.output)")
            let messages = out["messages"] as? [[String: Any]] ?? []
            #expect(messages.count == 1, "\(r.output)")
            let report = messages.first?["payload"] as? [String: Any] ?? [:]
            #expect(messages.first?["topic"] as? String == "speedflow/v1/rejections/MQR")
            #expect(report["packet_id"] as? Int == out["mid"] as? Int && report["accepted"] as? Int == 2, "\(report)")
            let rejected = report["rejected"] as? [[String: Any]] ?? []
            #expect(rejected.map { $0["index"] as? Int } == [1, 2] && rejected.map { $0["reason"] as? String } == ["topic_mismatch", "speed_out_of_range"], "\(report)")
        }
        try await Self.expectWindows(server.url, camera: "MQR", from: base, truth: stored, token: admin)
    }

    @Test("kill -9 three times while batches are published with QoS 1 and retried until acknowledged: every acknowledged batch is there after each restart, and in the end every window is exact")
    func killMidStream() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--mqtt-port", "0"])
        defer { server.remove() }
        try await server.start()
        let base = Self.base()
        let dir = server.directory
        let batches = (0..<48).map { Self.events("MQK", count: 100, first: $0 * 100, base: base) }
        for (i, batch) in batches.enumerated() {
            try Data(batch.map { $0.json + "\n" }.joined().utf8).write(to: dir.appendingPathComponent("b\(i).ndjson"))
        }
        /// Batches acknowledged so far (the publisher task adds, the test reads).
        final class Acked: Sendable {
            let batches = Mutex<Set<Int>>([])
            /// Publishing attempts that failed (the server was being killed or restarted): retried.
            let failures = Mutex(0)
        }
        let acked = Acked()
        var kills = 0
        let logFile = server.logFile
        // Four publishers at once, so a kill finds PUBLISHes in flight; each retries its batch until acknowledged.
        let publishers = (0..<4).map { lane in
            Task {
                for i in stride(from: lane, to: batches.count, by: 4) {
                    var attempts = 0
                    while true {
                        attempts += 1
                        // The port of the run that is up now (a new one after every restart).
                        let log = (try? Data(contentsOf: logFile)).map { String(decoding: $0.suffix(1 << 20), as: UTF8.self) } ?? ""
                        if let port = Self.lastMQTTPort(log),
                            let r = try? await Self.run(Self.mosquittoPub, ["-h", "127.0.0.1", "-p", "\(port)", "-q", "1", "-t", "speedflow/v1/events/MQK", "-f", dir.appendingPathComponent("b\(i).ndjson").path], timeout: 10),
                            r.status == 0
                        {
                            break
                        }
                        acked.failures.withLock { $0 += 1 }
                        #expect(attempts < 200, "batch \(i) never acknowledged")
                        if attempts >= 200 { return }
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                    acked.batches.withLock { _ = $0.insert(i) }
                }
            }
        }
        for threshold in [10, 22, 34] {
            try await waitUntil("\(threshold) batches acknowledged", timeout: .seconds(300)) { acked.batches.withLock { $0.count } >= threshold }
            let before = acked.batches.withLock { $0 }
            server.kill9()
            kills += 1
            try await server.start()
            _ = try await Self.mqttPort(server)
            // Everything acknowledged before the kill is there (what was in flight may be too: counted once).
            let uri = "\(server.url)/kvfv/MQK/avg-speed?from=\(Timestamp.format(base))&to=\(Timestamp.format(base + 900_000))&interval=5m"
            let windows = Self.json(try await Self.get(uri).body)["windows"] as? [[String: Any]] ?? []
            let count = windows.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
            #expect(count >= before.count * 100 && count % 100 == 0, "after kill \(kills): \(count) events, \(before.count) batches acknowledged")
        }
        for publisher in publishers { await publisher.value }
        #expect(acked.batches.withLock { $0.count } == batches.count)
        print("MQTT kill -9 test: \(kills) kills, \(acked.failures.withLock { $0 }) failed attempts retried")
        try await Self.expectWindows(server.url, camera: "MQK", from: base, truth: batches.flatMap { $0 })
    }

    @Test("TLS with the HTTP certificate (mqtts): under mutual TLS with --auth required a camera certificate publishes for its camera without a password, attributed to the certificate; no client certificate, no connection")
    func mutualTLS() async throws {
        let pki = try await TLSTests.pki()
        defer { pki.remove() }
        try TLSTests.install("server", in: pki)
        let server = try SpeedflowProcess(extraArguments: TLSTests.tlsArguments(pki, clientCA: true, extra: ["--auth", "required", "--mqtt-port", "0"]))
        defer { server.remove() }
        try await server.start()
        #expect(server.logTail(1 << 16).contains("speedflow MQTT listening on mqtts://127.0.0.1:"))
        let port = try await Self.mqttPort(server)
        let event = Self.events("KV00001", count: 1, first: 0, base: Self.base())[0]
        let tls = ["--cafile", pki.certificate("ca")]
        let camera = tls + ["--cert", pki.certificate("camera"), "--key", pki.key("camera")]
        for version in ["mqttv311", "mqttv5"] {
            let r = try await Self.publish(port: port, camera + ["-V", version, "-q", "1", "-t", "speedflow/v1/events/KV00001", "-m", event.json])
            #expect(r.status == 0, "\(version): \(r.output)")
        }
        let refused = try await Self.publish(port: port, tls + ["-q", "1", "-t", "speedflow/v1/events/KV00001", "-m", event.json])
        #expect(refused.status != 0, "\(refused.output)")
        server.stop()
        let data = server.dataDirectory.path
        let writes = try await offCooperativePool { try SpeedflowProcess.run(["log", "writes", "--data-dir", data]) }
        #expect(writes.output.contains("cert:"), "\(writes.output)")
    }
}
