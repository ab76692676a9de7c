import HTTPTypes
import Hummingbird

/// One route of the contract: its method and path, what it needs (`AccessControl.Need`) and its handler.
///
/// The one list a router is built from: the router's routes, the `405 method_not_allowed` answers
/// (`MethodsMiddleware`) and access control (`AccessMiddleware`) all read the same `RouteTable`, so a new route is
/// added in one place.
struct Route: Sendable {
    typealias Handler = @Sendable (Request, SpeedflowRequestContext) async throws -> Response

    var method: HTTPRequest.Method
    /// Hummingbird's template syntax: `:name` matches one segment.
    var path: String
    var need: AccessControl.Need
    var handler: Handler

    init(_ method: HTTPRequest.Method, _ path: String, _ need: AccessControl.Need, _ handler: @escaping Handler) {
        self.method = method
        self.path = path
        self.need = need
        self.handler = handler
    }
}

/// The routes of one router, matched by method and path without the router (for the middlewares that run first).
struct RouteTable: Sendable {
    struct Entry: Sendable {
        var method: HTTPRequest.Method
        var segments: [Substring]
        var need: AccessControl.Need
    }

    let entries: [Entry]

    init(_ routes: [Route]) {
        entries = routes.map { Entry(method: $0.method, segments: Self.segments($0.path), need: $0.need) }
    }

    static func segments(_ path: String) -> [Substring] { path.split(separator: "/", omittingEmptySubsequences: true) }

    /// The entries whose template matches `path`, whatever their method.
    func matching(_ path: String) -> [Entry] {
        let segments = Self.segments(path)
        return entries.filter { entry in
            entry.segments.count == segments.count
                && zip(entry.segments, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
        }
    }

    /// The methods `path` takes, in the table's order; empty for a path no route has. (Only what is routed:
    /// the router does not answer HEAD from a GET route, so HEAD is not listed for one.)
    func methods(_ path: String) -> [HTTPRequest.Method] { matching(path).map(\.method) }

    /// What a request needs. A path no route has needs a reader, so an unauthenticated client cannot tell which
    /// paths exist (it gets 401 before the router's 404).
    func need(_ method: HTTPRequest.Method, _ path: String) -> AccessControl.Need {
        let candidates = matching(path)
        return candidates.first { $0.method == method }?.need ?? candidates.first?.need ?? .read
    }
}

extension Router where Context == SpeedflowRequestContext {
    /// Registers every route of `routes` on this router.
    func add(_ routes: [Route]) {
        for route in routes {
            let handler = route.handler
            on(RouterPath(route.path), method: route.method) { request, context in try await handler(request, context) }
        }
    }
}
