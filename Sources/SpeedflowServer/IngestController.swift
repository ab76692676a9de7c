import CompressNIO
import Foundation
import Hummingbird
import Logging
import NIOCore
import SpeedflowEngine
import SpeedflowModel

/// `POST /events`: decode, validate, hand to the engine, answer once durable.
struct IngestController: Sendable {
    let engine: Engine
    let configuration: ServerConfiguration

    func ingest(_ request: Request, context: some RequestContext) async throws -> Response {
        let arrivalMs = engine.now
        var request = request
        var body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body_too_large", "the request body exceeds \(configuration.maxBodyBytes) bytes")
        }
        if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
            guard encoding.contains("gzip") else {
                throw APIError(.unsupportedMediaType, "unsupported_encoding", "Content-Encoding '\(encoding)' is not supported; use gzip")
            }
            do {
                body = try body.decompress(with: .gzip(), maxSize: configuration.maxBodyBytes)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw APIError(.contentTooLarge, "body_too_large", "the decompressed body exceeds \(configuration.maxBodyBytes) bytes")
            } catch {
                throw APIError(.badRequest, "invalid_gzip", "the body is not valid gzip: \(error)")
            }
        }
        let ndjson = request.headers[.contentType]?.lowercased().contains("ndjson") ?? false
        let batch: EventBatch
        do {
            batch = try EventBatch.decode(
                Data(body.readableBytesView), ndjson: ndjson, policy: engine.configuration.policy, nowMs: arrivalMs)
        } catch {
            throw APIError(.badRequest, error.reason, error.message)
        }
        let outcome: IngestOutcome
        do {
            outcome = try await engine.ingest(batch.events, arrivalMs: arrivalMs)
        } catch {
            switch error.code {
            case .overloaded:
                throw APIError(.serviceUnavailable, "overloaded", error.message, retryAfterSeconds: configuration.retryAfterSeconds)
            case .shuttingDown:
                throw APIError(.serviceUnavailable, "shutting_down", error.message, retryAfterSeconds: 5)
            default:
                throw APIError(.serviceUnavailable, error.code.description, error.message, retryAfterSeconds: 5)
            }
        }

        // Counted only once the request is answered 200: a 503'd request will be retried and counted then.
        engine.stats.record(rejections: batch.rejections, nowMs: arrivalMs)
        engine.noteRejections(batch.rejections.compactMap { r in r.kvfvId.map { ($0, r.reason) } })

        var json = JSONWriter(capacity: 64 + batch.rejections.count * 48)
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
        json.raw("]}")
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
