import Foundation
import Hummingbird
import Logging
import NIOCore
import SpeedflowAuth
import SpeedflowEngine
import SpeedflowModel

/// `POST /events`: decode, validate, hand to the intake, answer once durable.
struct IngestController: Sendable {
    let intake: Intake
    let configuration: ServerConfiguration
    let access: AccessControl

    /// Rejections listed one by one in an answer; beyond them only `rejected_by_reason` counts, so the answer's
    /// size is bounded whatever the body holds (about 50 bytes per listed rejection).
    static let rejectionDetailLimit = 1000
    /// Bodies at least this large are decompressed and decoded on a Dispatch thread, not on the Swift
    /// concurrency pool that also runs every other request (two threads on a 2-core machine).
    static let offloadBytes = 64 << 10

    /// - Parameter principal: the writer; a camera credential's events for cameras it does not cover are
    ///   rejected one by one (`forbidden_kvfv_id`), the rest of the batch is taken.
    func ingest(_ request: Request, context: some RequestContext, principal: Principal?) async throws -> Response {
        let arrivalMs = intake.now
        let gzip = try Self.isGzip(request.headers[values: .contentEncoding])
        let limit = configuration.maxBodyBytes
        // Answer from the header when it already says too much: the body is never read.
        if let declared = request.headers[.contentLength].flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }), declared > limit {
            throw APIError(.contentTooLarge, "body_too_large", "the request body (\(declared) bytes) exceeds \(limit) bytes")
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body_too_large", "the request body exceeds \(limit) bytes")
        }
        let ndjson = request.headers[.contentType]?.lowercased().contains("ndjson") ?? false
        let policy = intake.policy
        let decode: @Sendable () -> Result<EventBatch, APIError> = {
            Self.decode(body, gzip: gzip, ndjson: ndjson, limit: limit, policy: policy, nowMs: arrivalMs)
        }
        var batch: EventBatch
        if body.readableBytes >= Self.offloadBytes {
            batch = try await withCheckedContinuation { continuation in
                DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: decode()) }
            }.get()
        } else {
            batch = try decode().get()
        }
        let outcome = try await take(&batch, principal: principal, arrivalMs: arrivalMs)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: Self.answer(batch, outcome: outcome))))
    }

    /// What every transport does with a decoded batch (`POST /events`, an MQTT PUBLISH): a camera credential's
    /// events for cameras it does not cover are rejected (`forbidden_kvfv_id`), the rest are charged to the
    /// credential's event quota (`429 rate_limited`, nothing stored) and made durable through the intake
    /// (`503 overloaded` / `shutting_down` / `insufficient_storage` / the sink's failure, nothing the client must not resend). Returns
    /// once the batch's events are durable; throws only `APIError`.
    func take(_ batch: inout EventBatch, principal: Principal?, arrivalMs: Int64) async throws -> IngestOutcome {
        if let principal, principal.role == .camera {
            batch.reject(where: { !principal.grants.covers($0.kvfvId) }, reason: .forbiddenKvfvId, field: "kvfv_id", detailLimit: Self.rejectionDetailLimit)
        }
        if !batch.events.isEmpty { try access.charge(principal, .events, cost: Double(batch.events.count)) }
        do {
            return try await intake.ingest(batch, arrivalMs: arrivalMs, writer: principal?.credentialId)
        } catch {
            switch error.code {
            case .overloaded:
                throw APIError(.serviceUnavailable, "overloaded", error.message, retryAfterSeconds: configuration.retryAfterSeconds)
            case .shuttingDown:
                throw APIError(.serviceUnavailable, "shutting_down", error.message, retryAfterSeconds: 5)
            case .insufficientStorage:
                // Space comes back when an operator acts: not a matter of seconds.
                throw APIError(.serviceUnavailable, "insufficient_storage", error.message, retryAfterSeconds: 60)
            default:
                throw APIError(.serviceUnavailable, error.code.description, error.message, retryAfterSeconds: 5)
            }
        }
    }

    /// `Content-Encoding` must be exactly `gzip` or `identity` (case-insensitive, surrounding whitespace
    /// allowed), once: `x-gzip`, `gzip, br` or two header fields are `415`, never a guess.
    static func isGzip(_ values: [String]) throws -> Bool {
        guard !values.isEmpty else { return false }
        let coding = values.count == 1 ? values[0].trimmingCharacters(in: .whitespaces).lowercased() : values.joined(separator: ", ")
        switch coding {
        case "gzip": return true
        case "identity", "": return false
        default:
            throw APIError(
                .unsupportedMediaType, "unsupported_encoding",
                "Content-Encoding '\(coding)' is not supported; send gzip or identity (one coding, not a list)")
        }
    }

    /// Gunzip (every member, bounded), then decode and validate, keeping the first rejections in detail.
    static func decode(
        _ body: ByteBuffer, gzip: Bool, ndjson: Bool, limit: Int, policy: ValidationPolicy, nowMs: Int64
    ) -> Result<EventBatch, APIError> {
        body.withUnsafeReadableBytes { decode($0, gzip: gzip, ndjson: ndjson, limit: limit, policy: policy, nowMs: nowMs) }
    }

    /// The same, from bytes (an MQTT payload).
    static func decode(
        _ body: UnsafeRawBufferPointer, gzip: Bool, ndjson: Bool, limit: Int, policy: ValidationPolicy, nowMs: Int64
    ) -> Result<EventBatch, APIError> {
        var plain: [UInt8]?
        if gzip {
            let result: Result<[UInt8], GzipError>
            do throws(GzipError) {
                result = .success(try Gzip.decompress(body, limit: limit))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let bytes):
                plain = bytes
            case .failure(let error) where error.code == .tooLarge:
                return .failure(APIError(.contentTooLarge, "body_too_large", "the decompressed body exceeds \(limit) bytes"))
            case .failure(let error):
                return .failure(APIError(.badRequest, "invalid_gzip", "the body is not valid gzip: \(error.message)"))
            }
        }
        func run(_ data: Data) -> Result<EventBatch, APIError> {
            do throws(EventBatch.DecodeError) {
                return .success(try EventBatch.decode(
                    data, ndjson: ndjson, policy: policy, nowMs: nowMs, detailLimit: rejectionDetailLimit))
            } catch {
                return .failure(APIError(.badRequest, error.reason, error.message))
            }
        }
        // No copy of the body: `Data` borrows the bytes for the duration of the decode.
        if let plain {
            return plain.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress, buffer.count > 0 else { return run(Data()) }
                return run(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: buffer.count, deallocator: .none))
            }
        }
        guard let base = body.baseAddress, body.count > 0 else { return run(Data()) }
        return run(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: body.count, deallocator: .none))
    }

    /// `{"accepted":…,"duplicates":…,"rejected":[first 1000],"rejected_by_reason":{…},"rejected_truncated":…}`.
    static func answer(_ batch: EventBatch, outcome: IngestOutcome) -> [UInt8] {
        var json = JSONWriter(capacity: 160 + batch.rejections.count * 48)
        json.raw("{\"accepted\":")
        json.number(outcome.accepted)
        json.raw(",\"duplicates\":")
        json.number(outcome.duplicates)
        json.raw(",\"rejected\":[")
        for (i, r) in batch.rejections.enumerated() {
            if i > 0 { json.raw(",") }
            json.raw("{\"index\":")
            json.number(r.index)
            json.raw(",\"reason\":")
            json.string(r.reason.rawValue)
            if let field = r.field {
                json.raw(",\"field\":")
                json.string(field)
            }
            json.raw("}")
        }
        json.raw("],\"rejected_by_reason\":")
        json.reasonCounts(batch.rejectedByReason)
        json.raw(",\"rejected_truncated\":")
        json.raw(batch.rejectionsTruncated ? "true" : "false")
        json.raw("}")
        return json.bytes
    }
}
