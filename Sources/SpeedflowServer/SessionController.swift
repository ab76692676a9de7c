import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import SpeedflowAuth
import Synchronization

/// The dashboard's sign-in sessions, in memory: a browser signs in once with a reader or admin token and then
/// holds an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS), so the token stays out of URLs and
/// scripts, and `EventSource` streams (which cannot send `Authorization`) are authenticated too. A session
/// lasts `lifetimeSeconds`, ends with its credential's revocation, and is kept only by its SHA-256. Sessions
/// do not survive a restart (sign in again).
public final class SessionStore: Sendable {
    public static let cookieName = "speedflow_session"
    public let lifetimeSeconds: Int
    public let maxSessions: Int
    private struct Session {
        var credentialId: String
        var expires: Date
    }
    private let sessions = Mutex<[String: Session]>([:])

    public init(lifetimeSeconds: Int = 12 * 3600, maxSessions: Int = 10_000) {
        self.lifetimeSeconds = lifetimeSeconds
        self.maxSessions = maxSessions
    }

    /// A new session for `credentialId`: the cookie value.
    func open(for credentialId: String) -> String {
        let value = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let now = Date()
        sessions.withLock { sessions in
            if sessions.count >= maxSessions {
                sessions = sessions.filter { $0.value.expires > now }
                if sessions.count >= maxSessions, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires })?.key {
                    sessions[oldest] = nil
                }
            }
            sessions[Self.key(value)] = Session(credentialId: credentialId, expires: now.addingTimeInterval(Double(lifetimeSeconds)))
        }
        return value
    }

    func close(_ value: String) { _ = sessions.withLock { $0.removeValue(forKey: Self.key(value)) } }

    /// The principal of a live session whose credential is still active.
    func principal(_ value: String, credentials: CredentialStore) -> Principal? {
        let key = Self.key(value)
        let session = sessions.withLock { sessions -> Session? in
            guard let s = sessions[key] else { return nil }
            if s.expires <= Date() {
                sessions[key] = nil
                return nil
            }
            return s
        }
        return session.flatMap { credentials.principal(id: $0.credentialId) }
    }

    public var count: Int { sessions.withLock { $0.count } }

    private static func key(_ value: String) -> String {
        SHA256.hash(data: Array(value.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The session cookie's value in a request's `Cookie` headers.
    static func cookie(in headers: HTTPFields) -> String? {
        for field in headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == cookieName {
                    return kv[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }
}

/// `GET|POST|DELETE /session`: whether auth is on and who is signed in; sign in with a token; sign out.
struct SessionController: Sendable {
    let access: AccessControl

    func current(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        guard access.mode == .required else { return Self.json(["auth": "off"]) }
        // Not signed in is an answer, not an error: the dashboard asks this first.
        guard let principal = context.principal else { return Self.json(["auth": "required"]) }
        return Self.json(["auth": "required", "credential": principal.credentialId, "role": principal.role.rawValue])
    }

    func signIn(_ request: Request, context: SpeedflowRequestContext) async throws -> Response {
        guard access.mode == .required, let credentials = access.credentials else { return Self.json(["auth": "off"]) }
        var token = request.headers[.authorization].flatMap(AccessControl.bearer)
        if token == nil {
            var request = request
            let body = try await request.collectBody(upTo: 4096)
            struct SignIn: Decodable { var token: String }
            token = try? JSONDecoder().decode(SignIn.self, from: Data(buffer: body)).token
        }
        guard let token, let principal = credentials.authenticate(token) else {
            let address = AccessControl.clientAddress(context)
            try access.checkFailedAttempts(address)
            access.recordFailedAttempt(address)
            throw APIError(.unauthorized, "unauthorized", "the token is not valid (unknown, revoked or malformed)")
        }
        guard principal.role.canRead else {
            throw APIError(.forbidden, "forbidden", "a camera credential cannot sign in to the dashboard; use a reader or admin token")
        }
        let value = access.sessions.open(for: principal.credentialId)
        var response = Self.json(["auth": "required", "credential": principal.credentialId, "role": principal.role.rawValue])
        response.headers[.setCookie] = cookie(value, maxAge: access.sessions.lifetimeSeconds)
        return response
    }

    func signOut(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        if let value = SessionStore.cookie(in: request.headers) { access.sessions.close(value) }
        var response = Response(status: .noContent)
        response.headers[.setCookie] = cookie("", maxAge: 0)
        return response
    }

    func cookie(_ value: String, maxAge: Int) -> String {
        "\(SessionStore.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (access.secureCookies ? "; Secure" : "")
    }

    static func json(_ fields: [String: String]) -> Response {
        var json = JSONWriter()
        json.raw("{")
        for (i, key) in fields.keys.sorted().enumerated() {
            if i > 0 { json.raw(",") }
            json.string(key)
            json.raw(":")
            json.string(fields[key]!)
        }
        json.raw("}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}

/// `/admin/credentials`: the `speedflow token` commands over HTTP, for admin credentials. Changes go to the
/// same credentials file and audit log (actor `credential:<id>`), and this node reloads at once; other nodes
/// within their reload interval.
struct AdminController: Sendable {
    let access: AccessControl

    struct CreateRequest: Decodable {
        var role: String
        var kvfv: [String]?
        var name: String?
        var requests_per_second: Double?
        var events_per_second: Double?
    }

    struct CredentialView: Encodable {
        var id: String
        var role: String
        var kvfv: [String]
        var name: String?
        var created_at: String
        var created_by: String
        var revoked_at: String?
        var revoked_by: String?
        var requests_per_second: Double?
        var events_per_second: Double?
        var token: String?

        init(_ r: CredentialRecord, token: String? = nil) {
            id = r.id
            role = r.role.rawValue
            kvfv = r.kvfv.patterns
            name = r.name
            created_at = r.createdAt
            created_by = r.createdBy
            revoked_at = r.revokedAt
            revoked_by = r.revokedBy
            requests_per_second = r.requestsPerSecond
            events_per_second = r.eventsPerSecond
            self.token = token
        }
    }

    func store() throws -> CredentialStore {
        guard let credentials = access.credentials else {
            throw APIError(.notFound, "auth_off", "this node checks no credentials (--auth off); manage them with `speedflow token`")
        }
        return credentials
    }

    func actor(_ context: SpeedflowRequestContext) -> String { "credential:" + (context.principal?.credentialId ?? "unknown") }

    func list(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        let path = try store().path
        let records = try Self.mapped { () throws(CredentialError) in try CredentialAdmin.list(at: path) }
        return try Self.encode(["credentials": records.map { CredentialView($0) }], status: .ok)
    }

    func create(_ request: Request, context: SpeedflowRequestContext) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 << 10)
        guard let create = try? JSONDecoder().decode(CreateRequest.self, from: Data(buffer: body)) else {
            throw APIError(.badRequest, "invalid_body", "send {\"role\":\"camera|reader|admin\",\"kvfv\":[\"KV00001\",\"KV01*\"],\"name\":\"…\"}")
        }
        guard let role = Role(rawValue: create.role) else {
            throw APIError(.badRequest, "invalid_role", "role must be camera, reader or admin, not '\(create.role)'")
        }
        let credentials = try store()
        let (record, token) = try Self.mapped { () throws(CredentialError) in
            try CredentialAdmin.create(
                at: credentials.path, role: role, kvfv: create.kvfv ?? [], name: create.name,
                limits: RateLimits(requestsPerSecond: create.requests_per_second, eventsPerSecond: create.events_per_second), actor: actor(context))
        }
        try? credentials.reloadIfChanged()
        var response = try Self.encode(CredentialView(record, token: token), status: .created)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    func revoke(_ request: Request, context: SpeedflowRequestContext) throws -> Response {
        let credentials = try store()
        let id = context.parameters.get("id") ?? ""
        // Locking oneself out over HTTP is a mistake, not an operation: another admin or the CLI can do it.
        if id == context.principal?.credentialId {
            throw APIError(
                .conflict, "cannot_revoke_self", "a credential cannot revoke itself over the API; use another admin token or `speedflow token revoke`")
        }
        let record = try Self.mapped { () throws(CredentialError) in try CredentialAdmin.revoke(at: credentials.path, id: id, actor: actor(context)) }
        try? credentials.reloadIfChanged()
        return try Self.encode(CredentialView(record), status: .ok)
    }

    static func mapped<T>(_ body: () throws(CredentialError) -> T) throws -> T {
        do throws(CredentialError) {
            return try body()
        } catch {
            let status: HTTPResponse.Status =
                switch error.reason {
                case "unknown_credential": .notFound
                case "invalid_kvfv_pattern", "missing_kvfv", "unexpected_kvfv", "invalid_name", "invalid_limit": .badRequest
                default: .internalServerError
                }
            throw APIError(status, error.reason, error.message)
        }
    }

    static func encode(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(data: try encoder.encode(value))))
    }
}
