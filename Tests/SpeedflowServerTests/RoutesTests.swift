import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import SpeedflowServer

/// The one route table: a wrong method on a known path is `405` with the path's methods in `Allow`, an unknown
/// path `404`; with auth required, what each route needs decides `401` before anything runs.
@Suite("Routes: one table for the router, 405 answers and access control")
struct RoutesTests {
    @Test("the table matches templates segment by segment; unknown paths need a reader")
    func table() {
        let noop: Route.Handler = { _, _ in Response(status: .ok) }
        let table = RouteTable([
            Route(.get, "/kvfv/:id/avg-speed", .read, noop), Route(.post, "/events", .write, noop),
            Route(.get, "/session", .nothing, noop), Route(.delete, "/session", .nothing, noop),
            Route(.delete, "/admin/credentials/:id", .admin, noop),
        ])
        #expect(table.methods("/kvfv/KV1/avg-speed") == [.get])
        #expect(table.methods("/kvfv/KV1/avg-speed/x").isEmpty && table.methods("/kvfv//avg-speed") == [])
        #expect(table.methods("/session") == [.get, .delete])
        #expect(table.methods("/events") == [.post])
        #expect(table.need(.get, "/session") == .nothing && table.need(.post, "/events") == .write)
        #expect(table.need(.delete, "/admin/credentials/abc") == .admin)
        #expect(table.need(.get, "/nowhere") == .read)
    }

    @Test("a wrong method on every known path answers 405 method_not_allowed with Allow; unknown paths 404")
    func methodNotAllowed() async throws {
        let router = SpeedflowHTTP.router(node: HTTPHardeningTests.node(), configuration: ServerConfiguration(), prometheus: nil)
        try await Application(router: router).test(.router) { client in
            let cases: [(String, HTTPRequest.Method, String)] = [
                ("/events", .get, "POST"), ("/kvfv", .post, "GET"), ("/kvfv/KV1/avg-speed", .delete, "GET"),
                ("/health", .put, "GET"), ("/session", .patch, "GET, POST, DELETE"),
                ("/admin/credentials/x", .get, "DELETE"), ("/dashboard/app.js", .post, "GET"), ("/health", .head, "GET"),
            ]
            for (path, method, allow) in cases {
                try await client.execute(uri: path, method: method) { r in
                    #expect(r.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(r.headers[.allow] == allow, "\(method) \(path)")
                    let body = try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [String: Any]
                    #expect(body?["reason"] as? String == "method_not_allowed")
                }
            }
            try await client.execute(uri: "/nowhere", method: .get) { r in #expect(r.status == .notFound) }
        }
    }

    @Test("with auth required and no credential: open routes answer, every other route is 401 before it runs")
    func needsDecideBeforeHandlers() async throws {
        let router = SpeedflowHTTP.router(
            node: HTTPHardeningTests.node(), configuration: ServerConfiguration(), prometheus: nil,
            access: AccessControl(mode: .required, credentials: nil))
        try await Application(router: router).test(.router) { client in
            for (path, method) in [("/health", HTTPRequest.Method.get), ("/openapi.yaml", .get), ("/", .get), ("/session", .get)] {
                try await client.execute(uri: path, method: method) { r in
                    #expect(r.status != .unauthorized, "\(method) \(path) is open")
                }
            }
            for (path, method) in [
                ("/events", HTTPRequest.Method.post), ("/kvfv", .get), ("/kvfv/KV1/avg-speed", .get), ("/stats", .get),
                ("/kvfv/KV1/avg-speed/stream", .get), ("/kvfv/stream", .get), ("/metrics", .get), ("/admin/credentials", .get), ("/nowhere", .get),
            ] {
                try await client.execute(uri: path, method: method) { r in
                    #expect(r.status == .unauthorized, "\(method) \(path) needs a credential")
                }
            }
        }
    }
}
