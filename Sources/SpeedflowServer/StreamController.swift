import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdCore
import NIOCore
import ServiceLifecycle
import SpeedflowAggregation
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowModel
import SpeedflowStore

/// `GET /kvfv/{id}/avg-speed/stream` and `GET /kvfv/stream`: Server-Sent Events that push what changed.
///
/// A stream opens with a `snapshot` event (the JSON object the matching `GET` answers), then sends one event per
/// changed item — `window` (a camera's window, as in `windows[]`, revisions by late events included) or `camera`
/// (a fleet row) — at most one per item per poll (250 ms), a new `snapshot` when a fleet page's membership
/// changes, `: keep-alive` comments when quiet, and `end` (`{"reason": …}`) before the server closes it.
/// Parameters and errors are those of the matching `GET`, answered before the stream begins.
struct StreamController: Sendable {
    let node: HTTPNode
    let feeds: LiveFeeds
    /// The node's credentials: a stream opened with one ends (`end` `credential_revoked`) once it is revoked.
    var credentials: CredentialStore? = nil
    /// How often an open stream's credential is checked again.
    static let credentialCheckInterval: Duration = .seconds(1)

    var queries: CameraQueries {
        get throws {
            guard let q = node.queries else {
                throw node.notServed("answer queries", by: "query an api node (or serve)")
            }
            return q
        }
    }

    /// `GET /kvfv/{id}/avg-speed/stream?from=&to=&interval=&tz=`. Without `to` the range is live: it runs from
    /// `from` to the end of the window holding the server's current time and grows as the clock enters the next
    /// window (sent as a `window` event); a live range that passes 10,000 windows ends with `end`
    /// `too_many_windows`.
    func windows(_ request: Request, context: SpeedflowRequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        let q = request.uri.queryParameters
        let fromMs = try QueryController.time(q.get("from"), name: "from")
        // Left out: a live range (an empty `to` is refused as by the answer, not taken for "live").
        let toText = q.get("to")
        let toMs: Int64? = toText == nil ? nil : try QueryController.time(toText, name: "to")
        let intervalText = q.get("interval") ?? "5m"
        guard let interval = WindowInterval(parameter: intervalText) else {
            throw APIError(.badRequest, "invalid_interval", "interval must be 5m, 1h, 24h (or 1d), not '\(intervalText)'")
        }
        var timeZone: TimeZone?
        if let tz = q.get("tz"), !tz.isEmpty {
            guard let zone = QueryController.timeZone(tz) else {
                throw APIError(
                    .badRequest, "invalid_tz",
                    "unknown time zone '\(tz.prefix(64))'; use an IANA name such as Europe/Moscow")
            }
            timeZone = zone
        }
        let zone = timeZone
        if let format = q.get("format"), !format.isEmpty, format != "json" {
            throw APIError(.badRequest, "invalid_format", "the stream is JSON only; format must be json, not '\(format.prefix(32))'")
        }
        let queries = try queries
        let clock = node.clock
        let registry = node.registry
        // The windows now; a live range is planned anew at every poll.
        let windows = try Self.plan(fromMs: fromMs, toMs: toMs ?? clock() + 1, interval: interval, timeZone: zone)
        // Requests that list the same windows share a feed: `from` 10:03 and 10:00 at 5m are one view.
        let firstMs = windows[0].startMs
        let key = "w|\(id)|\(interval.rawValue)|\(zone?.identifier ?? "")|\(firstMs)|\(toMs.map { _ in String(windows[windows.count - 1].endMs) } ?? "live")"
        let fixedWindows = toMs == nil ? nil : windows
        let poll: @Sendable () async throws -> LivePoll = {
            let current: [Window]
            if let fixedWindows {
                current = fixedWindows
            } else {
                do {
                    current = try Self.plan(fromMs: firstMs, toMs: clock() + 1, interval: interval, timeZone: zone)
                } catch let error as APIError {
                    return .end(reason: error.reason)
                }
            }
            // The limit history as it is at each poll: a registry edit revises the streamed windows too.
            let limitAt = QueryController.limits(registry?.info(id))
            guard let items = try await Self.renderWindows(queries, kvfvId: id, windows: current, limitAt: limitAt) else {
                throw APIError(.notFound, "unknown_kvfv", "no event of camera '\(id)' has been accepted")
            }
            return .frame(LiveFrame(keys: current.map { String($0.startMs) }, items: items))
        }
        let snapshot: @Sendable (LiveFrame) -> [UInt8] = { frame in
            var json = JSONWriter(capacity: 128 + frame.items.count * 260)
            json.raw("{\"kvfv_id\":")
            json.string(id)
            json.raw(",\"interval\":")
            json.string(interval.rawValue)
            if let zone {
                json.raw(",\"tz\":")
                json.string(zone.identifier)
            }
            json.raw(",\"from\":")
            json.string(Timestamp.format(fromMs))
            json.raw(",\"to\":")
            // A live range's end is that of its last window now.
            json.string(Timestamp.format(toMs ?? frame.keys.last.flatMap { Int64($0) }.map { $0 + interval.durationMs } ?? fromMs))
            json.raw(",\"windows\":[")
            Self.join(frame.items, into: &json)
            json.raw("]}")
            return json.bytes
        }
        return try await stream(key: key, itemEvent: "window", context: context, poll: poll, snapshot: snapshot)
    }

    /// The windows of a range, or the `400` `GET /kvfv/{id}/avg-speed` answers for it.
    static func plan(fromMs: Int64, toMs: Int64, interval: WindowInterval, timeZone: TimeZone?) throws -> [Window] {
        do {
            return try WindowPlanner.windows(fromMs: fromMs, toMs: toMs, interval: interval, timeZone: timeZone)
        } catch {
            switch error {
            case .emptyRange:
                throw APIError(.badRequest, "invalid_range", "from must be before to (or, without to, before now)")
            case .tooManyWindows(let n):
                throw APIError(
                    .badRequest, "too_many_windows",
                    "the range holds \(n) windows; at most \(WindowPlanner.maxWindows) per request")
            }
        }
    }

    /// The stream's one call into the query layer: the windows' states, each rendered as `GET
    /// /kvfv/{id}/avg-speed` renders it (`WindowRendering.object`). `nil` for a camera never seen.
    static func renderWindows(
        _ queries: CameraQueries, kvfvId: String, windows: [Window], limitAt: ((Int64) -> Int?)? = nil
    ) async throws -> [[UInt8]]? {
        let found: [WindowReport]?
        do {
            found = try await queries.windowReports(kvfvId: kvfvId, windows: windows, groups: [.camera], limitAt: limitAt)?.first
        } catch let error as StoreError {
            throw APIError(error)
        }
        guard let reports = found else { return nil }
        var items: [[UInt8]] = []
        items.reserveCapacity(windows.count)
        for report in reports {
            var json = JSONWriter(capacity: 320)
            WindowRendering.object(report, into: &json)
            items.append(json.bytes)
        }
        return items
    }

    /// `GET /kvfv/stream?limit=&after=&prefix=&health=`: the page `GET /kvfv` answers, then its cameras as they
    /// change (`camera` events); a new `snapshot` when the page's cameras, `total`, `matched` or `next` change.
    func cameras(_ request: Request, context: SpeedflowRequestContext) async throws -> Response {
        let pageRequest = try QueryController.pageRequest(request.uri.queryParameters)
        let queries = try queries
        let clock = node.clock
        let registry = node.registry
        let key = "c|\(pageRequest.prefix)|\(pageRequest.after ?? "")|\(pageRequest.limit)|\(pageRequest.health?.rawValue ?? "")"
        let poll: @Sendable () async throws -> LivePoll = {
            let page: CameraStatusPage
            do {
                page = try await queries.cameraPage(pageRequest)
            } catch let error as StoreError {
                throw APIError(error)
            }
            var header = JSONWriter(capacity: 128)
            header.raw("\"total\":")
            header.number(page.total)
            header.raw(",\"matched\":")
            header.number(page.matched)
            header.raw(",\"next\":")
            header.string(page.next)
            let now = clock()
            let items = page.cameras.map { c in
                var json = JSONWriter(capacity: 400)
                CameraRendering.row(c, registry: registry, nowMs: now, into: &json)
                return json.bytes
            }
            return .frame(LiveFrame(keys: page.cameras.map(\.kvfvId), items: items, header: header.bytes))
        }
        let snapshot: @Sendable (LiveFrame) -> [UInt8] = { frame in
            var json = JSONWriter(capacity: 256 + frame.items.count * 400)
            json.raw("{\"server_time\":")
            json.string(Timestamp.format(clock()))
            json.raw(",")
            json.bytes.append(contentsOf: frame.header)
            json.raw(",\"cameras\":[")
            Self.join(frame.items, into: &json)
            json.raw("]}")
            return json.bytes
        }
        return try await stream(key: key, itemEvent: "camera", context: context, poll: poll, snapshot: snapshot)
    }

    static func join(_ items: [[UInt8]], into json: inout JSONWriter) {
        for (i, item) in items.enumerated() {
            if i > 0 { json.raw(",") }
            json.bytes.append(contentsOf: item)
        }
    }

    /// Subscribes (errors of the first poll are answered as JSON, before the stream begins), then streams until
    /// the client goes, the server shuts down, or the view ends.
    func stream(
        key: String, itemEvent: String, context: SpeedflowRequestContext, poll: @escaping @Sendable () async throws -> LivePoll,
        snapshot: @escaping @Sendable (LiveFrame) -> [UInt8]
    ) async throws -> Response {
        let subscription = try await feeds.subscribe(
            key: key, itemEvent: itemEvent, channel: context.channel, poll: poll, snapshot: snapshot)
        await ClientGoneHandler.watch(context.channel, subscription)
        // A credential from the credentials file (a token, or the dashboard session signed in with one; not a client
        // certificate, which the TLS layer checks) is checked again while the stream lasts: access is not only
        // decided at the start of a response that may last for days.
        let credentialId = context.principal.map(\.credentialId).flatMap { id in credentials?.principal(id: id) != nil ? id : nil }
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-cache",
            // nginx: pass events through as they come instead of buffering the answer.
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { [channel = context.channel] writer in
                let revocationWatch = Task { [credentials] in
                    guard let credentialId, let credentials else { return }
                    while (try? await Task.sleep(for: Self.credentialCheckInterval)) != nil {
                        if credentials.principal(id: credentialId) == nil {
                            subscription.end(reason: "credential_revoked")
                            return
                        }
                    }
                }
                defer {
                    revocationWatch.cancel()
                    subscription.close()
                    ClientGoneHandler.unwatch(channel)
                }
                // Graceful shutdown (the HTTP server's turn in the service group) ends the stream with `end`; the
                // drain gate has usually done so a moment earlier (see `LiveFeeds`).
                try await withGracefulShutdownHandler {
                    try await writer.write(subscription.first)
                    subscription.wrote()
                    while let buffer = await subscription.next() {
                        try await writer.write(buffer)
                        subscription.wrote()
                    }
                } onGracefulShutdown: {
                    subscription.end(reason: "shutting_down")
                }
                try await writer.finish(nil)
            })
    }
}

/// Ends a stream when its client goes: at the end of its input. An event-stream client has nothing to send after
/// its request and never half-closes, so end of input means it closed the connection; without this a stream of
/// a quiet view would notice only at its next heartbeat's failed write (the server allows half-closed
/// connections, so a client's FIN does not close the channel).
final class ClientGoneHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    static let name = "speedflow.stream.client-gone"

    let subscription: LiveSubscription

    init(_ subscription: LiveSubscription) { self.subscription = subscription }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { subscription.end(reason: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        subscription.end(reason: nil)
        context.fireChannelInactive()
    }

    /// Adds the handler right after the connection guard's byte handler (after TLS, which sees only encrypted bytes).
    static func watch(_ channel: (any Channel)?, _ subscription: LiveSubscription) async {
        guard let channel else { return }
        try? await channel.eventLoop.submit {
            let ops = channel.pipeline.syncOperations
            let handler = ClientGoneHandler(subscription)
            if let bytes = try? ops.handler(type: BytesHandler.self) {
                try ops.addHandler(handler, name: name, position: .after(bytes))
            } else {
                try ops.addHandler(handler, name: name, position: .first)
            }
        }.get()
    }

    /// Removes it when the stream is over (the connection may serve further requests).
    static func unwatch(_ channel: (any Channel)?) {
        channel?.pipeline.removeHandler(name: name, promise: nil)
    }
}
