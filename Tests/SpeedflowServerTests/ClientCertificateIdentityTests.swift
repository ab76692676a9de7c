import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Logging
import NIOCore
import SpeedflowServer
import SpeedflowTestSupport
import Testing

@Suite("Client certificate identity: SAN URIs to camera grants")
struct ClientCertificateGrantTests {
    @Test("exact ids and trailing-* prefixes are grants; anything else is not")
    func parse() {
        let uris = [
            "urn:speedflow:kvfv:KV00001",  // exact
            "URN:Speedflow:KVFV:KV00002",  // scheme and namespace are case-insensitive
            "urn:speedflow:kvfv:KV0*",  // prefix
            "urn:speedflow:kvfv:*",  // every camera: not a grant
            "urn:speedflow:kvfv:",  // empty
            "urn:speedflow:kvfv:KV 1",  // not an id
            "urn:speedflow:kvfv:KV*1",  // * not last
            "urn:speedflow:kvfv:KV1**",  // two stars
            "urn:speedflow:kvfv:..",  // not an id
            "urn:speedflow:kvfv:" + String(repeating: "A", count: 65),  // too long
            "urn:speedflow:reader:KV1",  // another namespace
            "https://example.com/urn:speedflow:kvfv:KV9",
            "urn:speedflow:kvfv:" + String(repeating: "B", count: 64),
        ]
        #expect(
            ClientCertificateIdentity.kvfvGrants(fromSANURIs: uris)
                == ["KV00001", "KV00002", "KV0*", String(repeating: "B", count: 64)])
    }

    @Test("a grant covers exactly its camera, a prefix every camera starting with it; ids stay case-sensitive")
    func covers() {
        let identity = ClientCertificateIdentity(subject: "CN=gateway", kvfvGrants: ["KV00001", "A7-*"])
        #expect(identity.permits("KV00001"))
        #expect(!identity.permits("KV000010"))
        #expect(!identity.permits("kv00001"))
        #expect(!identity.permits("KV0000"))
        #expect(identity.permits("A7-"))
        #expect(identity.permits("A7-north.2"))
        #expect(!identity.permits("A7"))
        #expect(!identity.permits("a7-north"))
        #expect(!ClientCertificateIdentity(subject: "", kvfvGrants: []).permits("KV00001"))
    }
}

/// A request context that keeps the connection, as the server's will once authorization is wired in.
struct ChannelRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

@Suite("Client certificate identity over a real mutual-TLS connection (curl)")
struct ClientCertificateIdentityTests {
    @Test("ClientCertificateIdentity.of(channel) names the camera certificate's subject and grants; nil without mutual TLS")
    func identityOfChannel() async throws {
        let pki = TestPKI()
        defer { pki.remove() }
        try await offCooperativePool {
            try pki.makeCA("ca", subject: "/CN=Test CA")
            try pki.makeLeaf("server", ca: "ca", subject: "/CN=localhost", subjectAltName: "DNS:localhost", usage: .server)
            try pki.makeLeaf(
                "gateway", ca: "ca", subject: "/O=Roads/CN=gateway 7",
                subjectAltName: "URI:urn:speedflow:kvfv:KV00001,URI:urn:speedflow:kvfv:A7-*,URI:https://example.com,DNS:gw7",
                usage: .client)
        }
        for mutual in [true, false] {
            let logger = Logger(label: "test")
            let tls = try TLSCertificates(
                files: .init(certificateFile: pki.certificate("server"), keyFile: pki.key("server"),
                             clientCAFile: mutual ? pki.certificate("ca") : nil),
                logger: logger)
            let router = Router(context: ChannelRequestContext.self)
            router.get("/whoami") { _, context -> String in
                guard let identity = await ClientCertificateIdentity.of(context.channel) else { return "nobody" }
                return "\(identity.subject)|\(identity.kvfvGrants.joined(separator: ","))"
            }
            let app = Application(
                router: router,
                server: HTTPServerBuilder { responder in TLSServerChannel(HTTP1Channel(responder: responder), certificates: tls) },
                configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let url = "https://localhost:\(port)/whoami"
                // Twice on one connection: the second answer comes from the identity kept in the pipeline.
                let arguments = ["-sS", "--max-time", "10", "--cacert", pki.certificate("ca")]
                    + (mutual ? ["--cert", pki.certificate("gateway"), "--key", pki.key("gateway")] : []) + [url, url]
                let r = try await offCooperativePool { try ChildProcess.run("/usr/bin/curl", arguments) }
                let expected = mutual ? "CN=gateway 7,O=Roads|KV00001,A7-*" : "nobody"
                #expect(r.status == 0 && r.stdout == expected + expected, "\(r)")
            }
        }
    }
}
