import HTTPTypes
import Hummingbird

/// Headers every answer carries, errors included, so a browser treats Speedflow's answers as what they are:
/// no MIME sniffing (`nosniff`), no framing by another site (`X-Frame-Options`, CSP `frame-ancestors`), no
/// referrer leaked from the dashboard, and a content security policy that lets the dashboard load only its own
/// script, styles and data (inline `style` attributes are allowed: the dashboard's charts use them; inline
/// scripts are not).
enum SecurityHeaders {
    static let contentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        + "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func add(to headers: inout HTTPFields) {
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[.contentSecurityPolicy] = contentSecurityPolicy
    }
}

/// Adds `SecurityHeaders` to every answer a handler returns; error answers (`APIError`, thrown so Hummingbird
/// keeps its error path, e.g. closing a connection whose body was never read) carry them from `APIError.headers`.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        SecurityHeaders.add(to: &response.headers)
        return response
    }
}
