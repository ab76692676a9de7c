import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowStore

/// `GET /kvfv/{id}/avg-speed`, `GET /kvfv`, `GET /stats`, `GET /health`.
struct QueryController: Sendable {
    let node: HTTPNode

    var queries: CameraQueries {
        get throws {
            guard let q = node.queries else {
                throw node.notServed("answer queries", by: "query an api node (or serve)")
            }
            return q
        }
    }

    func avgSpeed(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        let q = request.uri.queryParameters
        let fromMs = try Self.time(q.get("from"), name: "from")
        let toMs = try Self.time(q.get("to"), name: "to")
        let intervalText = q.get("interval") ?? "5m"
        guard let interval = WindowInterval(parameter: intervalText) else {
            throw APIError(.badRequest, "invalid_interval", "interval must be 5m, 1h, 24h (or 1d), not '\(intervalText)'")
        }
        var timeZone: TimeZone?
        if let tz = q.get("tz"), !tz.isEmpty {
            guard let zone = Self.timeZone(tz) else {
                throw APIError(
                    .badRequest, "invalid_tz",
                    "unknown time zone '\(tz.prefix(64))'; use an IANA name such as Europe/Moscow")
            }
            timeZone = zone
        }
        let windows: [Window]
        do {
            windows = try WindowPlanner.windows(fromMs: fromMs, toMs: toMs, interval: interval, timeZone: timeZone)
        } catch {
            switch error {
            case .emptyRange:
                throw APIError(.badRequest, "invalid_range", "from must be before to")
            case .tooManyWindows(let n):
                throw APIError(
                    .badRequest, "too_many_windows",
                    "the range holds \(n) windows; at most \(WindowPlanner.maxWindows) per request")
            }
        }
        if let format = q.get("format"), !format.isEmpty, format != "json", format != "csv" {
            throw APIError(.badRequest, "invalid_format", "format must be json or csv, not '\(format.prefix(32))'")
        }
        let info = node.registry?.info(id)
        let lanes = try LaneQuery(q, registeredLanes: info?.lanes)
        let found: [[WindowReport]]?
        do {
            found = try await queries.windowReports(
                kvfvId: id, windows: windows, groups: lanes.groups, limitAt: Self.limits(info))
        } catch let error as StoreError {
            throw APIError(error)
        }
        guard let answered = found else {
            throw APIError(.notFound, "unknown_kvfv", "no event of camera '\(id)' has been accepted")
        }
        // With `lane=`, the windows are that lane's; otherwise the camera's totals (then each lane with `by=lane`).
        let reports = lanes.single == nil ? answered[0] : answered[1]
        let byLane = lanes.byLane(answered)
        let wantsCSV = q.get("format") == "csv" || (request.headers[.accept]?.contains("text/csv") ?? false)
        if wantsCSV {
            return WindowRendering.csv(lanes.single == nil ? reports : [], lanes: lanes.single.map { [($0, reports)] } ?? byLane)
        }
        var json = JSONWriter(capacity: 128 + windows.count * (1 + byLane.count) * 420)
        json.raw("{\"kvfv_id\":")
        json.string(id)
        json.raw(",\"interval\":")
        json.string(interval.rawValue)
        if let timeZone {
            json.raw(",\"tz\":")
            json.string(timeZone.identifier)
        }
        json.raw(",\"from\":")
        json.string(Timestamp.format(fromMs))
        json.raw(",\"to\":")
        json.string(Timestamp.format(toMs))
        if let lane = lanes.single {
            json.raw(",\"lane\":")
            json.number(lane)
        }
        json.raw(",\"windows\":")
        Self.windows(reports, into: &json)
        if lanes.isByLane {
            json.raw(",\"lanes\":[")
            for (i, group) in byLane.enumerated() {
                if i > 0 { json.raw(",") }
                json.raw("{\"lane\":")
                json.number(group.lane)
                json.raw(",\"windows\":")
                Self.windows(group.reports, into: &json)
                json.raw("}")
            }
            json.raw("]")
        }
        json.raw("}")
        return Self.json(json)
    }

    static func windows(_ reports: [WindowReport], into json: inout JSONWriter) {
        json.raw("[")
        for (i, report) in reports.enumerated() {
            if i > 0 { json.raw(",") }
            WindowRendering.object(report, into: &json)
        }
        json.raw("]")
    }

    /// The speed limit in force at a time, from the camera's registry entry; `nil` without limits.
    static func limits(_ info: CameraInfo?) -> (@Sendable (Int64) -> Int?)? {
        guard let info, !info.limits.isEmpty else { return nil }
        return { info.limit(atMs: $0) }
    }

    /// An IANA time zone name: 1–64 of `[A-Za-z0-9/_+-]` (no NUL, no `.`, so no path tricks) that Foundation
    /// knows under exactly that name, or `UTC` (`TimeZone(identifier:)` alone also takes abbreviations, odd
    /// spellings and, before this check, a NUL followed by anything).
    static func timeZone(_ name: String) -> TimeZone? {
        guard (1...64).contains(name.utf8.count),
            name.utf8.allSatisfy({ c in
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "/") || c == UInt8(ascii: "_")
                    || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
            }),
            !name.hasPrefix("/"), !name.hasSuffix("/"), !name.contains("//"),
            let zone = TimeZone(identifier: name),
            zone.identifier == name || name == "UTC" || TimeZone.knownTimeZoneIdentifiers.contains(name)
        else { return nil }
        return zone
    }

    /// Parses an RFC 3339 query parameter. A `+` of an offset arrives as a space when the client did not
    /// percent-encode it; that is repaired rather than refused.
    static func time(_ value: String?, name: String) throws -> Int64 {
        guard let value, !value.isEmpty else {
            throw APIError(.badRequest, "missing_parameter", "query parameter '\(name)' (RFC 3339) is required")
        }
        if let ms = Timestamp.parse(value) { return ms }
        if value.count > 19, let space = value.lastIndex(of: " ") {
            var repaired = value
            repaired.replaceSubrange(space...space, with: "+")
            if let ms = Timestamp.parse(repaired) { return ms }
        }
        throw APIError(.badRequest, "invalid_timestamp", "'\(name)' must be an RFC 3339 date-time, e.g. 2025-04-05T10:00:00Z")
    }

    /// `GET /kvfv?limit=&after=&prefix=&health=`: one page of the fleet in name order (see `CameraPageRequest`).
    static func pageRequest(_ q: FlatDictionary<Substring, Substring>) throws -> CameraPageRequest {
        var r = CameraPageRequest()
        if let text = q.get("limit") {
            guard let n = Int(text), (1...CameraPageRequest.maxLimit).contains(n) else {
                throw APIError(
                    .badRequest, "invalid_limit",
                    "limit must be an integer from 1 to \(CameraPageRequest.maxLimit), not '\(text.prefix(32))'")
            }
            r.limit = n
        }
        if let after = q.get("after"), !after.isEmpty {
            guard ValidationPolicy.isValidKvfvId(after) else {
                throw APIError(.badRequest, "invalid_cursor", "after must be a kvfv_id (the 'next' of the previous page)")
            }
            r.after = after
        }
        if let prefix = q.get("prefix"), !prefix.isEmpty {
            guard ValidationPolicy.isValidKvfvId(prefix) else {
                throw APIError(.badRequest, "invalid_prefix", "prefix must be 1–64 characters of [A-Za-z0-9._-]")
            }
            r.prefix = prefix
        }
        if let text = q.get("health"), !text.isEmpty {
            guard let health = CameraStatus.Health(rawValue: text) else {
                throw APIError(
                    .badRequest, "invalid_health", "health must be live, silent, lagging, clock_skew or stuck")
            }
            r.health = health
        }
        return r
    }

    func cameras(_ request: Request, context: some RequestContext) async throws -> Response {
        let pageRequest = try Self.pageRequest(request.uri.queryParameters)
        let page: CameraStatusPage
        do {
            page = try await queries.cameraPage(pageRequest)
        } catch let error as StoreError {
            throw APIError(error)
        }
        let statuses = page.cameras
        let now = node.clock()
        var json = JSONWriter(capacity: 256 + statuses.count * 400)
        json.raw("{\"server_time\":")
        json.string(Timestamp.format(now))
        json.raw(",\"total\":")
        json.number(page.total)
        json.raw(",\"matched\":")
        json.number(page.matched)
        json.raw(",\"next\":")
        json.string(page.next)
        json.raw(",\"cameras\":[")
        for (i, c) in statuses.enumerated() {
            if i > 0 { json.raw(",") }
            CameraRendering.row(c, registry: node.registry, nowMs: now, into: &json)
        }
        json.raw("]}")
        return Self.json(json)
    }

    /// `GET /kvfv/{id}`: one camera's row of `GET /kvfv`, with its registry entry.
    func camera(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        let page: CameraStatusPage
        do {
            // The first camera in name order with the id as prefix is the id itself, when it exists.
            page = try await queries.cameraPage(CameraPageRequest(prefix: id, limit: 1))
        } catch let error as StoreError {
            throw APIError(error)
        }
        guard let status = page.cameras.first, status.kvfvId == id else {
            throw APIError(
                .notFound, "unknown_kvfv",
                "no event of camera '\(id)' has been accepted\(node.registry?.info(id) != nil ? " (it is registered: GET /kvfv/\(id)/registry)" : "")")
        }
        var json = JSONWriter(capacity: 1024)
        CameraRendering.row(status, registry: node.registry, nowMs: node.clock(), into: &json)
        return Self.json(json)
    }

    func stats(_ request: Request, context: some RequestContext) async throws -> Response {
        let now = node.clock()
        let s = node.stats.snapshot(nowMs: now)
        var json = JSONWriter(capacity: 1024)
        json.raw("{\"server_time\":")
        json.string(Timestamp.format(now))
        json.raw(",\"uptime_seconds\":")
        json.number(Double(now - node.stats.startedMs) / 1000)
        json.raw(",\"accepted_total\":")
        json.number(s.accepted)
        json.raw(",\"duplicates_total\":")
        json.number(s.duplicates)
        json.raw(",\"rejected_total\":")
        json.number(s.rejected.values.reduce(0, +))
        json.raw(",\"rejected_by_reason\":")
        json.reasonCounts(s.rejected)
        json.raw(",\"accepted_per_second\":")
        json.number(s.acceptedPerSecond)
        json.raw(",\"duplicates_per_second\":")
        json.number(s.duplicatesPerSecond)
        json.raw(",\"rejected_per_second\":")
        json.number(s.rejectedPerSecond)
        json.raw(",\"lateness\":[")
        for (i, n) in s.lateness.enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("{\"le_seconds\":")
            json.number(i < IngestStats.latenessBounds.count ? IngestStats.latenessBounds[i] : nil)
            json.raw(",\"count\":")
            json.number(n)
            json.raw("}")
        }
        json.raw("],\"queue_depth\":")
        json.number(node.status.queueDepth())
        json.raw(",\"hot_buckets\":")
        json.number(node.status.hotBuckets())
        json.raw(",\"log_bytes\":")
        json.number(node.status.logBytes())
        json.raw(",\"store_bytes\":")
        json.number(node.status.storeBytes())
        json.raw("}")
        return Self.json(json)
    }

    static func json(_ w: JSONWriter) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}

extension APIError {
    /// A store error (`store_corrupt`: damaged data is never answered as a number) as a JSON 500; the engine has
    /// logged it and counted it in `speedflow_store_corruptions_total`.
    init(_ error: StoreError) {
        self.init(.internalServerError, error.reason, error.message)
    }
}

/// `lane=` and `by=lane` of `GET /kvfv/{id}/avg-speed`: which lane groups a query answers. Lane 0 is the unknown
/// lane: passes without a lane, with lane 0, above 16, or above the camera's registered lane count.
struct LaneQuery {
    /// The one lane asked for with `lane=`.
    var single: Int?
    var isByLane = false
    /// What the query layer folds: the camera first (the totals), then the lanes.
    var groups: [LaneGroup] = [.camera]
    /// The lane number of each group after the first.
    var laneNumbers: [Int] = []
    let registeredLanes: Int?

    init(_ q: FlatDictionary<Substring, Substring>, registeredLanes: Int?) throws {
        self.registeredLanes = registeredLanes
        let maxLane = registeredLanes ?? Int(LaneStates.maxKey)
        if let text = q.get("lane"), !text.isEmpty {
            guard let lane = Int(text), (0...maxLane).contains(lane) else {
                throw APIError(
                    .badRequest, "invalid_lane",
                    "lane must be 1–\(maxLane)\(registeredLanes == nil ? "" : " (the camera's registered lanes)"), or 0 for the unknown lane, not '\(text.prefix(16))'")
            }
            single = lane
            groups.append(Self.group(lane, registeredLanes: registeredLanes))
            laneNumbers = [lane]
        }
        if let by = q.get("by"), !by.isEmpty {
            guard by == "lane" else {
                throw APIError(.badRequest, "invalid_by", "by must be 'lane', not '\(by.prefix(16))'")
            }
            guard single == nil else {
                throw APIError(.badRequest, "invalid_by", "give either lane= or by=lane, not both")
            }
            isByLane = true
            laneNumbers = Array(1...maxLane) + [0]
            groups += laneNumbers.map { Self.group($0, registeredLanes: registeredLanes) }
        }
    }

    static func group(_ lane: Int, registeredLanes: Int?) -> LaneGroup {
        lane == 0 ? .unknown(registeredLanes: registeredLanes) : .lane(UInt8(lane))
    }

    /// The per-lane answers of a `by=lane` query: a registered camera's every lane, otherwise the lanes that have
    /// passes in the range; the unknown lane (0) always, last.
    func byLane(_ answered: [[WindowReport]]) -> [(lane: Int, reports: [WindowReport])] {
        guard isByLane else { return [] }
        return zip(laneNumbers, answered.dropFirst()).compactMap { lane, reports in
            guard lane == 0 || registeredLanes != nil || reports.contains(where: { $0.state.count > 0 }) else { return nil }
            return (lane, reports)
        }
    }
}
