import HTTPTypes
import Hummingbird

/// CORS for the origins given with `--cors-origin` (none by default): their pages may call the API from a
/// browser. A preflight (`OPTIONS` with `Access-Control-Request-Method`) from such an origin is answered `204`
/// with the methods and headers the API takes; every answer to such an origin names it in
/// `Access-Control-Allow-Origin` (`Vary: Origin`). Credentials travel as bearer tokens, never cookies
/// (`Access-Control-Allow-Credentials` is not sent), so a configured origin still needs a token. Requests from
/// other origins get no CORS headers, and their writes are refused by `BrowserGuard`.
///
/// Not Hummingbird's `CORSMiddleware`: its list of origins (`.oneOf`) is variadic, so it cannot come from
/// configuration, and it wraps errors so that they lose their JSON `reason`.
struct AllowedOriginsCORS<Context: RequestContext>: RouterMiddleware {
    let allowedOrigins: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin], allowedOrigins.contains(origin) else {
            return try await next(request, context)
        }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [
                .accessControlAllowOrigin: origin, .vary: "Origin",
                .accessControlAllowMethods: "GET, POST, PUT, DELETE",
                .accessControlAllowHeaders: "Authorization, Content-Type, Content-Encoding",
                .accessControlMaxAge: "600",
            ]
            SecurityHeaders.add(to: &headers)
            return Response(status: .noContent, headers: headers)
        }
        do {
            var response = try await next(request, context)
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.vary] = "Origin"
            return response
        } catch let error as APIError {
            var error = error
            error.extraHeaders[.accessControlAllowOrigin] = origin
            error.extraHeaders[.vary] = "Origin"
            throw error
        }
    }
}
