import HTTPTypes
import Hummingbird

/// `405 method_not_allowed` with `Allow` for a method a known path does not take (instead of the router's
/// 404), so clients and tools can tell a wrong method from a wrong path. Knows the paths from the router's own
/// `RouteTable`.
struct MethodsMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let methods = routes.methods(request.uri.path)
        guard methods.isEmpty || methods.contains(request.method) else {
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw APIError(
                .methodNotAllowed, "method_not_allowed", "\(request.uri.path) takes \(allow), not \(request.method)",
                extraHeaders: [.allow: allow])
        }
        return try await next(request, context)
    }
}
