import HTTPTypes
import Hummingbird

/// `405 method_not_allowed` with `Allow` for a method a known path does not take (instead of the router's
/// 404), so clients and tools can tell a wrong method from a wrong path.
struct MethodsMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Path templates (`*` = one segment) and the methods each takes.
    static var routes: [([Substring], [HTTPRequest.Method])] {
        [
            ("/events", [.post]), ("/kvfv/*/avg-speed", [.get]), ("/kvfv", [.get]), ("/stats", [.get]),
            ("/health", [.get]), ("/metrics", [.get]), ("/openapi.yaml", [.get]), ("/", [.get]),
            ("/dashboard/*", [.get]), ("/session", [.get, .post, .delete]), ("/admin/credentials", [.get, .post]),
            ("/admin/credentials/*", [.delete]),
        ].map { ($0.0.split(separator: "/", omittingEmptySubsequences: true), $0.1) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        for (template, methods) in Self.routes where template.count == segments.count {
            guard zip(template, segments).allSatisfy({ $0 == "*" || $0 == $1 }) else { continue }
            guard methods.contains(request.method) else {
                throw APIError(
                    .methodNotAllowed, "method_not_allowed", "\(request.uri.path) takes \(methods.map(\.rawValue).joined(separator: ", ")), not \(request.method)",
                    extraHeaders: [.allow: methods.map(\.rawValue).joined(separator: ", ")])
            }
            break
        }
        return try await next(request, context)
    }
}
