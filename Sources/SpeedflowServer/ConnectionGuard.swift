import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import Synchronization

/// What a connection may cost the server, so slow, idle and excess clients cannot starve real cameras: a request
/// head must arrive within `headerTimeoutMs` of its first byte, a body at an average rate (after a grace period),
/// at most `maxConnections` are open at once, and no socket outlives its request (see `ConnectionGuard`).
public struct ConnectionLimits: Sendable, Equatable {
    /// From a request's first byte to the end of its head. A head is one or two TCP segments (< 1 KB from a
    /// camera); on a 2G/3G link with 0.5–1 s round trips it arrives in 1–2 s, and 10 s still leaves room for
    /// two retransmissions with backoff (1 s + 2 s + 4 s). A client that trickles a head byte by byte is closed
    /// when it passes. Default: 10 s.
    public var headerTimeoutMs: Int64
    /// How long a body may take before the rate below is required of it: the radio waking up, a handover, TCP
    /// slow start. Default: 30 s.
    public var bodyGraceMs: Int64
    /// The slowest average body rate kept, bytes per second after the grace period (0: no body deadline). At
    /// 4 KiB/s (32 kbit/s, a GPRS-class uplink) a 64 MiB backlog batch may take up to 4.6 hours; a 10 MB gzip
    /// batch 42 minutes. Holding a connection therefore costs a client real bandwidth, never 1 byte a second.
    /// Default: 4096.
    public var bodyMinBytesPerSecond: Int
    /// Open connections beyond which a new one is answered `503 too_many_connections` and closed. Well below
    /// the usual 20,000 file descriptors, leaving room for the log, the store and outgoing connections; raised
    /// toward the hard `ulimit -n` at start, lowered to fit it when it cannot be (see `ConnectionGuard`).
    /// Default: 10,000.
    public var maxConnections: Int
    /// After its last answer, a connection closing (an error such as a header too large, `Connection: close`,
    /// a timeout) stops sending, reads and discards what the client still sends, and is closed when the client
    /// closes or after this long. Discarding instead of closing at once keeps the kernel from resetting the
    /// connection (which could destroy the answer before the client reads it); the bound keeps the socket from
    /// being held. Default: 2 s.
    public var lingerMs: Int64

    public init(
        headerTimeoutMs: Int64 = 10_000, bodyGraceMs: Int64 = 30_000, bodyMinBytesPerSecond: Int = 4096,
        maxConnections: Int = 10_000, lingerMs: Int64 = 2_000
    ) {
        self.headerTimeoutMs = headerTimeoutMs
        self.bodyGraceMs = bodyGraceMs
        self.bodyMinBytesPerSecond = bodyMinBytesPerSecond
        self.maxConnections = maxConnections
        self.lingerMs = lingerMs
    }
}

/// The guard every HTTP connection passes: counts open connections (one atomic shared by every event loop),
/// refuses those beyond the limit, and gives each accepted connection a `ConnectionClock` that closes it when
/// its head or body is too slow or once it has nothing more to answer.
public final class ConnectionGuard: Sendable {
    public let limits: ConnectionLimits
    let logger: Logger
    /// Connections being served (refused ones are not counted).
    let open = Atomic<Int>(0)
    /// Refused connections still lingering (sending their 503); beyond `maxRefusing` they are closed at once.
    let refusing = Atomic<Int>(0)
    static let maxRefusing = 256
    let refusedLog = LogThrottle(intervalMs: 10_000)
    let timeoutLog = LogThrottle(intervalMs: 10_000)

    let openGauge = Gauge(label: "speedflow_http_connections_open")
    let refusedCounter = Counter(label: "speedflow_http_connections_refused_total")
    let headerTimeouts = Counter(label: "speedflow_http_connections_closed_total", dimensions: [("reason", "header_timeout")])
    let bodyTimeouts = Counter(label: "speedflow_http_connections_closed_total", dimensions: [("reason", "body_timeout")])

    public init(limits: ConnectionLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    let refusedTotal = Atomic<Int>(0)
    let timedOutTotal = Atomic<Int>(0)

    /// Connections being served now.
    public var openConnections: Int { open.load(ordering: .relaxed) }
    /// Connections refused for the limit since start (also `speedflow_http_connections_refused_total`).
    public var refusedConnections: Int { refusedTotal.load(ordering: .relaxed) }
    /// Connections closed for a late head or a slow body since start.
    public var timedOutConnections: Int { timedOutTotal.load(ordering: .relaxed) }

    /// `true` when the connection may be served (counted until it closes); `false`: refuse it.
    func admit(_ channel: any Channel) -> Bool {
        let n = open.add(1, ordering: .relaxed).newValue
        guard n <= limits.maxConnections else {
            open.subtract(1, ordering: .relaxed)
            refusedCounter.increment()
            refusedTotal.add(1, ordering: .relaxed)
            refusedLog.note { suppressed in
                logger.warning(
                    "Refusing connections: too many open",
                    metadata: [
                        "http.connections.max": "\(limits.maxConnections)",
                        "http.connections.refused": "\(suppressed)",
                    ])
            }
            return false
        }
        openGauge.record(n)
        channel.closeFuture.whenComplete { [self] _ in
            let left = open.subtract(1, ordering: .relaxed).newValue
            openGauge.record(left)
        }
        return true
    }

    func timedOut(_ what: String, counter: Counter) {
        counter.increment()
        timedOutTotal.add(1, ordering: .relaxed)
        timeoutLog.note { n in
            logger.info(
                "Closed slow connections", metadata: ["http.timeout": "\(what)", "http.connections.closed": "\(n)"])
        }
    }

    /// Raises the soft file-descriptor limit toward the hard one if `maxConnections` needs it, and returns the
    /// limits to serve with: `maxConnections` lowered to fit what the process may open (leaving 10% and at
    /// least 256 descriptors for the log, the store and outgoing connections), with a warning, when it cannot.
    public static func fitting(_ limits: ConnectionLimits, logger: Logger) -> ConnectionLimits {
        #if canImport(Glibc)
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return limits }
        // Descriptors kept for everything but client connections: 10% of those, at least 256.
        func reserve(_ connections: Int) -> Int { max(256, connections / 10) }
        let wanted = rlim_t(limits.maxConnections + reserve(limits.maxConnections))
        if rl.rlim_cur < wanted {
            var raised = rl
            raised.rlim_cur = min(wanted, rl.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { rl = raised }
        }
        let soft = Int(clamping: rl.rlim_cur)
        let fit = soft - reserve(min(limits.maxConnections, soft))
        guard fit < limits.maxConnections else { return limits }
        var lowered = limits
        lowered.maxConnections = max(1, fit)
        logger.warning(
            "max_connections lowered to fit the file descriptor limit (ulimit -n)",
            metadata: [
                "http.connections.max": "\(lowered.maxConnections)", "http.connections.asked": "\(limits.maxConnections)",
                "process.fd_limit": "\(soft)",
            ])
        return lowered
        #else
        return limits
        #endif
    }

    /// An answer written straight to the socket (no request may have been parsed), then the connection closes.
    static func rawResponse(status: String, reason: String, message: String, retryAfter: Int? = nil) -> ByteBuffer {
        var json = JSONWriter()
        json.raw("{\"reason\":")
        json.string(reason)
        json.raw(",\"message\":")
        json.string(message)
        json.raw("}")
        var head = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nContent-Length: \(json.bytes.count)\r\n"
        head += "Connection: close\r\n"
        if let retryAfter { head += "Retry-After: \(retryAfter)\r\n" }
        var fields = HTTPFields()
        SecurityHeaders.add(to: &fields)
        for f in fields { head += "\(f.name.rawName): \(f.value)\r\n" }
        head += "\r\n"
        var buffer = ByteBuffer(string: head)
        buffer.writeBytes(json.bytes)
        return buffer
    }
}

/// Logs at most once per interval, saying how many events it stood for (a flood of refused connections is one
/// line every 10 s, not one per connection).
final class LogThrottle: Sendable {
    let intervalMs: Int64
    let state = Mutex<(lastMs: Int64, count: Int)>((Int64.min / 2, 0))

    init(intervalMs: Int64) { self.intervalMs = intervalMs }

    func note(_ log: (Int) -> Void) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let due: Int? = state.withLock { s in
            s.count += 1
            guard now - s.lastMs >= intervalMs else { return nil }
            let n = s.count
            s = (now, 0)
            return n
        }
        if let due { log(due) }
    }
}

/// A `ServerChildChannel` behind the `ConnectionGuard`: the connection limit, then `base`'s pipeline with a
/// `ConnectionClock` around its HTTP decoder. Composes with other wrappers (e.g. TLS, which adds its handler
/// in front of everything this adds).
public struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    public enum Value: ServerChildChannelValue {
        case served(Base.Value)
        /// Beyond the limit: answered 503 and closing.
        case refused(any Channel)

        public var channel: any Channel {
            switch self {
            case .served(let v): v.channel
            case .refused(let c): c
            }
        }
    }

    public let base: Base
    public let connectionGuard: ConnectionGuard

    public init(base: Base, guard connectionGuard: ConnectionGuard) {
        self.base = base
        self.connectionGuard = connectionGuard
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let g = connectionGuard
        guard g.admit(channel) else {
            return channel.eventLoop.makeCompletedFuture {
                let lingering = g.refusing.add(1, ordering: .relaxed).newValue <= ConnectionGuard.maxRefusing
                channel.closeFuture.whenComplete { _ in g.refusing.subtract(1, ordering: .relaxed) }
                try channel.pipeline.syncOperations.addHandler(
                    RefusingHandler(limits: g.limits, linger: lingering))
                return Value.refused(channel)
            }
        }
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let clock = ConnectionClock(guard: g)
            let ops = channel.pipeline.syncOperations
            // First: raw bytes. A TLS wrapper around this one adds its handler in front afterwards, so these
            // are the decrypted bytes and the guard's own answers are encrypted too.
            try ops.addHandler(BytesHandler(clock: clock), position: .first)
            // Right after the HTTP decoding, before Hummingbird's own connection state handler.
            let stateHandler = try ops.handler(type: HTTPConnectionStateHandler.self)
            try ops.addHandler(PartsHandler(clock: clock), position: .before(stateHandler))
            return Value.served(value)
        }
    }

    public func handle(value: Value, logger: Logger) async {
        switch value {
        case .served(let v): await base.handle(value: v, logger: logger)
        case .refused(let c): try? await c.closeFuture.get()
        }
    }
}

/// One connection's timing, on its event loop: `bytes` sees raw bytes (the first byte of a head, a body's
/// progress), `parts` sees what the HTTP decoder made of them (head complete, end) and the answers written.
/// Both hold this object; neither leaves the event loop.
final class ConnectionClock {
    enum Phase {
        /// No byte of a next request yet (Hummingbird's idle timeout applies).
        case between
        /// Reading a head whose first byte came at `since`.
        case head(since: NIODeadline)
        /// Reading a body since `since`, `base` bytes into the connection then.
        case body(since: NIODeadline, base: Int)
        /// Answered and closing: incoming bytes are discarded until the client closes or `lingerMs` passes.
        case lingering
    }

    let connectionGuard: ConnectionGuard
    var limits: ConnectionLimits { connectionGuard.limits }
    var phase = Phase.between
    var bytesRead = 0
    var inputClosed = false
    /// The output is shut down: every answer byte was handed to the kernel.
    var outputShut = false
    /// Heads read, answers begun and answers finished: an answer of our own fits in only when they agree.
    var requestsRead = 0
    var answersStarted = 0
    var answersFinished = 0
    var timer: Scheduled<Void>?
    /// Set while `BytesHandler` is in the pipeline (the cycle context → handler → clock → context is broken
    /// when the channel closes and NIO removes its handlers).
    var bytesContext: ChannelHandlerContext?

    init(guard connectionGuard: ConnectionGuard) { self.connectionGuard = connectionGuard }

    func schedule(at deadline: NIODeadline) {
        timer?.cancel()
        guard let context = bytesContext else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            check()
        }
    }

    func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    func firstByte() {
        phase = .head(since: .now())
        schedule(at: .now() + .milliseconds(limits.headerTimeoutMs))
    }

    func headComplete() {
        requestsRead += 1
        if case .lingering = phase { return }
        phase = .body(since: .now(), base: bytesRead)
        scheduleBodyCheck()
    }

    func scheduleBodyCheck() {
        guard limits.bodyMinBytesPerSecond > 0, case .body(let since, let base) = phase else {
            cancelTimer()
            return
        }
        let allowedMs = limits.bodyGraceMs + Int64((bytesRead - base) * 1000 / limits.bodyMinBytesPerSecond)
        schedule(at: since + .milliseconds(allowedMs))
    }

    func requestEnd() {
        if case .lingering = phase { return }
        phase = .between
        cancelTimer()
    }

    /// A timer fired: close the connection if its head or body is overdue, else look again when it would be.
    func check() {
        let now = NIODeadline.now()
        switch phase {
        case .between, .lingering:
            return
        case .head(let since):
            guard now >= since + .milliseconds(limits.headerTimeoutMs) else {
                schedule(at: since + .milliseconds(limits.headerTimeoutMs))
                return
            }
            connectionGuard.timedOut("header", counter: connectionGuard.headerTimeouts)
            let clean = answersStarted == answersFinished && answersFinished == requestsRead
            close(
                answer: clean ? ConnectionGuard.rawResponse(
                    status: "408 Request Timeout", reason: "request_timeout",
                    message: "the request head was not complete within \(limits.headerTimeoutMs) ms of its first byte")
                    : nil)
        case .body(let since, let base):
            let allowedMs = limits.bodyGraceMs + Int64((bytesRead - base) * 1000 / max(1, limits.bodyMinBytesPerSecond))
            guard now >= since + .milliseconds(allowedMs) else {
                scheduleBodyCheck()
                return
            }
            connectionGuard.timedOut("body", counter: connectionGuard.bodyTimeouts)
            let clean = answersStarted == answersFinished && answersFinished == requestsRead - 1
            close(
                answer: clean ? ConnectionGuard.rawResponse(
                    status: "408 Request Timeout", reason: "request_timeout",
                    message: "the request body arrived slower than \(limits.bodyMinBytesPerSecond) bytes/s "
                        + "on average after \(limits.bodyGraceMs) ms")
                    : nil)
        }
    }

    /// Answers (when an answer fits between the others) and closes: output now, input after lingering.
    func close(answer: ByteBuffer?) {
        guard let context = bytesContext else { return }
        if let answer { context.writeAndFlush(NIOAny(answer), promise: nil) }
        let shutdown = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: shutdown)
        startLingering(context, shutdown: shutdown.futureResult)
    }

    /// From now on what arrives is discarded; once the output is shut down (NIO does that after the pending
    /// writes are flushed, so a large last answer is never cut) the connection closes when the client closes
    /// its side, or after `lingerMs`.
    func startLingering(_ context: ChannelHandlerContext, shutdown: EventLoopFuture<Void>) {
        if case .lingering = phase { return }
        phase = .lingering
        cancelTimer()
        context.read()
        shutdown.assumeIsolated().whenComplete { [self] _ in
            outputShut = true
            if inputClosed {
                context.close(promise: nil)
                return
            }
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(limits.lingerMs)) {
                context.close(promise: nil)
            }
        }
    }
}

/// First in the pipeline (after TLS, if any): counts bytes, starts the head clock on a request's first byte,
/// and once the connection is closing discards what still arrives and closes when the client does.
final class BytesHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let clock: ConnectionClock

    init(clock: ConnectionClock) { self.clock = clock }

    func handlerAdded(context: ChannelHandlerContext) { clock.bytesContext = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        clock.cancelTimer()
        clock.bytesContext = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        clock.bytesRead += buffer.readableBytes
        switch clock.phase {
        case .lingering:
            return  // discarded
        case .between:
            // Empty lines between requests (RFC 9112 §2.2 lets a server ignore them) do not start a request.
            if buffer.readableBytesView.contains(where: { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }) {
                clock.firstByte()
            }
        case .head, .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .lingering = clock.phase {
            context.read()
            return
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            clock.inputClosed = true
            if case .lingering = clock.phase, clock.outputShut {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        clock.cancelTimer()
        context.fireChannelInactive()
    }

    /// The server half-closes when it has answered for the last time (`Connection: close`, a parse error, the
    /// client's end of input): stop sending, but read and discard until the client closes (or `lingerMs`), so
    /// the socket is released promptly — before, it stayed half-closed with unread data until the idle timeout.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        let shutdown = context.eventLoop.makePromise(of: Void.self)
        shutdown.futureResult.cascade(to: promise)
        context.close(mode: .output, promise: shutdown)
        clock.startLingering(context, shutdown: shutdown.futureResult)
    }
}

/// After the HTTP decoder: a head complete stops the head clock and starts the body's; the end of a request
/// stops it. Watches the answers written, so an answer of the guard's own never lands inside another.
final class PartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPConnectionStateHandler.InboundIn
    typealias InboundOut = HTTPConnectionStateHandler.InboundIn
    typealias OutboundIn = HTTPConnectionStateHandler.OutboundIn
    typealias OutboundOut = HTTPConnectionStateHandler.OutboundIn

    let clock: ConnectionClock

    init(clock: ConnectionClock) { self.clock = clock }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: clock.headComplete()
        case .body: break
        case .end: clock.requestEnd()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: clock.answersStarted += 1
        case .end: clock.answersFinished += 1
        default: break
        }
        context.write(data, promise: promise)
    }
}

/// A connection beyond the limit: `503 too_many_connections` at once, then closed (lingering briefly so the
/// answer is not destroyed by a reset; not at all when too many refused connections already linger).
final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let limits: ConnectionLimits
    let linger: Bool
    var answered = false

    init(limits: ConnectionLimits, linger: Bool) {
        self.limits = limits
        self.linger = linger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { answer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        answer(context)
        context.fireChannelActive()
    }

    func answer(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        guard linger else {
            context.close(promise: nil)
            return
        }
        let body = ConnectionGuard.rawResponse(
            status: "503 Service Unavailable", reason: "too_many_connections",
            message: "the server has \(limits.maxConnections) open connections, its limit; retry later", retryAfter: 1)
        context.writeAndFlush(wrapOutboundOut(body), promise: nil)
        let shutdown = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: shutdown)
        shutdown.futureResult.assumeIsolated().whenComplete { [linger = limits.lingerMs] _ in
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(min(linger, 1000))) {
                context.close(promise: nil)
            }
        }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // discarded

    func channelReadComplete(context: ChannelHandlerContext) { context.read() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
