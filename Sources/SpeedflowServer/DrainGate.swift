import Hummingbird
import ServiceLifecycle
import Synchronization

/// Turns requests away with `503 shutting_down` (`Retry-After`, `Connection: close`) once a graceful shutdown has
/// begun, while the HTTP server still runs.
///
/// Without it, SIGTERM closes keep-alive connections between two requests, and a client whose next request is
/// already on the wire gets a broken pipe it cannot tell from a lost answer. With it, every request that arrives
/// during the grace period gets an answer that says "retry elsewhere or later", and `Connection: close` makes the
/// client open a new connection (to a restarted or another node) instead of reusing this one.
public final class DrainGate: Sendable {
    private let closed = Mutex(false)

    public init() {}

    public var isClosed: Bool { closed.withLock { $0 } }

    public func close() { closed.withLock { $0 = true } }
}

/// The `Service` that closes a `DrainGate` when graceful shutdown begins and keeps the HTTP server up for `grace`
/// afterwards. List it *after* the HTTP application in the `ServiceGroup`: services shut down in reverse order, so
/// it runs its grace period before the server stops accepting and closes connections.
public struct DrainService: Service {
    public let gate: DrainGate
    /// How long requests keep being answered `503 shutting_down` before the server stops. Default: 1 s.
    public let grace: Duration

    public init(gate: DrainGate, grace: Duration = .seconds(1)) {
        self.gate = gate
        self.grace = grace
    }

    public func run() async throws {
        // Suspends until graceful shutdown (a cancellation ends it too).
        try? await gracefulShutdown()
        gate.close()
        try? await Task.sleep(for: grace)
    }
}

/// Answers `503 shutting_down` once the gate is closed.
struct DrainMiddleware<Context: RequestContext>: RouterMiddleware {
    let gate: DrainGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard gate.isClosed else { return try await next(request, context) }
        var response = try APIError(
            .serviceUnavailable, "shutting_down", "the server is shutting down; retry (nothing of this request was stored)",
            retryAfterSeconds: 5
        ).response(from: request, context: context)
        response.headers[.connection] = "close"
        return response
    }
}
