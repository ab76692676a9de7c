import Foundation
import Logging
import Metrics
import NIOCore
import Synchronization

/// What one poll of a live view saw: its items in order (a window each, or a camera row of a page), each with the
/// key that identifies it from one poll to the next and its JSON.
struct LiveFrame: Sendable {
    var keys: [String]
    var items: [[UInt8]]
    /// JSON members of the view as a whole (a fleet page's `total`, `matched`, `next`); a change resends the
    /// snapshot. Empty for a camera's windows.
    var header: [UInt8] = []
}

/// The answer of one poll.
enum LivePoll: Sendable {
    case frame(LiveFrame)
    /// The view cannot go on (a live range grown past 10,000 windows): every subscriber gets an `end` event with
    /// this reason and the stream closes.
    case end(reason: String)
}

/// Shared pollers behind the live streams (`GET /kvfv/{id}/avg-speed/stream`, `GET /kvfv/stream`).
///
/// One `Feed` per distinct view (camera, interval, range, time zone; or fleet page) polls every `pollInterval`,
/// diffs what it renders against what it last saw and hands each changed item to every subscriber of that view:
/// 1,000 dashboards on one camera cost one poll, not 1,000. A feed lives while it has subscribers.
///
/// Coalescing falls out of the polling: a window changed by many events between two polls is sent once. A
/// subscriber that cannot keep up keeps only the *keys* of what changed (the bytes are the feed's, shared), so a
/// slow reader costs at most one key per item of its view; one whose write has not completed for `stallTimeout`
/// (it stopped reading, the socket buffers are full) is disconnected. Heartbeat comments keep a quiet stream from
/// looking dead to proxies. When `drain` closes (graceful shutdown) every stream ends with `event: end`.
public final class LiveFeeds: Sendable {
    public struct Configuration: Sendable {
        /// How often a view is recomputed: also the coalescing period (at most one message per item per poll).
        /// Default: 250 ms.
        public var pollInterval: Duration
        /// A comment line is sent after this long without a message, so proxies and browsers keep the
        /// connection. Default: 15 s.
        public var heartbeatInterval: Duration
        /// A subscriber whose write has not completed for this long is disconnected: it stopped reading and the
        /// kernel's and NIO's buffers (~64 KiB + the socket's) are full. Default: 30 s.
        public var stallTimeout: Duration
        /// The `retry:` sent to browsers: how long `EventSource` waits before reconnecting. Default: 2 s.
        public var retryMs: Int

        public init(
            pollInterval: Duration = .milliseconds(250), heartbeatInterval: Duration = .seconds(15),
            stallTimeout: Duration = .seconds(30), retryMs: Int = 2000
        ) {
            self.pollInterval = pollInterval
            self.heartbeatInterval = heartbeatInterval
            self.stallTimeout = stallTimeout
            self.retryMs = retryMs
        }
    }

    public let configuration: Configuration
    let drain: DrainGate?
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// Every running feed by view key. Lock order: this, then a feed's own lock.
    let feeds = Mutex<[String: Feed]>([:])
    let nextSubscriber = Atomic<Int>(0)
    let polls = Atomic<Int>(0)

    let feedsGauge = Gauge(label: "speedflow_stream_feeds")
    let subscribersGauge = Gauge(label: "speedflow_stream_subscribers")
    let droppedCounter = Counter(label: "speedflow_stream_dropped_total", dimensions: [("reason", "stalled")])
    let pollErrorLog = LogThrottle(intervalMs: 10_000)

    public init(
        configuration: Configuration = Configuration(), drain: DrainGate? = nil, logger: Logger = Logger(label: "speedflow.stream"),
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.configuration = configuration
        self.drain = drain
        self.logger = logger
        self.clock = clock
    }

    /// Views being polled now.
    public var feedCount: Int { feeds.withLock { $0.count } }
    /// Open streams.
    public var subscriberCount: Int { feeds.withLock { $0.values.reduce(0) { $0 + $1.members } } }

    /// Polls done since start, by every feed.
    public var pollCount: Int { polls.load(ordering: .relaxed) }

    /// Polls every view now (tests: a poll at a moment of their choosing, with a long `pollInterval`).
    public func pollNow() {
        for feed in feeds.withLock({ Array($0.values) }) { feed.pollNow() }
    }

    /// Ends every stream with `event: end` (`reason`), e.g. at shutdown.
    public func endAll(reason: String) {
        for feed in feeds.withLock({ Array($0.values) }) { feed.endAll(reason: reason) }
    }

    func updateGauges() {
        let (f, s) = feeds.withLock { feeds in (feeds.count, feeds.values.reduce(0) { $0 + $1.members }) }
        feedsGauge.record(f)
        subscribersGauge.record(s)
    }

    /// Joins the view `key` (starting its feed with `poll` if none runs) and returns the subscription with the
    /// stream's first bytes (`retry:` and the snapshot). Throws what the first poll of a new feed threw (an
    /// `APIError`: unknown camera, store failure), before any byte of the answer is written.
    func subscribe(
        key: String, itemEvent: String, channel: (any Channel)?, poll: @escaping @Sendable () async throws -> LivePoll,
        snapshot: @escaping @Sendable (LiveFrame) -> [UInt8]
    ) async throws -> LiveSubscription {
        let feed: Feed = feeds.withLock { feeds in
            if let f = feeds[key], !f.isFinished {
                f.members += 1
                return f
            }
            let f = Feed(key: key, itemEvent: itemEvent, hub: self, poll: poll)
            f.members = 1
            feeds[key] = f
            f.start()
            return f
        }
        let id = nextSubscriber.add(1, ordering: .relaxed).newValue
        let subscriber = Subscriber(id: id, channel: channel, snapshot: snapshot)
        do {
            let first = try await feed.register(subscriber)
            updateGauges()
            return LiveSubscription(hub: self, feed: feed, subscriber: subscriber, first: first)
        } catch {
            leave(feed, subscriber.id)
            throw error
        }
    }

    /// A subscriber is gone: its feed stops when it was the last.
    func leave(_ feed: Feed, _ id: Int) {
        let last: Bool = feeds.withLock { feeds in
            feed.members -= 1
            guard feed.members == 0 else { return false }
            if feeds[feed.key] === feed { feeds[feed.key] = nil }
            return true
        }
        feed.remove(id)
        if last { feed.stop() }
        updateGauges()
    }

    /// A feed ends by itself (its view ended): later subscribers start a new one.
    func retire(_ feed: Feed) {
        feeds.withLock { feeds in if feeds[feed.key] === feed { feeds[feed.key] = nil } }
        updateGauges()
    }
}

/// One open stream: what the response body loop uses.
final class LiveSubscription: Sendable {
    let hub: LiveFeeds
    let feed: Feed
    let subscriber: Subscriber
    /// `retry:` and the snapshot event.
    let first: ByteBuffer
    private let left = Atomic<Bool>(false)

    init(hub: LiveFeeds, feed: Feed, subscriber: Subscriber, first: ByteBuffer) {
        self.hub = hub
        self.feed = feed
        self.subscriber = subscriber
        self.first = first
        // A client that goes away between two messages is noticed at once, not at the next write.
        subscriber.channel?.closeFuture.whenComplete { [weak self] _ in self?.end(reason: nil) }
    }

    /// Ends the stream: with `event: end` and `reason`, or (nil) silently, e.g. the client went away.
    func end(reason: String?) { feed.end(subscriber.id, reason: reason) }

    /// The subscriber's messages, each to write and then acknowledge with `wrote()`; ends after the last.
    func next() async -> ByteBuffer? {
        for await _ in subscriber.signals {
            switch feed.take(subscriber.id) {
            case .wait: continue
            case .write(let buffer): return buffer
            case .finished: return nil
            }
        }
        return nil
    }

    /// The last write completed.
    func wrote() { feed.wrote(subscriber.id) }

    /// Leaves the feed (once; also when the response body was never written).
    func close() {
        guard !left.exchange(true, ordering: .relaxed) else { return }
        subscriber.finish()
        hub.leave(feed, subscriber.id)
    }

    deinit { close() }
}

/// One stream's wake-ups; its state lives in its feed (under the feed's lock).
final class Subscriber: Sendable {
    let id: Int
    let channel: (any Channel)?
    /// The subscriber's own snapshot of a frame (a camera's answer echoes the subscriber's `from` and `to`).
    let snapshot: @Sendable (LiveFrame) -> [UInt8]
    let signals: AsyncStream<Void>
    let continuation: AsyncStream<Void>.Continuation

    init(id: Int, channel: (any Channel)?, snapshot: @escaping @Sendable (LiveFrame) -> [UInt8]) {
        self.id = id
        self.channel = channel
        self.snapshot = snapshot
        (signals, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func signal() { continuation.yield() }
    func finish() { continuation.finish() }
}

/// One view's poller and its subscribers.
final class Feed: Sendable {
    enum Take {
        case wait
        case write(ByteBuffer)
        case finished
    }

    /// What a subscriber has not been sent yet.
    enum Pending {
        case none
        /// The message of the last poll, built once for every subscriber that was up to date.
        case broadcast(ByteBuffer, keys: [String])
        /// Behind by more than one poll: the keys of the changed items, rendered from the frame when written.
        case keys(Set<String>)
        case snapshot
    }

    struct Member {
        let subscriber: Subscriber
        var pending = Pending.none
        var heartbeatDue = false
        /// `event: end` with this reason is still to be sent; then the stream is finished.
        var ending: String?
        var finished = false
        var writingSince: ContinuousClock.Instant?
        var lastWrite: ContinuousClock.Instant
    }

    enum Phase {
        case starting([CheckedContinuation<Void, any Error>])
        case running
        case failed(any Error)
        case ended
    }

    struct State {
        var phase = Phase.starting([])
        var frame = LiveFrame(keys: [], items: [])
        var position: [String: Int] = [:]
        /// Server time (ms) of the frame: every message's `id:`.
        var frameMs: Int64 = 0
        var members: [Int: Member] = [:]
        var task: Task<Void, Never>?
    }

    let key: String
    let itemEvent: String
    let hub: LiveFeeds
    let poll: @Sendable () async throws -> LivePoll
    let state = Mutex(State())
    let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    /// Subscribers plus those joining; guarded by the hub's lock.
    private let _members = Mutex(0)
    var members: Int {
        get { _members.withLock { $0 } }
        set { _members.withLock { $0 = newValue } }
    }
    private let finished = Atomic<Bool>(false)
    private let forced = Atomic<Bool>(false)
    var isFinished: Bool { finished.load(ordering: .relaxed) }

    init(key: String, itemEvent: String, hub: LiveFeeds, poll: @escaping @Sendable () async throws -> LivePoll) {
        self.key = key
        self.itemEvent = itemEvent
        self.hub = hub
        self.poll = poll
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func start() {
        let interval = hub.configuration.pollInterval
        let task = Task { [self] in
            let ticker = Task { [wake] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    wake.yield()
                }
            }
            defer { ticker.cancel() }
            var last = ContinuousClock.now
            guard await tick() else { return }
            for await _ in wakes {
                // Polls start at least `interval` apart (a slow poll does not make the next come early), so no
                // item is sent twice within it — unless a test asked for a poll now.
                if !forced.exchange(false, ordering: .relaxed) {
                    let due = last + interval
                    if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                }
                last = .now
                guard await tick() else { return }
            }
        }
        state.withLock { $0.task = task }
    }

    /// The next poll comes now, not `pollInterval` after the last.
    func pollNow() {
        forced.store(true, ordering: .relaxed)
        wake.yield()
    }

    func stop() {
        finished.store(true, ordering: .relaxed)
        wake.finish()
    }

    /// Waits for the feed's first poll, then adds `subscriber` and returns its first bytes.
    func register(_ subscriber: Subscriber) async throws -> ByteBuffer {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let resume: Result<Void, any Error>? = state.withLock { s in
                switch s.phase {
                case .starting(var waiters):
                    waiters.append(c)
                    s.phase = .starting(waiters)
                    return nil
                case .running: return .success(())
                case .failed(let error): return .failure(error)
                case .ended: return .failure(APIError(.serviceUnavailable, "stream_ended", "the view's stream has ended; retry"))
                }
            }
            if let resume { c.resume(with: resume) }
        }
        return state.withLock { s in
            // The first bytes are being written from now on (`wrote()` when done), so a stall on them counts too.
            s.members[subscriber.id] = Member(subscriber: subscriber, writingSince: .now, lastWrite: .now)
            var out = ByteBuffer(string: "retry: \(hub.configuration.retryMs)\n")
            Self.event(&out, id: s.frameMs, name: "snapshot", data: subscriber.snapshot(s.frame))
            return out
        }
    }

    func remove(_ id: Int) { _ = state.withLock { $0.members.removeValue(forKey: id) } }

    static func event(_ out: inout ByteBuffer, id: Int64, name: String, data: [UInt8]) {
        out.writeString("id: \(id)\nevent: \(name)\ndata: ")
        out.writeBytes(data)
        out.writeString("\n\n")
    }

    /// Polls once, hands what changed to the subscribers, sends heartbeats and drops stalled readers. `false`
    /// once the feed is over.
    func tick() async -> Bool {
        if isFinished { return false }
        // The messages' `id:`: server time when the poll began (what it sent is at least that fresh).
        let ms = hub.clock()
        var result: Result<LivePoll, any Error>
        do { result = .success(try await poll()) } catch { result = .failure(error) }
        hub.polls.add(1, ordering: .relaxed)
        let now = ContinuousClock.now
        let configuration = hub.configuration
        var toClose: [any Channel] = []
        var keepGoing = true
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var failure: (any Error)?
        state.withLock { s in
            var starting = false
            if case .starting(let w) = s.phase {
                waiters = w
                starting = true
            }
            switch result {
            case .success(.frame(let frame)):
                publish(frame, ms: ms, state: &s)
                if starting { s.phase = .running }
            case .success(.end(let reason)):
                if starting {
                    failure = APIError(.badRequest, reason, "the view cannot be streamed: \(reason)")
                    s.phase = .failed(failure!)
                } else {
                    s.phase = .ended
                    for id in s.members.keys where s.members[id]?.ending == nil {
                        s.members[id]?.ending = reason
                    }
                }
                keepGoing = false
            case .failure(let error):
                if starting {
                    failure = error
                    s.phase = .failed(error)
                    keepGoing = false
                } else {
                    hub.pollErrorLog.note { n in
                        hub.logger.warning(
                            "Live stream poll failed; retrying", metadata: ["stream.view": "\(key)", "error": "\(error)", "stream.failures": "\(n)"])
                    }
                }
            }
            if hub.drain?.isClosed == true {
                for id in s.members.keys where s.members[id]?.ending == nil { s.members[id]?.ending = "shutting_down" }
            }
            for id in Array(s.members.keys) {
                guard var m = s.members[id] else { continue }
                var notify = true
                if let since = m.writingSince {
                    notify = false
                    let stalled = now - since >= configuration.stallTimeout
                    // At shutdown a write that does not complete within a second will not: close now.
                    let stuckAtShutdown = m.ending == "shutting_down" && now - since >= .seconds(1)
                    if !m.finished, stalled || stuckAtShutdown {
                        // It stopped reading: close the connection (the pending write then fails and the body ends).
                        m.finished = true
                        notify = true
                        if let c = m.subscriber.channel { toClose.append(c) }
                        if stalled { hub.droppedCounter.increment() }
                    }
                } else if case .none = m.pending, m.ending == nil, !m.finished {
                    notify = now - m.lastWrite >= configuration.heartbeatInterval
                    if notify { m.heartbeatDue = true }
                }
                s.members[id] = m
                if notify { m.subscriber.signal() }
            }
        }
        if let failure {
            for w in waiters { w.resume(throwing: failure) }
        } else {
            for w in waiters { w.resume() }
        }
        for c in toClose { c.close(promise: nil) }
        if !keepGoing {
            stop()
            hub.retire(self)
            // Wake the subscribers so they send their `end` (or stop); their ends finish the stream.
            state.withLock { s in for m in s.members.values { m.subscriber.signal() } }
        }
        return keepGoing
    }

    /// Diffs `frame` against the last and queues what changed for every subscriber.
    func publish(_ frame: LiveFrame, ms: Int64, state s: inout State) {
        let old = s.frame
        let firstFrame: Bool = if case .starting = s.phase { true } else { false }
        s.frameMs = max(s.frameMs, ms)
        defer {
            s.frame = frame
        }
        if firstFrame {
            s.position = Dictionary(frame.keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            return
        }
        // The same items, perhaps with more at the end (a live range entering a new window): item events.
        // Otherwise (a page whose cameras changed, a header that changed): a new snapshot for everyone.
        let extends = frame.keys.count >= old.keys.count && frame.header == old.header
            && zip(frame.keys, old.keys).allSatisfy { $0 == $1 }
        guard extends else {
            s.position = Dictionary(frame.keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            for id in s.members.keys { s.members[id]?.pending = .snapshot }
            return
        }
        var changed: [Int] = []
        for i in frame.items.indices where i >= old.items.count || frame.items[i] != old.items[i] { changed.append(i) }
        guard !changed.isEmpty else { return }
        for i in old.keys.count..<frame.keys.count { s.position[frame.keys[i]] = i }
        var message = ByteBuffer()
        for i in changed { Self.event(&message, id: s.frameMs, name: itemEvent, data: frame.items[i]) }
        let keys = changed.map { frame.keys[$0] }
        for (id, m) in s.members {
            switch m.pending {
            case .none: s.members[id]?.pending = .broadcast(message, keys: keys)
            case .broadcast(_, let earlier): s.members[id]?.pending = .keys(Set(earlier).union(keys))
            case .keys(var set):
                set.formUnion(keys)
                s.members[id]?.pending = .keys(set)
            case .snapshot: break
            }
        }
    }

    /// The subscriber's next message (and marks it being written), `.wait` when there is none.
    func take(_ id: Int) -> Take {
        state.withLock { s in
            guard var m = s.members[id], !m.finished else { return .finished }
            defer { s.members[id] = m }
            guard m.writingSince == nil else { return .wait }
            var out: ByteBuffer
            switch m.pending {
            case .none:
                out = ByteBuffer()
            case .broadcast(let message, _):
                out = message
            case .keys(let keys):
                out = ByteBuffer()
                for i in keys.compactMap({ s.position[$0] }).sorted() where i < s.frame.items.count {
                    Self.event(&out, id: s.frameMs, name: itemEvent, data: s.frame.items[i])
                }
            case .snapshot:
                out = ByteBuffer()
                Self.event(&out, id: s.frameMs, name: "snapshot", data: m.subscriber.snapshot(s.frame))
            }
            m.pending = .none
            if let reason = m.ending {
                var end = JSONWriter(capacity: 64)
                end.raw("{\"reason\":")
                end.string(reason)
                end.raw("}")
                Self.event(&out, id: s.frameMs, name: "end", data: end.bytes)
                m.finished = true
            } else if out.readableBytes == 0 {
                guard m.heartbeatDue else { return .wait }
                out.writeString(": keep-alive\n\n")
            }
            m.heartbeatDue = false
            m.writingSince = .now
            return .write(out)
        }
    }

    func wrote(_ id: Int) {
        state.withLock { s in
            s.members[id]?.writingSince = nil
            s.members[id]?.lastWrite = .now
            if let m = s.members[id], m.finished { m.subscriber.finish() } else { s.members[id]?.subscriber.signal() }
        }
    }

    /// Ends one stream: with an `end` event carrying `reason`, or silently (nil: the client is gone).
    func end(_ id: Int, reason: String?) {
        state.withLock { s in
            guard var m = s.members[id] else { return }
            if let reason {
                if m.ending == nil { m.ending = reason }
            } else {
                m.finished = true
            }
            // Mid-write at shutdown: if that write does not complete, the next poll closes the connection.
            s.members[id] = m
            m.subscriber.signal()
            if m.finished { m.subscriber.finish() }
        }
    }

    func endAll(reason: String) {
        let ids = state.withLock { Array($0.members.keys) }
        for id in ids { end(id, reason: reason) }
    }
}
