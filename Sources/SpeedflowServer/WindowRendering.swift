import Hummingbird
import NIOCore
import SpeedflowAggregation
import SpeedflowEngine
import SpeedflowModel

/// How one window of `GET /kvfv/{id}/avg-speed` is written, in JSON and CSV: the answer and the live stream
/// (`/avg-speed/stream`) render windows with these functions, so both always carry the same fields.
enum WindowRendering {
    /// One window as a JSON object.
    static func object(_ report: WindowReport, into json: inout JSONWriter) {
        let w = report.window, s = report.state
        json.raw("{\"start\":")
        json.timestamp(w.startMs)
        json.raw(",\"end\":")
        json.timestamp(w.endMs)
        json.raw(",\"count\":")
        json.number(s.count)
        json.raw(",\"avg_speed\":")
        json.number(s.averageSpeed)
        json.raw(",\"harmonic_mean_speed\":")
        json.number(s.harmonicMeanSpeed)
        json.raw(",\"min_speed\":")
        json.number(s.minSpeed)
        json.raw(",\"max_speed\":")
        json.number(s.maxSpeed)
        json.raw(",\"stddev_speed\":")
        json.number(s.standardDeviation)
        json.raw(",\"p15_speed\":")
        json.number(s.percentile(15))
        json.raw(",\"p50_speed\":")
        json.number(s.percentile(50))
        json.raw(",\"p85_speed\":")
        json.number(s.percentile(85))
        json.raw(",\"late_count\":")
        json.number(s.lateCount)
        json.raw(",\"revised_at\":")
        json.timestamp(s.revisedAtMs == 0 ? nil : s.revisedAtMs)
        json.raw(",\"complete\":")
        json.bool(report.completeness?.complete)
        json.raw(",\"missing\":")
        json.number(report.completeness?.missing)
        json.raw(",\"flow_rate\":")
        json.number(report.flowRate)
        let pace = s.histogram.pace()
        json.raw(",\"pace_from\":")
        json.number(pace?.from)
        json.raw(",\"pace_to\":")
        json.number(pace.map { $0.from + paceWidth })
        json.raw(",\"pace_share\":")
        json.number(pace.map { Double($0.count) / Double(s.count) })
        let c = report.compliance
        json.raw(",\"speed_limit\":")
        json.number(c?.limit)
        json.raw(",\"checked_count\":")
        json.number(c?.checked)
        for (i, keys) in complianceKeys.enumerated() {
            json.raw(keys.count)
            json.number(c?.over[i])
            json.raw(keys.share)
            json.number(c?.share(i))
        }
        json.raw("}")
    }

    /// The pace is the 10 km/h band with the most vehicles.
    static let paceWidth = 10
    /// `Compliance.over`'s fields: over the limit, by more than 10 and by more than 20 km/h.
    static let complianceNames = ["over_limit", "over_limit_10", "over_limit_20"]
    /// Their JSON keys, written as they are.
    static let complianceKeys: [(count: StaticString, share: StaticString)] = [
        (",\"over_limit\":", ",\"over_limit_share\":"),
        (",\"over_limit_10\":", ",\"over_limit_10_share\":"),
        (",\"over_limit_20\":", ",\"over_limit_20_share\":"),
    ]

    static let csvHeader =
        "start,end,count,avg_speed,harmonic_mean_speed,min_speed,max_speed,stddev_speed,p15_speed,p50_speed,p85_speed,late_count,revised_at,complete,missing,"
        + "flow_rate,pace_from,pace_to,pace_share,speed_limit,checked_count,over_limit,over_limit_share,over_limit_10,over_limit_10_share,over_limit_20,over_limit_20_share,lane\n"

    /// One window as a CSV line (with its newline), in `csvHeader`'s columns; `lane` empty for the camera's totals.
    static func csvLine(_ report: WindowReport, lane: Int? = nil, into out: inout String) {
        let w = report.window, s = report.state
        func d(_ v: Double?) -> String { v.map { $0.description } ?? "" }
        func i(_ v: Int?) -> String { v.map(String.init) ?? "" }
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "" }
        out += "\(Timestamp.format(w.startMs)),\(Timestamp.format(w.endMs)),\(s.count),\(d(s.averageSpeed)),"
        out += "\(d(s.harmonicMeanSpeed)),\(d(s.minSpeed)),\(d(s.maxSpeed)),\(d(s.standardDeviation)),"
        out += "\(i(s.percentile(15))),\(i(s.percentile(50))),\(i(s.percentile(85))),\(s.lateCount),"
        out += "\(s.revisedAtMs == 0 ? "" : Timestamp.format(s.revisedAtMs)),"
        out += "\(report.completeness.map { $0.complete ? "true" : "false" } ?? ""),\(report.completeness.map { String($0.missing) } ?? ""),"
        let pace = s.histogram.pace()
        out += "\(report.flowRate),\(i(pace?.from)),\(i(pace.map { $0.from + paceWidth })),\(d(pace.map { Double($0.count) / Double(s.count) })),"
        let c = report.compliance
        out += "\(i(c?.limit)),\(n(c?.checked))"
        for k in complianceNames.indices { out += ",\(n(c?.over[k])),\(d(c?.share(k)))" }
        out += ",\(i(lane))\n"
    }

    static func csv(_ reports: [WindowReport], lanes: [(lane: Int, reports: [WindowReport])] = []) -> Response {
        var out = csvHeader
        out.reserveCapacity((reports.count + lanes.count * reports.count) * 260)
        for r in reports { csvLine(r, into: &out) }
        for group in lanes {
            for r in group.reports { csvLine(r, lane: group.lane, into: &out) }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: out)))
    }
}
