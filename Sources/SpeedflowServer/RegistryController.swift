import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SpeedflowAuth
import SpeedflowModel
import SpeedflowRegistry

/// `GET /registry`, `GET|PUT|DELETE /kvfv/{id}/registry`: the camera registry over HTTP. Writes are an
/// administrator action: they go to the registry file under its lock (so the CLI and other nodes lose nothing),
/// this node answers them at once and other nodes within their reload interval. Each write is appended to
/// `audit.log` next to the registry file (actor `credential:<id>`) and logged.
struct RegistryController: Sendable {
    let node: HTTPNode
    let access: AccessControl
    /// The largest `PUT` body.
    static let maxBodyBytes = 64 << 10

    var registry: CameraRegistry {
        get throws {
            guard let r = node.registry else {
                throw node.notServed("keep the camera registry", by: "ask an api node (or serve)")
            }
            return r
        }
    }

    /// Every camera of the registry: JSON `{"cameras":[…]}`, or with `?format=csv` (or `Accept: text/csv`) CSV, or
    /// with `?format=geojson` a GeoJSON FeatureCollection.
    func list(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        let registry = try registry
        let format: RegistryIO.Format
        if let text = request.uri.queryParameters.get("format") {
            guard let f = RegistryIO.Format(rawValue: text) else {
                throw APIError(.badRequest, "invalid_format", "format must be json, csv or geojson, not '\(text.prefix(32))'")
            }
            format = f
        } else if let accept = request.headers[.accept]?.lowercased(), accept.contains("text/csv") {
            format = .csv
        } else if let accept = request.headers[.accept]?.lowercased(), accept.contains("application/geo+json") {
            format = .geojson
        } else {
            format = .json
        }
        let text = RegistryIO.export(registry.all(), format: format, nowMs: node.clock())
        return Response(status: .ok, headers: [.contentType: format.contentType], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func get(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        let registry = try registry
        let id = try Self.kvfvId(context)
        guard let info = registry.info(id) else { throw Self.notRegistered(id) }
        return entry(info)
    }

    /// Adds or replaces the camera of the path with the body's fields (every field: one left out is cleared).
    func put(_ request: Request, context: SpeedflowRequestContext) async throws -> Response {
        let registry = try registry
        let id = try Self.kvfvId(context)
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body_too_large", "a registry entry is at most \(Self.maxBodyBytes) bytes")
        }
        let info = try Self.mapped { () throws(RegistryError) in
            let info = try RegistryJSON.camera(Data(buffer: body), id: id)
            try registry.put(info)
            return info
        }
        audit("registry_put", id, context)
        return entry(registry.info(id) ?? info)
    }

    func delete(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        let registry = try registry
        let id = try Self.kvfvId(context)
        let removed = try Self.mapped { () throws(RegistryError) in try registry.remove(id) }
        guard removed else { throw Self.notRegistered(id) }
        audit("registry_remove", id, context)
        return Response(status: .noContent)
    }

    func entry(_ info: CameraInfo) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: RegistryJSON.object(info, nowMs: node.clock()))))
    }

    /// Recorded in `audit.log` next to the registry file (where the credentials' changes are, by default) and in
    /// the log. A failure to append does not undo the change, which is already in the file: it is logged.
    func audit(_ action: String, _ id: String, _ context: SpeedflowRequestContext) {
        let actor = context.principal.map { "credential:" + $0.credentialId } ?? "anonymous (auth off)"
        context.logger.info(
            "Camera registry changed", metadata: ["registry.action": "\(action)", "registry.kvfv_id": "\(id)", "actor": "\(actor)"])
        guard let path = node.registry?.path else { return }
        do throws(CredentialError) {
            try AuditLog.append(["time": CredentialAdmin.timestamp(), "actor": actor, "action": action, "kvfv": id], nextTo: path)
        } catch {
            context.logger.error("Cannot append to the audit log", metadata: ["reason": "\(error.reason)", "error": "\(error.message)"])
        }
    }

    static func kvfvId(_ context: SpeedflowRequestContext) throws -> String {
        let id = context.parameters.get("id") ?? ""
        guard ValidationPolicy.isValidKvfvId(id) else {
            throw APIError(.badRequest, "invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-]")
        }
        return id
    }

    static func notRegistered(_ id: String) -> APIError {
        APIError(.notFound, "not_registered", "camera \(id) is not in the registry")
    }

    /// Registry errors as HTTP: the file's own problems are the server's (500), everything else the request's (400).
    static func mapped<T>(_ body: () throws(RegistryError) -> T) throws -> T {
        do throws(RegistryError) {
            return try body()
        } catch {
            let status: HTTPResponse.Status =
                switch error.reason {
                case "registry_unreadable", "registry_corrupt", "unsupported_format", "registry_unwritable": .internalServerError
                default: .badRequest
                }
            throw APIError(status, error.reason, error.message)
        }
    }
}
