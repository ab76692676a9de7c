import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import SpeedflowAuth
import Synchronization

/// Whether requests must carry a credential.
public enum AuthMode: String, Sendable, CaseIterable {
    /// Every route but `/health`, `/openapi.yaml` and the dashboard's static files needs a credential.
    case required
    /// No credential is checked: anyone who reaches the port may write for any camera and read everything.
    case off

    /// `required` unless `host` is a loopback address.
    public static func defaultMode(host: String) -> AuthMode { isLoopback(host) ? .off : .required }

    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }
}

/// Who may do what on an HTTP node: the mode, the credentials it checks, the dashboard's sessions, and which
/// other origins (CORS) may write from a browser.
public struct AccessControl: Sendable {
    public var mode: AuthMode
    public var credentials: CredentialStore?
    public var sessions: SessionStore
    /// `Secure` on the session cookie (set under TLS).
    public var secureCookies: Bool
    /// Browser origins (`https://ops.example.org`) allowed to write cross-site. Empty: none.
    public var allowedOrigins: Set<String>
    /// Rate limits per credential (requests, events) and failed authentications per client address.
    public var quotas: Quotas
    /// Mutual TLS is on: a connection's verified client certificate identifies a camera (its SAN URIs name the
    /// cameras), as a camera token would. A bearer token on the request wins over it.
    public var clientCertificates: Bool = false

    public init(
        mode: AuthMode, credentials: CredentialStore?, sessions: SessionStore = SessionStore(), secureCookies: Bool = false,
        allowedOrigins: Set<String> = [], quotas: Quotas = Quotas()
    ) {
        self.mode = mode
        self.credentials = credentials
        self.sessions = sessions
        self.secureCookies = secureCookies
        self.allowedOrigins = allowedOrigins
        self.quotas = quotas
    }

    /// `429` for a client address with too many failed authentications, before its next attempt is checked.
    func checkFailedAttempts(_ address: String) throws {
        if let wait = quotas.allows(.failedAuth, key: address, rate: quotas.limits.failedAuthPerSecond) {
            throw APIError(
                .tooManyRequests, "too_many_failed_attempts", "too many failed authentications from this address; retry in \(wait) s",
                retryAfterSeconds: wait)
        }
    }

    func recordFailedAttempt(_ address: String) {
        _ = quotas.take(.failedAuth, key: address, rate: quotas.limits.failedAuthPerSecond)
    }

    /// Takes `cost` from the principal's bucket of `kind` (admins are not limited): `429 rate_limited` when empty.
    func charge(_ principal: Principal?, _ kind: Quotas.Kind, cost: Double = 1) throws {
        guard let principal, principal.role != .admin else { return }
        let rate =
            kind == .events
            ? principal.eventsPerSecond ?? quotas.limits.eventsPerSecond : principal.requestsPerSecond ?? quotas.limits.requestsPerSecond
        if let wait = quotas.take(kind, key: principal.credentialId, cost: cost, rate: rate) {
            throw APIError(
                .tooManyRequests, "rate_limited",
                "credential \(principal.credentialId) is over its limit of \(Int(rate)) \(kind.rawValue) per second; nothing of this request was stored",
                retryAfterSeconds: wait)
        }
    }

    static func clientAddress(_ context: SpeedflowRequestContext) -> String {
        context.channel?.remoteAddress?.ipAddress ?? "unknown"
    }

    /// No authentication (loopback default, and the in-process tests' default).
    public static let off = AccessControl(mode: .off, credentials: nil)

    /// What a route needs (each `Route` says which).
    enum Need: Sendable {
        /// Anyone: `/health`, `/openapi.yaml`, the dashboard's static files, signing in.
        case nothing
        /// A reader or admin: queries, `/kvfv`, `/stats`, `/metrics`.
        case read
        /// A camera or admin: `POST /events` (a camera then only for the cameras it covers).
        case write
        /// An admin: `/admin/…`, camera registry writes.
        case admin
    }

    /// The principal a request presents: a bearer token, or for reads (GET/HEAD) the dashboard's session
    /// cookie. A cookie never authorizes a write, so a page on another site cannot use a signed-in browser.
    func principal(of request: Request) -> Principal? {
        guard let credentials else { return nil }
        if let header = request.headers[.authorization] {
            guard let token = Self.bearer(header) else { return nil }
            return credentials.authenticate(token)
        }
        if request.method == .get || request.method == .head, let session = SessionStore.cookie(in: request.headers) {
            return sessions.principal(session, credentials: credentials)
        }
        return nil
    }

    static func bearer(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }
}

/// Refuses what a route's `Need` does not allow: `401 unauthorized` without a valid credential (with
/// `WWW-Authenticate: Bearer`), `403 forbidden` for one whose role does not reach. Before that, with auth on
/// or off, refuses writes a browser sends on behalf of another site (`BrowserGuard`).
struct AccessMiddleware: RouterMiddleware {
    typealias Context = SpeedflowRequestContext
    let access: AccessControl
    /// The router's routes: what each needs.
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try BrowserGuard.check(request, allowedOrigins: access.allowedOrigins)
        var context = context
        let need = routes.need(request.method, request.uri.path)
        guard access.mode == .required else {
            // Off: a presented token still names its writer (attribution), but nothing is refused for lack of one.
            context.principal = try await principal(of: request, context: context)
            return try await next(request, context)
        }
        // A valid credential always passes, so one bad client behind the same address (NAT) cannot lock out
        // the cameras beside it; invalid ones beyond the address's budget get 429 instead of 401.
        let presented = request.headers[.authorization] != nil && need != .nothing
        let principal = try await principal(of: request, context: context)
        if presented && principal == nil {
            let address = AccessControl.clientAddress(context)
            try access.checkFailedAttempts(address)
            access.recordFailedAttempt(address)
        }
        context.principal = principal
        switch need {
        case .nothing: break
        case .read, .write, .admin:
            guard let principal else {
                throw APIError(
                    .unauthorized, "unauthorized",
                    request.headers[.authorization] == nil
                        ? "this request needs a credential: send Authorization: Bearer <token> (speedflow token create)"
                        : "the credential is not valid (unknown, revoked or malformed)",
                    extraHeaders: [.wwwAuthenticate: "Bearer realm=\"speedflow\""])
            }
            let allowed =
                switch need {
                case .read: principal.role.canRead
                case .write: principal.mayWriteAny
                case .admin: principal.role == .admin
                case .nothing: true
                }
            guard allowed else {
                throw APIError(
                    .forbidden, "forbidden", "a \(principal.role.rawValue) credential may not \(Self.describe(need)) (\(request.method) \(request.uri.path))")
            }
            try access.charge(principal, .requests)
        }
        return try await next(request, context)
    }

    /// A bearer token or session (`AccessControl.principal(of:)`), else under mutual TLS the connection's
    /// client certificate: a camera principal named `cert:<subject>` for the cameras its SAN URIs grant.
    func principal(of request: Request, context: Context) async throws -> Principal? {
        if let principal = access.principal(of: request) { return principal }
        guard access.clientCertificates, request.headers[.authorization] == nil, let channel = context.channel,
            let identity = await ClientCertificateIdentity.of(channel), let grants = KvfvGrants(identity.kvfvGrants)
        else { return nil }
        return Principal(credentialId: "cert:" + String(identity.subject.prefix(100)), role: .camera, grants: grants)
    }

    static func describe(_ need: AccessControl.Need) -> String {
        switch need {
        case .read: "read"
        case .write: "write events"
        case .admin: "do administrator actions (credentials, camera registry)"
        case .nothing: "do this"
        }
    }
}

/// Browser safety, whatever the auth mode: a web page on another site must not be able to make a visitor's
/// browser write (CSRF; with auth off, any page could otherwise inject events into a server on the visitor's
/// network).
///
/// Applies to every method but GET, HEAD and OPTIONS. A request that a browser sent (it carries `Origin` or
/// `Sec-Fetch-Site`) is refused with `403 cross_site_request` unless it comes from the server's own origin (or
/// one in `--cors-origin`), and with `415 unsupported_media_type` if its body is `text/plain`, a form or
/// multipart — the content types a page may send cross-site without asking. Clients that are not browsers
/// (curl, cameras, loadgen) send neither header and are unaffected: `curl -d` keeps working.
enum BrowserGuard {
    static func check(_ request: Request, allowedOrigins: Set<String>) throws {
        switch request.method {
        case .get, .head, .options: return
        default: break
        }
        let origin = request.headers[.origin]
        let fetchSite = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased()
        guard origin != nil || fetchSite != nil else { return }
        let allowedByOrigin = origin.map { allowedOrigins.contains($0) || isSameOrigin($0, host: request.head.authority) } ?? false
        if let fetchSite, fetchSite != "same-origin", fetchSite != "none", !allowedByOrigin {
            throw APIError(.forbidden, "cross_site_request", "a browser request from another site (Sec-Fetch-Site: \(fetchSite)) may not write")
        }
        if let origin, !allowedByOrigin {
            throw APIError(.forbidden, "cross_site_request", "a browser request from origin \(origin) may not write to this server")
        }
        let type = (request.headers[.contentType] ?? "").lowercased()
        if type.hasPrefix("text/plain") || type.hasPrefix("application/x-www-form-urlencoded") || type.hasPrefix("multipart/form-data") {
            throw APIError(
                .unsupportedMediaType, "unsupported_media_type",
                "a browser may not send \(type) here; send application/json or application/x-ndjson")
        }
    }

    /// Whether `origin` (`scheme://host[:port]`) names the server the request was sent to (its `Host`).
    static func isSameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host = host?.lowercased(), let schemeEnd = origin.range(of: "://") else { return false }
        let scheme = origin[..<schemeEnd.lowerBound].lowercased()
        let authority = origin[schemeEnd.upperBound...].lowercased()
        if authority == host { return true }
        let defaultPort = scheme == "https" ? ":443" : scheme == "http" ? ":80" : nil
        guard let defaultPort else { return false }
        return authority + defaultPort == host || authority == host + defaultPort
    }
}
