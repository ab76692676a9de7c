import Foundation
import Hummingbird
import NIOCore
import SpeedflowAggregation
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowModel
import SpeedflowStore

/// Completeness of cameras that number their passes (`seq`): `POST /kvfv/{id}/status` (what the camera has
/// recorded, delivered or not) and `GET /kvfv/{id}/gaps` (what has not arrived).
struct SequenceController: Sendable {
    let node: HTTPNode
    let intake: Intake?

    /// A report is one small object; anything bigger is not one.
    static let maxReportBytes = 4096
    /// Gaps listed per answer at most (the rest is summed in `missing_total`, and `truncated` says so).
    static let maxGaps = 10_000

    struct ReportBody: Decodable {
        var seq: Int64?
        var seqEpoch: Int64?
        var timestamp: String?

        enum CodingKeys: String, CodingKey {
            case seq, seqEpoch = "seq_epoch", timestamp
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            do { seq = try c.decodeIfPresent(Int64.self, forKey: .seq) } catch {
                throw APIError(.badRequest, "invalid_seq", "seq must be an integer from 0 to 2^63 - 1")
            }
            do { seqEpoch = try c.decodeIfPresent(Int64.self, forKey: .seqEpoch) } catch {
                throw APIError(.badRequest, "invalid_seq", "seq_epoch must be an integer from 0 to \(ValidationPolicy.maxSeqEpoch)")
            }
            do { timestamp = try c.decodeIfPresent(String.self, forKey: .timestamp) } catch {
                throw APIError(.badRequest, "invalid_timestamp", "timestamp must be an RFC 3339 date-time string")
            }
        }
    }

    static func kvfvId(_ context: some RequestContext) throws -> String {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        return id
    }

    /// `POST /kvfv/{id}/status` `{"seq": N, "seq_epoch": E, "timestamp": T}`: the camera has recorded passes up to
    /// number N (of counter epoch E, default 0), the newest at T. Durable in the log when answered.
    func report(_ request: Request, context: some RequestContext, principal: Principal?) async throws -> Response {
        guard let intake else { throw node.notServed("take camera reports", by: "send them to an ingest node") }
        let id = try Self.kvfvId(context)
        if let principal, !principal.mayWrite(id) {
            throw APIError(.forbidden, "forbidden_kvfv_id", "this credential may not report for camera '\(id)'")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxReportBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body_too_large", "a status report is at most \(Self.maxReportBytes) bytes")
        }
        let parsed: ReportBody
        do {
            parsed = try JSONDecoder().decode(ReportBody.self, from: Data(buffer: body))
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.badRequest, "malformed_json", "the body must be a JSON object {\"seq\": …, \"timestamp\": …}")
        }
        guard let seq = parsed.seq, let text = parsed.timestamp else {
            throw APIError(.badRequest, "missing_field", "seq and timestamp are required")
        }
        guard seq >= 0, (0...ValidationPolicy.maxSeqEpoch).contains(parsed.seqEpoch ?? 0) else {
            throw APIError(
                .badRequest, "invalid_seq",
                "seq must be an integer from 0 to 2^63 - 1 and seq_epoch one from 0 to \(ValidationPolicy.maxSeqEpoch)")
        }
        guard let timeMs = Timestamp.parse(text) else {
            throw APIError(.badRequest, "invalid_timestamp", "timestamp must be an RFC 3339 date-time, e.g. 2025-04-05T10:00:00Z")
        }
        let arrivalMs = intake.now
        if timeMs > arrivalMs + intake.policy.maxClockSkewMs {
            throw APIError(.badRequest, "in_future", "timestamp is ahead of the server clock by more than the allowed skew")
        }
        let report = CameraReport(kvfvId: id, epoch: parsed.seqEpoch ?? 0, seq: seq, timeMs: timeMs)
        do {
            try await intake.report(report, arrivalMs: arrivalMs, writer: principal?.credentialId)
        } catch {
            throw APIError(.serviceUnavailable, error.code.description, error.message, retryAfterSeconds: 5)
        }
        var json = JSONWriter(capacity: 128)
        json.raw("{\"kvfv_id\":")
        json.string(id)
        json.raw(",\"seq_epoch\":")
        json.number(report.epoch)
        json.raw(",\"seq\":")
        json.number(report.seq)
        json.raw(",\"timestamp\":")
        json.string(Timestamp.format(timeMs))
        json.raw("}")
        return QueryController.json(json)
    }

    /// `GET /kvfv/{id}/gaps?from=&to=`: the missing sequence ranges whose passes may lie in `[from, to)` (every
    /// one without a range), each with the times of its received neighbours, and the camera's backlog.
    func gaps(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let queries = node.queries else { throw node.notServed("answer queries", by: "query an api node (or serve)") }
        let id = try Self.kvfvId(context)
        let q = request.uri.queryParameters
        let fromMs = try q.get("from").map { try QueryController.time($0, name: "from") } ?? Int64.min
        let toMs = try q.get("to").map { try QueryController.time($0, name: "to") } ?? Int64.max
        guard fromMs < toMs else { throw APIError(.badRequest, "invalid_range", "from must be before to") }
        let found: CameraSequence?
        do {
            found = try queries.sequence(kvfvId: id)
        } catch let error as StoreError {
            throw APIError(error)
        }
        guard let sequence = found else {
            throw APIError(.notFound, "unknown_kvfv", "no event of camera '\(id)' has been accepted")
        }
        let gaps = sequence.ledger.gaps.filter { $0.overlaps(fromMs: fromMs, toMs: toMs) }
        var json = JSONWriter(capacity: 256 + min(gaps.count, Self.maxGaps) * 140)
        json.raw("{\"kvfv_id\":")
        json.string(id)
        json.raw(",\"sequenced\":")
        json.raw(sequence.ledger.isEmpty && sequence.report == nil ? "false" : "true")
        json.raw(",\"received\":")
        json.number(sequence.ledger.receivedCount)
        json.raw(",\"missing_total\":")
        json.number(gaps.map(\.count).saturatingSum())
        json.raw(",\"truncated\":")
        json.raw(gaps.count > Self.maxGaps ? "true" : "false")
        json.raw(",\"gaps\":[")
        for (i, g) in gaps.prefix(Self.maxGaps).enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("{\"seq_epoch\":")
            json.number(g.epoch)
            json.raw(",\"first_seq\":")
            json.number(g.first)
            json.raw(",\"last_seq\":")
            json.number(g.last)
            json.raw(",\"count\":")
            json.number(g.count)
            json.raw(",\"after\":")
            json.string(Timestamp.format(g.afterMs))
            json.raw(",\"before\":")
            json.string(Timestamp.format(g.beforeMs))
            json.raw("}")
        }
        json.raw("],\"backlog\":")
        Self.backlog(sequence, into: &json)
        json.raw("}")
        return QueryController.json(json)
    }

    /// The camera's backlog as JSON: what it reported and how much of that has not arrived (`null`: no report).
    static func backlog(_ sequence: CameraSequence, into json: inout JSONWriter) {
        guard let r = sequence.report else { return json.raw("null") }
        let b = sequence.backlog
        json.raw("{\"reported_seq\":")
        json.number(r.seq)
        json.raw(",\"seq_epoch\":")
        json.number(r.epoch)
        json.raw(",\"reported_time\":")
        json.string(Timestamp.format(r.timeMs))
        json.raw(",\"reported_at\":")
        json.string(sequence.reportArrivalMs.map(Timestamp.format))
        json.raw(",\"events\":")
        json.number(b?.events ?? 0)
        json.raw(",\"since\":")
        json.string(b?.sinceMs.map(Timestamp.format))
        json.raw("}")
    }
}
