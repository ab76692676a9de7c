import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Prometheus
import SpeedflowEngine
import SpeedflowRegistry

/// What an HTTP node serves. Each role gives the parts it has: `serve` everything, an ingest node an intake,
/// an API node queries. A route whose part is missing answers `404 not_served_here`, naming the role.
public struct HTTPNode: Sendable {
    /// `serve`, `ingest` or `api`: for answers to routes this node does not serve.
    public var role: String
    /// `POST /events`.
    public var intake: Intake?
    /// `GET /kvfv/{id}/avg-speed`, `GET /kvfv`.
    public var queries: CameraQueries?
    /// `GET /stats`.
    public var stats: IngestStats
    public var status: NodeStatus
    public var clock: @Sendable () -> Int64
    /// `/registry`, `/kvfv/{id}/registry`, and the `registry` of `/kvfv` rows (`serve` and `api` nodes).
    public var registry: CameraRegistry?

    public init(
        role: String, intake: Intake?, queries: CameraQueries?, stats: IngestStats, status: NodeStatus,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }, registry: CameraRegistry? = nil
    ) {
        self.role = role
        self.intake = intake
        self.queries = queries
        self.stats = stats
        self.status = status
        self.clock = clock
        self.registry = registry
    }

    /// The embedded pipeline: every route.
    public static func serve(_ engine: Engine, registry: CameraRegistry? = nil) -> HTTPNode {
        HTTPNode(
            role: "serve", intake: engine.intake, queries: engine.queries, stats: engine.stats, status: engine.status,
            clock: { engine.now }, registry: registry)
    }

    func notServed(_ what: String, by other: String) -> APIError {
        APIError(.notFound, "not_served_here", "this is a speedflow \(role) node, which does not \(what); \(other)")
    }
}

/// Builds the HTTP application: every route of the contract on one router.
public enum SpeedflowHTTP {
    /// The router, separate from the application so tests can drive it in-process.
    ///
    /// - Parameter drain: once closed, every request is answered `503 shutting_down` (see `DrainGate`).
    /// - Parameter access: who may do what (`AccessControl.off`: anyone, everything).
    /// - Parameter live: the pollers behind the live streams (default: ones of their own, ended by `drain`).
    public static func router(
        node: HTTPNode, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?,
        access: AccessControl = .off, drain: DrainGate? = nil, live: LiveFeeds? = nil
    ) -> Router<SpeedflowRequestContext> {
        let ingest = node.intake.map { IngestController(intake: $0, configuration: configuration, access: access) }
        let sequences = SequenceController(node: node, intake: node.intake)
        let query = QueryController(node: node)
        let reports = ReportController(node: node)
        let sessions = SessionController(access: access)
        let admin = AdminController(access: access)
        let registry = RegistryController(node: node, access: access)
        let assets = Assets()
        let streams = StreamController(
            node: node, feeds: live ?? LiveFeeds(drain: drain, clock: node.clock), credentials: access.credentials)
        // Every route of the contract, once: the router, the 405 answers and access control are built from it.
        let routes: [Route] = [
            Route(.post, "/events", .write) { request, context in
                guard let ingest else { throw node.notServed("take events", by: "send them to an ingest node") }
                return try await ingest.ingest(request, context: context, principal: context.principal)
            },
            Route(.get, "/session", .nothing) { request, context in try sessions.current(request, context: context) },
            Route(.post, "/session", .nothing) { request, context in try await sessions.signIn(request, context: context) },
            Route(.delete, "/session", .nothing) { request, context in try sessions.signOut(request, context: context) },
            Route(.get, "/admin/credentials", .admin) { request, context in try admin.list(request, context: context) },
            Route(.post, "/admin/credentials", .admin) { request, context in try await admin.create(request, context: context) },
            Route(.delete, "/admin/credentials/:id", .admin) { request, context in try admin.revoke(request, context: context) },
            Route(.get, "/kvfv/:id/avg-speed", .read) { request, context in try await query.avgSpeed(request, context: context) },
            Route(.get, "/kvfv/:id/avg-speed/stream", .read) { request, context in
                try await streams.windows(request, context: context)
            },
            Route(.get, "/kvfv/:id/gaps", .read) { request, context in try await sequences.gaps(request, context: context) },
            Route(.post, "/kvfv/:id/status", .write) { request, context in
                try await sequences.report(request, context: context, principal: context.principal)
            },
            Route(.get, "/kvfv", .read) { request, context in try await query.cameras(request, context: context) },
            Route(.get, "/registry", .read) { request, context in try registry.list(request, context: context) },
            Route(.get, "/kvfv/:id/registry", .read) { request, context in try registry.get(request, context: context) },
            Route(.put, "/kvfv/:id/registry", .admin) { request, context in try await registry.put(request, context: context) },
            Route(.delete, "/kvfv/:id/registry", .admin) { request, context in try registry.delete(request, context: context) },
            Route(.get, "/kvfv/stream", .read) { request, context in try await streams.cameras(request, context: context) },
            Route(.get, "/kvfv/:id", .read) { request, context in try await query.camera(request, context: context) },
            Route(.get, "/kvfv/:id/health", .read) { request, context in try await reports.health(request, context: context) },
            Route(.get, "/reports/daily", .read) { request, context in try await reports.report(request, context: context, period: .day) },
            Route(.get, "/reports/monthly", .read) { request, context in try await reports.report(request, context: context, period: .month) },
            Route(.get, "/stats", .read) { request, context in try await query.stats(request, context: context) },
            Route(.get, "/health", .nothing) { _, _ in healthResponse() },
            Route(.get, "/metrics", .read) { _, _ in metricsResponse(prometheus) },
            Route(.get, "/openapi.yaml", .nothing) { _, _ in try assets.response("openapi.yaml") },
            Route(.get, "/", .nothing) { _, _ in try assets.response("dashboard/index.html") },
            Route(.get, "/dashboard/:file", .nothing) { _, context in
                try assets.response("dashboard/" + (context.parameters.get("file") ?? ""))
            },
        ]
        let table = RouteTable(routes)
        let router = Router(context: SpeedflowRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: MetricsMiddleware())
        if let drain { router.add(middleware: DrainMiddleware(gate: drain)) }
        router.add(middleware: JSONErrorMiddleware())
        if !access.allowedOrigins.isEmpty { router.add(middleware: AllowedOriginsCORS(allowedOrigins: access.allowedOrigins)) }
        router.add(middleware: MethodsMiddleware(routes: table))
        router.add(middleware: AccessMiddleware(access: access, routes: table))
        router.add(routes)
        return router
    }

    /// What an aggregator serves: `/health` (open) and `/metrics` (a reader credential when auth is required).
    public static func healthAndMetricsRouter(prometheus: PrometheusCollectorRegistry?, access: AccessControl) -> Router<SpeedflowRequestContext> {
        let routes = [
            Route(.get, "/health", .nothing) { _, _ in healthResponse() },
            Route(.get, "/metrics", .read) { _, _ in metricsResponse(prometheus) },
        ]
        let router = Router(context: SpeedflowRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: AccessMiddleware(access: access, routes: RouteTable(routes)))
        router.add(routes)
        return router
    }

    /// `GET /health`: `{"status":"ok"}` while the process serves.
    static func healthResponse() -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
    }

    /// `GET /metrics`: the Prometheus text format (every role serves it).
    public static func metricsResponse(_ prometheus: PrometheusCollectorRegistry?) -> Response {
        var bytes = [UInt8]()
        prometheus?.emit(into: &bytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The HTTP server of a role: the router behind the connection guard (`configuration.connections`; tests may
    /// pass their own guard to watch its counts) and, with `tls` (loaded from `configuration.tls` by the caller,
    /// and run as a service so it reloads), HTTPS around that.
    public static func application(
        node: HTTPNode, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?, logger: Logger,
        access: AccessControl = .off, drain: DrainGate? = nil, connectionGuard: ConnectionGuard? = nil, tls: TLSCertificates? = nil,
        live: LiveFeeds? = nil, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let connectionGuard = connectionGuard ?? ConnectionGuard(
            limits: ConnectionGuard.fitting(configuration.connections, logger: logger), logger: logger)
        let http1 = HTTP1Channel.Configuration(idleTimeout: .milliseconds(configuration.idleTimeoutMs))
        return Application(
            router: router(
                node: node, configuration: configuration, prometheus: prometheus, access: access, drain: drain, live: live),
            // The base HTTP/1.1 child channel, wrapped by the connection guard, then optionally by TLS (outermost:
            // its handler comes first in the pipeline, so the guard sees decrypted bytes and its answers are encrypted).
            server: HTTPServerBuilder { responder in
                let guarded = GuardedChildChannel(base: HTTP1Channel(responder: responder, configuration: http1), guard: connectionGuard)
                guard let tls else { return guarded }
                return TLSServerChannel(guarded, certificates: tls)
            },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "speedflow"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}
