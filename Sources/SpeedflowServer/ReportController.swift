import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowStore

/// `GET /kvfv/{id}/health` (a camera's daily health history) and `GET /reports/daily|monthly` (one row per camera
/// and lane: the row a speed-management report starts from). Local days follow each camera's registered time
/// zone unless `tz` is given; a camera without one uses UTC.
struct ReportController: Sendable {
    let node: HTTPNode
    /// The most days one health request spans.
    static let maxDays = 366

    var queries: CameraQueries {
        get throws {
            guard let q = node.queries else { throw node.notServed("answer queries", by: "query an api node (or serve)") }
            return q
        }
    }

    /// The `tz` parameter, else the camera's registered zone, else UTC; with the name it was given by (Foundation
    /// calls UTC "GMT").
    func zone(_ q: FlatDictionary<Substring, Substring>, info: CameraInfo?) throws -> NamedZone {
        if let tz = q.get("tz"), !tz.isEmpty {
            guard let zone = QueryController.timeZone(tz) else {
                throw APIError(.badRequest, "invalid_tz", "unknown time zone '\(tz.prefix(64))'; use an IANA name such as Europe/Moscow")
            }
            return NamedZone(zone: zone, name: tz)
        }
        return NamedZone(info)
    }

    static func date(_ q: FlatDictionary<Substring, Substring>, _ name: String, zone: TimeZone) throws -> Int64? {
        guard let text = q.get(name), !text.isEmpty else { return nil }
        guard let ms = LocalCalendar.startOfDay(text, in: zone) else {
            throw APIError(.badRequest, "invalid_date", "'\(name)' must be a date YYYY-MM-DD, not '\(text.prefix(32))'")
        }
        return ms
    }

    // MARK: Health

    /// `GET /kvfv/{id}/health?from=YYYY-MM-DD&to=YYYY-MM-DD&tz=`: one entry per local day of `[from, to)` up to today
    /// (default: the last 7 days and today).
    func health(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        let q = request.uri.queryParameters
        let info = node.registry?.info(id)
        let named = try zone(q, info: info)
        let zone = named.zone
        let now = node.clock()
        let today = LocalCalendar.startOfDay(LocalCalendar.date(now, in: zone), in: zone) ?? now
        let toMs = try Self.date(q, "to", zone: zone) ?? (today + 36 * 3_600_000)
        let fromMs = try Self.date(q, "from", zone: zone) ?? (today - 7 * 86_400_000)
        guard fromMs < toMs else { throw APIError(.badRequest, "invalid_range", "from must be before to") }
        guard (toMs - fromMs) / 86_400_000 <= Int64(Self.maxDays) else {
            throw APIError(.badRequest, "too_many_days", "at most \(Self.maxDays) days per request")
        }
        let found: [DayHealth]?
        do {
            // `to` is a date: its local midnight ends the range.
            let end = LocalCalendar.startOfDay(LocalCalendar.date(toMs, in: zone), in: zone) ?? toMs
            found = try await queries.health(kvfvId: id, fromMs: fromMs, toMs: end, zone: zone, info: info)
        } catch let error as StoreError {
            throw APIError(error)
        } catch let error as WindowPlanner.PlanError {
            throw APIError(.badRequest, "too_many_days", "the range is too long (\(error))")
        }
        guard let days = found else {
            throw APIError(.notFound, "unknown_kvfv", "no event of camera '\(id)' has been accepted")
        }
        var json = JSONWriter(capacity: 256 + days.count * 400)
        json.raw("{\"kvfv_id\":")
        json.string(id)
        json.raw(",\"tz\":")
        json.string(named.name)
        json.raw(",\"from\":")
        json.string(LocalCalendar.date(fromMs, in: zone))
        json.raw(",\"to\":")
        json.string(LocalCalendar.date(toMs, in: zone))
        json.raw(",\"days\":[")
        for (i, day) in days.enumerated() {
            if i > 0 { json.raw(",") }
            Self.day(day, into: &json)
        }
        json.raw("]}")
        return QueryController.json(json)
    }

    static func day(_ d: DayHealth, into json: inout JSONWriter) {
        json.raw("{\"date\":")
        json.string(d.date)
        json.raw(",\"start\":")
        json.string(Timestamp.format(d.window.startMs))
        json.raw(",\"end\":")
        json.string(Timestamp.format(d.window.endMs))
        json.raw(",\"partial\":")
        json.bool(d.partial)
        json.raw(",\"status\":")
        json.string(d.status)
        json.raw(",\"reasons\":")
        json.strings(d.reasons.map(\.rawValue))
        json.raw(",\"count\":")
        json.number(d.state.count)
        json.raw(",\"expected\":")
        json.number(d.expected)
        json.raw(",\"volume_share\":")
        json.number(d.volumeShare)
        json.raw(",\"rejected\":")
        json.number(d.rejected)
        json.raw(",\"rejected_by_reason\":{")
        for (i, (reason, n)) in d.rejectedByReason.sorted(by: { $0.key.rawValue < $1.key.rawValue }).enumerated() {
            if i > 0 { json.raw(",") }
            json.string(reason.rawValue)
            json.raw(":")
            json.number(n)
        }
        json.raw("},\"rejection_share\":")
        json.number(d.rejectionShare)
        json.raw(",\"distinct_speeds\":")
        json.number(d.state.histogram.binCount)
        json.raw(",\"stddev_speed\":")
        json.number(d.state.standardDeviation)
        json.raw(",\"missing\":")
        json.number(d.missing)
        json.raw(",\"unknown_lane_count\":")
        json.number(d.unknownLaneCount)
        json.raw("}")
    }

    // MARK: Reports

    enum Period { case day, month }

    /// `GET /reports/daily?date=YYYY-MM-DD` and `GET /reports/monthly?month=YYYY-MM` (`tz`, `format=json|csv`).
    func report(_ request: Request, context: some RequestContext, period: Period) async throws -> Response {
        let q = request.uri.queryParameters
        let parameter = period == .day ? "date" : "month"
        guard let text = q.get(parameter), !text.isEmpty else {
            throw APIError(.badRequest, "missing_parameter", "query parameter '\(parameter)' (\(period == .day ? "YYYY-MM-DD" : "YYYY-MM")) is required")
        }
        if let format = q.get("format"), !format.isEmpty, format != "json", format != "csv" {
            throw APIError(.badRequest, "invalid_format", "format must be json or csv, not '\(format.prefix(32))'")
        }
        let queries = try queries
        let fixedZone: NamedZone? = try q.get("tz").flatMap { $0.isEmpty ? nil : try zone(q, info: nil) }
        // Validate the period once, in UTC, before any camera is read.
        guard period == .day ? LocalCalendar.startOfDay(text, in: TimeZone(identifier: "UTC")!) != nil
            : LocalCalendar.month(text, in: TimeZone(identifier: "UTC")!) != nil
        else {
            throw APIError(.badRequest, period == .day ? "invalid_date" : "invalid_month", "'\(parameter)' must be \(period == .day ? "a date YYYY-MM-DD" : "a month YYYY-MM"), not '\(text.prefix(32))'")
        }
        let now = node.clock()
        var ids = Set(queries.view.cameraRows(countsFrom: Bucket.index(ofTimestamp: now), current: Bucket.index(ofTimestamp: now)).map(\.camera.record.kvfvId))
        let registered = Dictionary((node.registry?.all() ?? []).map { ($0.kvfvId, $0) }, uniquingKeysWith: { a, _ in a })
        ids.formUnion(registered.keys)
        var rows: [ReportRow] = []
        do {
            for id in ids.sorted() {
                let info = registered[id]
                let named = fixedZone ?? NamedZone(info)
                let zone = named.zone
                let window: Window
                if period == .day {
                    guard let start = LocalCalendar.startOfDay(text, in: zone),
                        let end = LocalCalendar.startOfDay(LocalCalendar.date(start + 36 * 3_600_000, in: zone), in: zone)
                    else { continue }
                    window = Window(startMs: start, endMs: end)
                } else {
                    guard let month = LocalCalendar.month(text, in: zone) else { continue }
                    window = month
                }
                rows += try await Self.rows(queries, id: id, info: info, window: window, zone: named)
            }
        } catch let error as StoreError {
            throw APIError(error)
        }
        let wantsCSV = q.get("format") == "csv" || (request.headers[.accept]?.contains("text/csv") ?? false)
        if wantsCSV {
            var out = CSV.record(ReportRow.columns)
            for r in rows { out += CSV.record(r.fields) }
            return Response(
                status: .ok,
                headers: [.contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"speedflow-\(period == .day ? "daily" : "monthly")-\(text).csv\""],
                body: .init(byteBuffer: ByteBuffer(string: out)))
        }
        var json = JSONWriter(capacity: 256 + rows.count * 700)
        json.raw("{\"\(parameter)\":")
        json.string(text)
        json.raw(",\"tz\":")
        json.string(fixedZone?.name)
        json.raw(",\"generated_at\":")
        json.string(Timestamp.format(now))
        json.raw(",\"rows\":[")
        for (i, r) in rows.enumerated() {
            if i > 0 { json.raw(",") }
            r.object(into: &json)
        }
        json.raw("]}")
        return QueryController.json(json)
    }

    /// A camera's rows for one period: its totals, then each lane (a registered camera's every lane; otherwise the
    /// lanes with passes, when any pass has a lane), then the unknown lane when it has passes.
    static func rows(_ queries: CameraQueries, id: String, info: CameraInfo?, window: Window, zone: NamedZone) async throws -> [ReportRow] {
        let laneCount = info?.lanes ?? Int(LaneStates.maxKey)
        let lanes = Array(1...laneCount)
        let groups: [LaneGroup] = [.camera] + lanes.map { .lane(UInt8($0)) } + [.unknown(registeredLanes: info?.lanes)]
        let found = try await queries.periodReport(
            kvfvId: id, period: window, groups: groups, limitAt: QueryController.limits(info), zone: zone.zone, info: info)
        let answered = found?.groups
        let days = found?.days ?? []
        let worst = days.compactMap { $0.reasons.first }.min()
        let status = answered == nil ? "down" : (worst?.rawValue ?? "ok")
        let reasons = Set(days.flatMap(\.reasons)).sorted().map(\.rawValue)
        let notOk = days.count { !$0.reasons.isEmpty }
        let empty = WindowReport(window: window, state: BucketState())
        let totals = answered?[0] ?? empty
        var rows = [ReportRow(id: id, info: info, lane: nil, zone: zone, report: totals, status: status, reasons: reasons, daysNotOk: notOk)]
        guard let answered else { return rows }
        let anyKnownLane = answered[1..<(1 + lanes.count)].contains { $0.state.count > 0 }
        for (i, lane) in lanes.enumerated() where info?.lanes != nil || answered[1 + i].state.count > 0 {
            rows.append(ReportRow(id: id, info: info, lane: lane, zone: zone, report: answered[1 + i], status: nil, reasons: [], daysNotOk: nil))
        }
        let unknown = answered[1 + lanes.count]
        if unknown.state.count > 0 && (anyKnownLane || info?.lanes != nil) {
            rows.append(ReportRow(id: id, info: info, lane: 0, zone: zone, report: unknown, status: nil, reasons: [], daysNotOk: nil))
        }
        return rows
    }
}

/// One row of a daily or monthly report: a camera's (or one lane's) period, with the registry's description.
struct ReportRow {
    var id: String
    var info: CameraInfo?
    /// `nil`: the camera's totals; 0: the unknown lane.
    var lane: Int?
    var zone: NamedZone
    var report: WindowReport
    /// The period's health (the camera rows only): the most severe status of its days and every reason seen.
    var status: String?
    var reasons: [String]
    var daysNotOk: Int?

    static let columns = [
        "kvfv_id", "name", "road", "direction", "km", "lane", "time_zone", "start", "end", "volume", "flow_rate", "avg_speed",
        "harmonic_mean_speed", "min_speed", "max_speed", "stddev_speed", "p15_speed", "p50_speed", "p85_speed", "speed_limit",
        "checked_count", "over_limit", "over_limit_share", "over_limit_10", "over_limit_10_share", "over_limit_20",
        "over_limit_20_share", "pace_from", "pace_to", "pace_share", "late_count", "status", "reasons", "days_not_ok",
    ]

    /// The values in `columns` order (`nil`: empty / null).
    var values: [Value] {
        let s = report.state, c = report.compliance, pace = s.histogram.pace()
        return [
            .text(id), .text(info?.name), .text(info?.road), .text(info?.direction), .double(info?.kilometre), .int(lane.map(Int64.init)),
            .text(zone.name), .text(Timestamp.format(report.window.startMs)), .text(Timestamp.format(report.window.endMs)),
            .int(s.count), .double(report.flowRate), .double(s.averageSpeed), .double(s.harmonicMeanSpeed), .double(s.minSpeed),
            .double(s.maxSpeed), .double(s.standardDeviation), .int(s.percentile(15).map(Int64.init)),
            .int(s.percentile(50).map(Int64.init)), .int(s.percentile(85).map(Int64.init)), .int(c?.limit.map(Int64.init)),
            .int(c?.checked), .int(c?.over[0]), .double(c?.share(0)), .int(c?.over[1]), .double(c?.share(1)), .int(c?.over[2]),
            .double(c?.share(2)), .int(pace.map { Int64($0.from) }), .int(pace.map { Int64($0.from + WindowRendering.paceWidth) }),
            .double(pace.map { Double($0.count) / Double(s.count) }), .int(s.lateCount), .text(status),
            .list(lane == nil ? reasons : nil), .int(daysNotOk.map(Int64.init)),
        ]
    }

    enum Value {
        case text(String?), int(Int64?), double(Double?), list([String]?)
    }

    var fields: [String] {
        values.map {
            switch $0 {
            case .text(let v): v ?? ""
            case .int(let v): v.map(String.init) ?? ""
            case .double(let v): v.map { $0.description } ?? ""
            case .list(let v): v?.joined(separator: ";") ?? ""
            }
        }
    }

    func object(into json: inout JSONWriter) {
        json.raw("{")
        for (i, (name, value)) in zip(Self.columns, values).enumerated() {
            if i > 0 { json.raw(",") }
            json.string(name)
            json.raw(":")
            switch value {
            case .text(let v): json.string(v)
            case .int(let v): json.number(v)
            case .double(let v): json.number(v)
            case .list(let v): json.strings(v)
            }
        }
        json.raw("}")
    }
}

/// A time zone and the name it goes by in answers: as asked (`tz`) or registered, `UTC` by default.
struct NamedZone {
    var zone: TimeZone
    var name: String

    init(zone: TimeZone, name: String) {
        self.zone = zone
        self.name = name
    }

    /// The camera's registered zone, else UTC.
    init(_ info: CameraInfo?) {
        if let name = info?.timeZone, let zone = TimeZone(identifier: name) {
            self.init(zone: zone, name: name)
        } else {
            self.init(zone: TimeZone(identifier: "UTC")!, name: "UTC")
        }
    }
}
