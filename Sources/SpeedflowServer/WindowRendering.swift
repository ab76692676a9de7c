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
        json.string(Timestamp.format(w.startMs))
        json.raw(",\"end\":")
        json.string(Timestamp.format(w.endMs))
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
        json.string(s.revisedAtMs == 0 ? nil : Timestamp.format(s.revisedAtMs))
        json.raw(",\"complete\":")
        json.bool(report.completeness?.complete)
        json.raw(",\"missing\":")
        json.number(report.completeness?.missing)
        json.raw("}")
    }

    static let csvHeader =
        "start,end,count,avg_speed,harmonic_mean_speed,min_speed,max_speed,stddev_speed,p15_speed,p50_speed,p85_speed,late_count,revised_at,complete,missing\n"

    /// One window as a CSV line (with its newline), in `csvHeader`'s columns.
    static func csvLine(_ report: WindowReport, into out: inout String) {
        let w = report.window, s = report.state
        func d(_ v: Double?) -> String { v.map { $0.description } ?? "" }
        func i(_ v: Int?) -> String { v.map(String.init) ?? "" }
        out += "\(Timestamp.format(w.startMs)),\(Timestamp.format(w.endMs)),\(s.count),\(d(s.averageSpeed)),"
        out += "\(d(s.harmonicMeanSpeed)),\(d(s.minSpeed)),\(d(s.maxSpeed)),\(d(s.standardDeviation)),"
        out += "\(i(s.percentile(15))),\(i(s.percentile(50))),\(i(s.percentile(85))),\(s.lateCount),"
        out += "\(s.revisedAtMs == 0 ? "" : Timestamp.format(s.revisedAtMs)),"
        out += "\(report.completeness.map { $0.complete ? "true" : "false" } ?? ""),\(report.completeness.map { String($0.missing) } ?? "")\n"
    }

    static func csv(_ reports: [WindowReport]) -> Response {
        var out = csvHeader
        out.reserveCapacity(reports.count * 180)
        for r in reports { csvLine(r, into: &out) }
        return Response(
            status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: out)))
    }
}
