import Foundation
import AsyncHTTPClient
import NIOCore
import NIOPosix
import Synchronization

/// How a worker puts a `POST /events` on the wire. Over HTTP two implementations, so the cost of the client
/// itself can be told apart from the server's: `raw` (default) and `asyncHTTPClient`; over MQTT
/// `MQTTEventTransport` (the same body as a PUBLISH to the camera's topic).
protocol EventTransport: AnyObject {
    /// `authorization`: the whole `Authorization` header value (`Bearer sft_…`), if any; `camera`: the camera the
    /// events are for (MQTT's topic names it; HTTP does not need it).
    func post(body: ByteBuffer, contentType: String, authorization: String?, camera: String, timeout: Duration) async throws(TransportError) -> TransportResponse
    func shutdown() async
}

struct TransportResponse: Sendable {
    var status: Int
    var retryAfter: String?
    var body: ByteBuffer
    /// A `200` without counts (an MQTT PUBACK with no rejections report): nothing was rejected, and how many
    /// events were new or duplicates is inferred from what was sent.
    var countsInferred = false
}

/// A failed exchange; the server may or may not have received the request.
struct TransportError: Error, Sendable {
    enum Kind: String, Sendable { case timeout, connection, malformed }
    var kind: Kind
    var detail: String
}

/// AsyncHTTPClient with its connection pool: the general-purpose client.
final class AsyncHTTPClientTransport: EventTransport {
    private let client: HTTPClient
    private let url: String

    init(client: HTTPClient, baseURL: String) {
        self.client = client
        self.url = baseURL + "/events"
    }

    func post(body: ByteBuffer, contentType: String, authorization: String?, camera: String, timeout: Duration) async throws(TransportError) -> TransportResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(body)
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            let answer = try await response.body.collect(upTo: 16 << 20)
            return TransportResponse(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"), body: answer)
        } catch let error as HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout:
                throw TransportError(kind: .timeout, detail: "\(error)")
            default:
                throw TransportError(kind: .connection, detail: "\(error)")
            }
        } catch {
            throw TransportError(kind: .connection, detail: "\(error)")
        }
    }

    func shutdown() async {}
}

/// One keep-alive HTTP/1.1 connection with the request pre-encoded and only the status line,
/// `Content-Length` and `Retry-After` read back: the cheapest client that still speaks real HTTP over
/// TCP, so that on a shared 2-core machine the server, not the load generator, gets the CPU.
/// Used by one worker at a time (one request in flight per connection, like a camera's uplink).
final class RawHTTPTransport: EventTransport {
    private let host: String
    private let port: Int
    private let hostHeader: String
    private let group: any EventLoopGroup
    private var channel: (any Channel)?

    init(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.hostHeader = "\(host):\(port)"
        self.group = group
    }

    /// Splits `http://host:port` (no path, no TLS: the load generator runs on loopback).
    static func endpoint(of url: String) -> (host: String, port: Int)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        if let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]) {
            return (String(rest[..<colon]).trimmingCharacters(in: ["[", "]"]), port)
        }
        return rest.isEmpty ? nil : (rest, 80)
    }

    func post(body: ByteBuffer, contentType: String, authorization: String?, camera: String, timeout: Duration) async throws(TransportError) -> TransportResponse {
        let started = ContinuousClock.now
        let channel: any Channel
        do {
            channel = try await connection()
        } catch {
            throw TransportError(kind: .connection, detail: "connect to \(hostHeader): \(error)")
        }
        var wire = channel.allocator.buffer(capacity: body.readableBytes + 160)
        wire.writeString("POST /events HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Type: \(contentType)\r\n")
        if let authorization { wire.writeString("Authorization: \(authorization)\r\n") }
        wire.writeString("Content-Length: \(body.readableBytes)\r\n\r\n")
        var payload = body
        wire.writeBuffer(&payload)
        let promise = channel.eventLoop.makePromise(of: TransportResponse.self)
        let remaining = timeout - (ContinuousClock.now - started)
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(max(remaining.nanoseconds, 1))) {
            // Closing fails the pending exchange; the caller sees it as a timeout by the clock.
            channel.close(promise: nil)
        }
        // A write on a connection that just closed never reaches the reader: fail the exchange then
        // (completing an already completed promise is a no-op in NIO).
        // Cancel the timer on the event loop the moment the answer is complete, so it cannot fire
        // between the answer and this task resuming and kill a healthy keep-alive connection.
        promise.futureResult.whenComplete { _ in timer.cancel() }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { promise.fail($0) }
        channel.writeAndFlush(Exchange(bytes: wire, promise: promise), promise: written)
        do {
            return try await promise.futureResult.get()
        } catch {
            self.channel = nil
            channel.close(promise: nil)
            if ContinuousClock.now - started >= timeout {
                throw TransportError(kind: .timeout, detail: "no answer within \(timeout)")
            }
            if let e = error as? TransportError { throw e }
            throw TransportError(kind: .connection, detail: "\(error)")
        }
    }

    private func connection() async throws -> any Channel {
        if let channel, channel.isActive { return channel }
        channel = nil
        let fresh = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ExchangeHandler())
                }
            }
            .connect(host: host, port: port).get()
        channel = fresh
        return fresh
    }

    func shutdown() async {
        if let channel { try? await channel.close() }
        channel = nil
    }
}

/// A request and the promise its answer completes.
private struct Exchange: Sendable {
    var bytes: ByteBuffer
    var promise: EventLoopPromise<TransportResponse>
}

/// Writes one request, reads one response (status line, `Content-Length`, `Retry-After`, body), repeat.
private final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Exchange
    typealias OutboundOut = ByteBuffer

    private var pending: EventLoopPromise<TransportResponse>?
    private var received: ByteBuffer?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard pending == nil else {
            exchange.promise.fail(TransportError(kind: .connection, detail: "a request is already in flight on this connection"))
            return
        }
        pending = exchange.promise
        context.write(wrapOutboundOut(exchange.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received!.writeBuffer(&incoming)
        }
        do {
            try completeIfWhole(context: context)
        } catch {
            fail(error)
            context.close(promise: nil)
        }
    }

    /// Parses the head byte by byte (no String work: this runs for every answer at >10k/s).
    private func completeIfWhole(context: ChannelHandlerContext) throws {
        guard let buffer = received else { return }
        let head: Head? = try buffer.withUnsafeReadableBytes { bytes throws(TransportError) -> Head? in
            try Self.parseHead(bytes)
        }
        guard let head else {
            if buffer.readableBytes > 64 << 10 { throw TransportError(kind: .malformed, detail: "response head over 64 KiB") }
            return
        }
        guard buffer.readableBytes >= head.length + head.contentLength else { return }
        let body = buffer.getSlice(at: buffer.readerIndex + head.length, length: head.contentLength)!
        var rest = buffer
        rest.moveReaderIndex(forwardBy: head.length + head.contentLength)
        received = rest.readableBytes > 0 ? rest : nil
        let promise = pending
        pending = nil
        promise?.succeed(TransportResponse(status: head.status, retryAfter: head.retryAfter, body: body))
        if head.close { context.close(promise: nil) }
    }

    private struct Head {
        var length: Int
        var status: Int
        var contentLength: Int
        var retryAfter: String?
        var close: Bool
    }

    /// nil until the blank line ending the head has arrived.
    private static func parseHead(_ b: UnsafeRawBufferPointer) throws(TransportError) -> Head? {
        let n = b.count
        var end = -1
        var i = 3
        while i < n {
            if b[i] == 10, b[i - 1] == 13, b[i - 2] == 10, b[i - 3] == 13 { end = i + 1; break }
            i += 1
        }
        guard end > 0 else { return nil }
        // "HTTP/1.x NNN ..."
        guard end > 12, b[0] == UInt8(ascii: "H"), b[8] == UInt8(ascii: " ") else {
            throw TransportError(kind: .malformed, detail: "bad status line")
        }
        var status = 0
        for k in 9..<12 {
            let c = b[k]
            guard c >= 48, c <= 57 else { throw TransportError(kind: .malformed, detail: "bad status code") }
            status = status * 10 + Int(c - 48)
        }
        var head = Head(length: end, status: status, contentLength: -1, retryAfter: nil, close: false)
        // Header lines: name is matched case-insensitively by lowercasing ASCII letters on the fly.
        var lineStart = 0
        while lineStart < end, b[lineStart] != 10 { lineStart += 1 }
        lineStart += 1
        while lineStart < end - 2 {
            var lineEnd = lineStart
            while lineEnd < end, b[lineEnd] != 13 { lineEnd += 1 }
            var colon = lineStart
            while colon < lineEnd, b[colon] != UInt8(ascii: ":") { colon += 1 }
            if colon < lineEnd {
                var valueStart = colon + 1
                while valueStart < lineEnd, b[valueStart] == 32 || b[valueStart] == 9 { valueStart += 1 }
                func nameIs(_ name: StaticString) -> Bool {
                    guard colon - lineStart == name.utf8CodeUnitCount else { return false }
                    let p = name.utf8Start
                    for k in 0..<name.utf8CodeUnitCount where b[lineStart + k] | 0x20 != p[k] { return false }
                    return true
                }
                if nameIs("content-length") {
                    var v = 0
                    for k in valueStart..<lineEnd where b[k] >= 48 && b[k] <= 57 { v = v * 10 + Int(b[k] - 48) }
                    head.contentLength = v
                } else if nameIs("retry-after") {
                    head.retryAfter = String(decoding: UnsafeRawBufferPointer(rebasing: b[valueStart..<lineEnd]), as: UTF8.self)
                } else if nameIs("connection") {
                    head.close = lineEnd - valueStart == 5 && (b[valueStart] | 0x20) == UInt8(ascii: "c")
                } else if nameIs("transfer-encoding") {
                    throw TransportError(kind: .malformed, detail: "chunked answers are not supported by the raw client")
                }
            }
            lineStart = lineEnd + 2
        }
        guard head.contentLength >= 0 else { throw TransportError(kind: .malformed, detail: "no Content-Length") }
        return head
    }

    private func fail(_ error: any Error) {
        let promise = pending
        pending = nil
        promise?.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(TransportError(kind: .connection, detail: "connection closed before the answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(TransportError(kind: .connection, detail: "\(error)"))
        context.close(promise: nil)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
