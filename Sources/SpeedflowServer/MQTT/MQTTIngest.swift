import Foundation
import SpeedflowAuth
import SpeedflowMQTT
import SpeedflowModel

/// What one PUBLISH's payload goes through: exactly what `POST /events` does with a body (same decoding,
/// validation, reason codes, quotas, statistics and metrics, through `IngestController.take`), plus the topic's
/// rule: every event's `kvfv_id` must be the topic's camera (else `topic_mismatch`).
struct MQTTIngest: Sendable {
    let controller: IngestController

    /// How long a PUBLISH may wait, in all, for its credential's quota or the intake's capacity (`429`/`503
    /// overloaded` over HTTP) before the connection is closed instead: the client is not read meanwhile, which is
    /// MQTT's backpressure.
    static let maxRetryWaitSeconds = 30

    struct Job: Sendable {
        var topic: String
        var packetId: UInt16?
        var payload: [UInt8]
        /// MQTT 5 content type: `application/gzip` (a gzip payload), one containing `ndjson` (NDJSON).
        var contentType: String?
        var principal: Principal?
    }

    enum Outcome: Sendable, Equatable {
        /// Done with for good, durable or refused: acknowledge (MQTT 5 with `reasonCode`), and send `report` on
        /// the camera's rejections topic if the connection subscribed to it.
        case acknowledge(reasonCode: UInt8, reasonString: String?, camera: String?, report: [UInt8]?)
        /// Nothing of it may be assumed stored: close the connection (MQTT 5 DISCONNECT with `reasonCode`) so the
        /// client sends it again on its next connection.
        case disconnect(reasonCode: UInt8, message: String)
    }

    func process(_ job: Job) async -> Outcome {
        let intake = controller.intake
        let arrivalMs = intake.now
        guard let route = MQTTTopics.events(job.topic) else {
            return .acknowledge(
                reasonCode: 0x90, reasonString: "publish events to \(MQTTTopics.eventsPrefix){kvfv_id}[/gzip]", camera: nil, report: nil)
        }
        let type = job.contentType?.lowercased() ?? ""
        let gzip = route.gzip || type == "application/gzip"
        let ndjson = type.contains("ndjson")
        let limit = controller.configuration.maxBodyBytes
        let policy = intake.policy
        let payload = job.payload
        let decode: @Sendable () -> Result<EventBatch, APIError> = {
            payload.withUnsafeBytes {
                IngestController.decode($0, gzip: gzip, ndjson: ndjson, limit: limit, policy: policy, nowMs: arrivalMs)
            }
        }
        let decoded: Result<EventBatch, APIError>
        if payload.count >= IngestController.offloadBytes {
            decoded = await withCheckedContinuation { continuation in
                DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: decode()) }
            }
        } else {
            decoded = decode()
        }
        var batch: EventBatch
        switch decoded {
        case .success(let b):
            batch = b
        case .failure(let error):
            // A payload unusable as a whole (HTTP 400/413): nothing stored, and sending it again cannot help.
            return .acknowledge(
                reasonCode: 0x99, reasonString: error.message, camera: route.kvfvId, report: Self.report(packetId: job.packetId, error: error))
        }
        batch.reject(where: { $0.kvfvId != route.kvfvId }, reason: .topicMismatch, field: "kvfv_id", detailLimit: IngestController.rejectionDetailLimit)
        var waited = 0
        while true {
            do {
                let outcome = try await controller.take(&batch, principal: job.principal, arrivalMs: arrivalMs)
                let forbidden = batch.elementCount > 0 && batch.rejectedByReason[.forbiddenKvfvId] == batch.elementCount
                return .acknowledge(
                    reasonCode: forbidden ? 0x87 : 0x00,
                    reasonString: forbidden ? "this credential may not write for camera \(route.kvfvId)" : nil, camera: route.kvfvId,
                    report: batch.rejectedCount > 0 ? Self.report(packetId: job.packetId, batch: batch, outcome: outcome) : nil)
            } catch let error as APIError {
                let wait = max(1, error.retryAfterSeconds ?? 1)
                if (error.reason == "rate_limited" || error.reason == "overloaded") && waited + wait <= Self.maxRetryWaitSeconds {
                    try? await Task.sleep(for: .seconds(wait))
                    waited += wait
                    continue
                }
                let code: UInt8 =
                    switch error.reason {
                    case "rate_limited": 0x97
                    case "overloaded": 0x89
                    case "shutting_down": 0x8B
                    // The data directory's disk is nearly full: an administrative limit (Quota exceeded); the
                    // PUBLISH is not acknowledged, so the client sends it again on its next connection.
                    case "insufficient_storage": 0x97
                    default: 0x80
                    }
                return .disconnect(reasonCode: code, message: "\(error.reason): \(error.message)")
            } catch {
                return .disconnect(reasonCode: 0x80, message: "\(error)")
            }
        }
    }

    /// `{"packet_id":…,` and then what `POST /events` answers (`accepted`, `duplicates`, `rejected`, …).
    static func report(packetId: UInt16?, batch: EventBatch, outcome: IngestOutcome) -> [UInt8] {
        var json = JSONWriter(capacity: 64)
        json.raw("{\"packet_id\":")
        json.number(packetId.map(Int.init))
        json.raw(",")
        return json.bytes + IngestController.answer(batch, outcome: outcome).dropFirst()
    }

    /// `{"packet_id":…,"reason":…,"message":…}`: a payload refused as a whole, as `POST /events` answers `400`.
    static func report(packetId: UInt16?, error: APIError) -> [UInt8] {
        var json = JSONWriter(capacity: 128)
        json.raw("{\"packet_id\":")
        json.number(packetId.map(Int.init))
        json.raw(",\"reason\":")
        json.string(error.reason)
        json.raw(",\"message\":")
        json.string(error.message)
        json.raw("}")
        return json.bytes
    }
}
