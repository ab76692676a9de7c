import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import SpeedflowEngine

/// Builds the HTTP application: every route of the contract on one router.
public enum SpeedflowHTTP {
    /// The router, separate from the application so tests can drive it in-process.
    ///
    /// - Parameter drain: once closed, every request is answered `503 shutting_down` (see `DrainGate`).
    public static func router(
        engine: Engine, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?,
        drain: DrainGate? = nil
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MetricsMiddleware())
        if let drain { router.add(middleware: DrainMiddleware(gate: drain)) }
        router.add(middleware: JSONErrorMiddleware())
        let ingest = IngestController(engine: engine, configuration: configuration)
        let query = QueryController(engine: engine)
        let assets = Assets()

        router.post("/events") { request, context in try await ingest.ingest(request, context: context) }
        router.get("/kvfv/:id/avg-speed") { request, context in try await query.avgSpeed(request, context: context) }
        router.get("/kvfv") { request, context in try await query.cameras(request, context: context) }
        router.get("/stats") { request, context in try await query.stats(request, context: context) }
        router.get("/health") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
        }
        router.get("/metrics") { _, _ -> Response in
            var bytes = [UInt8]()
            prometheus?.emit(into: &bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/openapi.yaml") { _, _ in try assets.response("openapi.yaml") }
        router.get("/") { _, _ in try assets.response("dashboard/index.html") }
        router.get("/dashboard/:file") { _, context in
            try assets.response("dashboard/" + (context.parameters.get("file") ?? ""))
        }
        return router
    }

    public static func application(
        engine: Engine, configuration: ServerConfiguration, prometheus: PrometheusCollectorRegistry?, logger: Logger,
        drain: DrainGate? = nil, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(engine: engine, configuration: configuration, prometheus: prometheus, drain: drain),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "speedflow"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }
}
