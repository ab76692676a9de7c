import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Prometheus
import SpeedflowEngine

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

    public init(
        role: String, intake: Intake?, queries: CameraQueries?, stats: IngestStats, status: NodeStatus,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.role = role
        self.intake = intake
        self.queries = queries
        self.stats = stats
        self.status = status
        self.clock = clock
    }

    /// The embedded pipeline: every route.
    public static func serve(_ engine: Engine) -> HTTPNode {
        HTTPNode(
            role: "serve", intake: engine.intake, queries: engine.queries, stats: engine.stats, status: engine.status,
            clock: { engine.now })
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
    public static func router(
        node: HTTPNode, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?,
        drain: DrainGate? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: MetricsMiddleware())
        if let drain { router.add(middleware: DrainMiddleware(gate: drain)) }
        router.add(middleware: JSONErrorMiddleware())
        let ingest = node.intake.map { IngestController(intake: $0, configuration: configuration) }
        let query = QueryController(node: node)
        let assets = Assets()

        router.post("/events") { request, context in
            guard let ingest else { throw node.notServed("take events", by: "send them to an ingest node") }
            return try await ingest.ingest(request, context: context)
        }
        router.get("/kvfv/:id/avg-speed") { request, context in try await query.avgSpeed(request, context: context) }
        router.get("/kvfv") { request, context in try await query.cameras(request, context: context) }
        router.get("/stats") { request, context in try await query.stats(request, context: context) }
        router.get("/health") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
        }
        router.get("/metrics") { _, _ -> Response in metricsResponse(prometheus) }
        router.get("/openapi.yaml") { _, _ in try assets.response("openapi.yaml") }
        router.get("/") { _, _ in try assets.response("dashboard/index.html") }
        router.get("/dashboard/:file") { _, context in
            try assets.response("dashboard/" + (context.parameters.get("file") ?? ""))
        }
        return router
    }

    /// `GET /metrics`: the Prometheus text format (every role serves it).
    public static func metricsResponse(_ prometheus: PrometheusCollectorRegistry?) -> Response {
        var bytes = [UInt8]()
        prometheus?.emit(into: &bytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The HTTP server of a role. With `tls` (loaded from `configuration.tls` by the caller, and run as a service
    /// so it reloads) every connection is HTTPS; without it plain HTTP.
    public static func application(
        node: HTTPNode, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?, logger: Logger,
        drain: DrainGate? = nil, tls: TLSCertificates? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let http1 = HTTP1Channel.Configuration(idleTimeout: .milliseconds(configuration.idleTimeoutMs))
        return Application(
            router: router(node: node, configuration: configuration, prometheus: prometheus, drain: drain),
            // Base child channel, then optionally wrapped in TLS (outermost: its handler comes first in the pipeline).
            server: HTTPServerBuilder { responder in
                let base = HTTP1Channel(responder: responder, configuration: http1)
                guard let tls else { return base }
                return TLSServerChannel(base, certificates: tls)
            },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "speedflow"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}
