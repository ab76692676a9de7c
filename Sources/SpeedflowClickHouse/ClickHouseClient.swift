import AsyncHTTPClient
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Where the data lives: shards (data split by camera) of replicas (copies of one shard).
///
/// Written as `--clickhouse-url "http://a:8123,http://b:8123;http://c:8123,http://d:8123"`: shards separated
/// by `;`, a shard's replicas by `,`. One URL is a single node.
public struct ClickHouseTopology: Sendable, CustomStringConvertible {
    public var shards: [[String]]

    public init(shards: [[String]]) { self.shards = shards }

    public init(parsing spec: String) throws(ClickHouseError) {
        let shards = spec.split(separator: ";").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        }.filter { !$0.isEmpty }
        guard !shards.isEmpty else { throw ClickHouseError(kind: .configuration, message: "no ClickHouse URL in '\(spec)'") }
        for url in shards.joined() where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ClickHouseError(kind: .configuration, message: "'\(url)' is not an http(s) URL of ClickHouse's HTTP interface")
        }
        // Credentials in a URL end up in logs and `ps`: they go in --clickhouse-user / the password file.
        for url in shards.joined() where URLComponents(string: url)?.user != nil || URLComponents(string: url)?.password != nil {
            throw ClickHouseError(
                kind: .configuration,
                message: "a ClickHouse URL must not hold credentials; use --clickhouse-user and SPEEDFLOW_CLICKHOUSE_PASSWORD or --clickhouse-password-file")
        }
        self.shards = shards
    }

    /// Replicated tables (ZooKeeper) as soon as any shard has more than one replica.
    public var isReplicated: Bool { shards.contains { $0.count > 1 } }

    /// The shard holding a camera: a stable hash (FNV-1a 64) of its id, so every process agrees.
    public func shard(of kvfvId: String) -> Int {
        guard shards.count > 1 else { return 0 }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in kvfvId.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return Int(h % UInt64(shards.count))
    }

    public var description: String { shards.map { $0.joined(separator: ",") }.joined(separator: ";") }
}

public struct ClickHouseError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case configuration, unreachable, server, format }
    public var kind: Kind
    public var message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A ClickHouse user and its password, sent as HTTP basic authentication (never in a URL, never logged).
public struct ClickHouseCredentials: Sendable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }

    var authorization: String { "Basic " + Data("\(user):\(password)".utf8).base64EncodedString() }
}

/// ClickHouse's HTTP interface over AsyncHTTPClient, with per-shard replica failover. `https://` URLs are
/// verified against the system's trust store.
///
/// Blocking callers (the engine's flusher and commit threads) wait on the future; async callers await it.
/// Neither runs on an event loop.
public final class ClickHouseClient: Sendable {
    public let topology: ClickHouseTopology
    let http: HTTPClient
    let logger: Logger
    /// Per shard, the replica that answered last: tried first next time, so reads follow writes.
    private let preferred: Mutex<[Int]>
    /// Nodes that failed recently, and until when they are skipped.
    private let downUntil = Mutex<[String: DispatchTime]>([:])

    let authorization: String?
    /// Set when `SPEEDFLOW_CLICKHOUSE_RECORD` names a file (tests; see `StatementRecorder`).
    private let recorder = StatementRecorder.shared

    public init(topology: ClickHouseTopology, credentials: ClickHouseCredentials? = nil, logger: Logger) {
        self.topology = topology
        self.logger = logger
        self.authorization = credentials?.authorization
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(2), read: .seconds(60))
        // Shorter than the server's keep_alive_timeout (3 s by default, 10 s in scripts/clickhouse), so a pooled
        // connection is never one the server is just closing (a POST on it would fail and not be retried).
        config.connectionPool = .init(idleTimeout: .seconds(2))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.preferred = Mutex(Array(repeating: 0, count: topology.shards.count))
    }

    private let isShutDown = Mutex(false)

    public func shutdown() {
        guard !isShutDown.withLock({ s in defer { s = true }; return s }) else { return }
        try? http.syncShutdown()
    }

    deinit { shutdown() }

    /// Runs `sql` on one node; with `body`, the SQL goes in the URL and the body is the data (INSERT).
    func execute(
        node: String, sql: String, body: [UInt8]? = nil, settings: [String: String] = [:], timeout: TimeAmount = .seconds(30)
    ) -> EventLoopFuture<[UInt8]> {
        var components = URLComponents(string: node + "/")!
        // Settings go in the URL: 18.16 has no SETTINGS clause for INSERT.
        var items = [URLQueryItem(name: "database", value: "default")]
            + settings.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        var request: HTTPClient.Request
        do {
            if let body {
                items.append(URLQueryItem(name: "query", value: sql))
                components.queryItems = items
                request = try HTTPClient.Request(
                    url: components.url!.absoluteString, method: .POST, body: .byteBuffer(ByteBuffer(bytes: body)))
            } else {
                components.queryItems = items
                request = try HTTPClient.Request(
                    url: components.url!.absoluteString, method: .POST, body: .string(sql))
            }
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        } catch {
            return http.eventLoopGroup.any().makeFailedFuture(ClickHouseError(kind: .configuration, message: "\(error)"))
        }
        let started = recorder?.begin()
        let answer: EventLoopFuture<[UInt8]> = http.execute(request: request, deadline: .now() + timeout).flatMapThrowing { response in
            let bytes = response.body.map { Array($0.readableBytesView) } ?? []
            guard response.status == .ok else {
                let text = String(decoding: bytes.prefix(2000), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw ClickHouseError(kind: .server, message: "\(node): HTTP \(response.status.code): \(text)")
            }
            return bytes
        }.flatMapErrorThrowing { error in
            if let e = error as? ClickHouseError { throw e }
            throw ClickHouseError(kind: .unreachable, message: "\(node): \(error)")
        }
        if let recorder, let started {
            // Registered before the caller's callbacks, so the line is written before the caller goes on.
            answer.whenComplete { result in
                recorder.record(started: started, node: node, sql: sql, settings: settings, body: body, result: result)
            }
        }
        return answer
    }

    /// `execute`, blocking the calling thread (never an event loop) until the answer or `timeout` + 1 s.
    ///
    /// A node that failed is skipped for 5 s: a request to a `kill -9`'d replica was seen to take its whole
    /// timeout, and dedup reads ask every replica, so without this each late event would stall the commit
    /// thread that long. The semaphore's deadline bounds the wait whatever the HTTP client does.
    public func call(
        node: String, sql: String, body: [UInt8]? = nil, settings: [String: String] = [:], timeout: TimeAmount = .seconds(30)
    ) throws -> [UInt8] {
        try checkNotMarkedDown(node)
        do {
            return noteAnswer(from: node, try callOnce(node: node, sql: sql, body: body, settings: settings, timeout: timeout))
        } catch {
            noteFailure(of: node, error)
            throw error
        }
    }

    /// `call` for async callers (queries on the cooperative pool): the same skipping of failed nodes.
    public func callAsync(node: String, sql: String, timeout: TimeAmount = .seconds(30)) async throws -> [UInt8] {
        try checkNotMarkedDown(node)
        do {
            return noteAnswer(from: node, try await execute(node: node, sql: sql, timeout: timeout).get())
        } catch {
            noteFailure(of: node, error)
            throw error
        }
    }

    private func checkNotMarkedDown(_ node: String) throws {
        if let until = downUntil.withLock({ $0[node] }), DispatchTime.now() < until {
            throw ClickHouseError(kind: .unreachable, message: "\(node): marked down after a recent failure")
        }
    }

    private func noteAnswer(from node: String, _ answer: [UInt8]) -> [UInt8] {
        downUntil.withLock { _ = $0.removeValue(forKey: node) }
        return answer
    }

    private func noteFailure(of node: String, _ error: any Error) {
        guard let error = error as? ClickHouseError, error.kind == .unreachable else { return }
        downUntil.withLock { $0[node] = DispatchTime.now() + .seconds(5) }
    }

    private func callOnce(
        node: String, sql: String, body: [UInt8]?, settings: [String: String], timeout: TimeAmount
    ) throws -> [UInt8] {
        let answer = Answer()
        execute(node: node, sql: sql, body: body, settings: settings, timeout: timeout).whenComplete { result in
            answer.result.withLock { $0 = result }
            answer.ready.signal()
        }
        let started = DispatchTime.now()
        let limit = started + .nanoseconds(Int(timeout.nanoseconds)) + .seconds(1)
        let answered = answer.ready.wait(timeout: limit) == .success
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        if seconds > 2 {
            logger.warning("Slow ClickHouse call", metadata: [
                "node": "\(node)", "seconds": "\((seconds * 10).rounded() / 10)", "sql": "\(sql.prefix(80))"])
        }
        guard answered, let result = answer.result.withLock({ $0 }) else {
            throw ClickHouseError(kind: .unreachable, message: "\(node): no answer within \(timeout)")
        }
        return try result.get()
    }

    /// Runs on the shard's preferred replica, failing over to the others in turn.
    public func run(
        shard: Int, sql: String, body: [UInt8]? = nil, settings: [String: String] = [:], timeout: TimeAmount = .seconds(30)
    ) throws -> [UInt8] {
        var failover = Failover(client: self, shard: shard)
        while let node = failover.next() {
            do {
                return failover.answered(try call(node: node, sql: sql, body: body, settings: settings, timeout: timeout))
            } catch {
                failover.failed(error)
            }
        }
        throw failover.lastError!
    }

    /// Async form of `run`, for queries on the cooperative pool.
    public func query(shard: Int, sql: String, timeout: TimeAmount = .seconds(30)) async throws -> [UInt8] {
        var failover = Failover(client: self, shard: shard)
        while let node = failover.next() {
            do {
                return failover.answered(try await callAsync(node: node, sql: sql, timeout: timeout))
            } catch {
                failover.failed(error)
            }
        }
        throw failover.lastError!
    }

    /// The one failover policy of `run` and `query`: the replica that answered last is tried first (so reads
    /// follow writes), then the others in turn; the one that answers becomes the shard's preferred replica.
    private struct Failover {
        let client: ClickHouseClient
        let shard: Int
        let replicas: [String]
        let first: Int
        var attempt = -1
        var lastError: (any Error)?

        init(client: ClickHouseClient, shard: Int) {
            self.client = client
            self.shard = shard
            self.replicas = client.topology.shards[shard]
            self.first = client.preferred.withLock { $0[shard] }
        }

        var replica: Int { (first + attempt) % replicas.count }

        mutating func next() -> String? {
            attempt += 1
            return attempt < replicas.count ? replicas[replica] : nil
        }

        func answered(_ answer: [UInt8]) -> [UInt8] {
            if attempt > 0 {
                client.preferred.withLock { [replica, shard] in $0[shard] = replica }
                client.logger.warning("ClickHouse failover", metadata: ["shard": "\(shard + 1)", "replica": "\(replicas[replica])"])
            }
            return answer
        }

        mutating func failed(_ error: any Error) { lastError = error }
    }

    /// Runs on every replica of every shard (DDL); returns the nodes that failed.
    public func runEverywhere(_ sql: String) -> [(node: String, error: any Error)] {
        var failures: [(String, any Error)] = []
        for node in topology.shards.joined() {
            do {
                _ = try call(node: node, sql: sql)
            } catch {
                failures.append((node, error))
            }
        }
        return failures
    }
}

/// A string literal for ClickHouse SQL (18.16 has no query parameters).
func sqlString(_ s: String) -> String {
    var out = "'"
    for ch in s.unicodeScalars {
        switch ch {
        case "\\": out += "\\\\"
        case "'": out += "\\'"
        case "\0": out += "\\0"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default: out.unicodeScalars.append(ch)
        }
    }
    return out + "'"
}

/// A blocking caller's mailbox for one answer.
final class Answer: Sendable {
    let result = Mutex<Result<[UInt8], any Error>?>(nil)
    let ready = DispatchSemaphore(value: 0)
}
