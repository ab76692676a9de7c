import NIOCore
import NIOSSL
import SpeedflowModel
import X509

/// Who a mutual-TLS client is: the camera(s) its certificate may write for.
///
/// A camera's client certificate identifies the camera just as a camera token does: the certificate's subject
/// alternative names hold one URI per grant, `urn:speedflow:kvfv:KV00001` (exactly that camera) or
/// `urn:speedflow:kvfv:KV0*` (every camera whose id starts with `KV0`; the `*` must be last). The handshake has
/// already proved the chain leads to `--tls-client-ca` and that the certificate is within its validity period;
/// what the certificate may do is for authorization to decide, with `permits(_:)`.
public struct ClientCertificateIdentity: Sendable, Hashable {
    /// The certificate's subject as an RFC 4514 string, e.g. `CN=camera KV00001,O=Roads`: for logs and audit.
    public var subject: String
    /// Exact ids (`KV00001`) and prefixes (`KV0*`), in certificate order; malformed URIs are not grants.
    public var kvfvGrants: [String]

    public init(subject: String, kvfvGrants: [String]) {
        self.subject = subject
        self.kvfvGrants = kvfvGrants
    }

    /// The URI scheme and namespace of a grant; matched case-insensitively (RFC 8141 makes `urn:` and the
    /// namespace case-insensitive), the camera id after it case-sensitively, as `kvfv_id` is everywhere.
    public static let grantURIPrefix = "urn:speedflow:kvfv:"

    /// The grants named by subject-alternative-name URIs; URIs of other forms are ignored.
    ///
    /// A grant is a valid `kvfv_id`, or a non-empty prefix of `kvfv_id` characters followed by one `*`. A bare `*`
    /// (every camera) is deliberately not a grant: a certificate that leaks should expose a bounded set of cameras;
    /// fleet-wide writers use an admin credential.
    public static func kvfvGrants(fromSANURIs uris: [String]) -> [String] {
        uris.compactMap { uri in
            guard uri.utf8.count > grantURIPrefix.utf8.count,
                uri.prefix(grantURIPrefix.count).lowercased() == grantURIPrefix
            else { return nil }
            let grant = String(uri.dropFirst(grantURIPrefix.count))
            if grant.hasSuffix("*") {
                let prefix = String(grant.dropLast())
                // `.` and `..` are refused as ids but are fine as the start of one (`.5*` is odd, not harmful).
                guard !prefix.isEmpty, prefix.utf8.count < 64, isIdCharacters(prefix) else { return nil }
                return grant
            }
            return ValidationPolicy.isValidKvfvId(grant) ? grant : nil
        }
    }

    /// Whether `grant` (`KV00001` or `KV0*`) covers camera `kvfvID`.
    public static func grant(_ grant: String, covers kvfvID: String) -> Bool {
        if grant.hasSuffix("*") { return kvfvID.hasPrefix(grant.dropLast()) }
        return grant == kvfvID
    }

    /// Whether this certificate may write events for camera `kvfvID`.
    public func permits(_ kvfvID: String) -> Bool {
        kvfvGrants.contains { Self.grant($0, covers: kvfvID) }
    }

    /// Reads the identity out of a DER-encoded certificate: subject and SAN URIs.
    public init(derEncoded der: [UInt8]) throws {
        let certificate = try Certificate(derEncoded: der)
        var uris: [String] = []
        if let names = try certificate.extensions.subjectAlternativeNames {
            for case .uniformResourceIdentifier(let uri) in names { uris.append(uri) }
        }
        self.init(subject: certificate.subject.description, kvfvGrants: Self.kvfvGrants(fromSANURIs: uris))
    }

    /// The identity of the client on `channel` (a connection, or an HTTP/2 stream of one), or `nil` when the
    /// connection has no verified client certificate (no `--tls-client-ca`, or plain HTTP).
    ///
    /// Parsed once per connection and kept in the connection's pipeline (`TLSConnectionHandler`), so asking on every request costs one hop
    /// to the channel's event loop. In a route, the channel is `ApplicationRequestContextSource.channel` (keep it in
    /// the request context).
    public static func of(_ channel: any Channel) async -> ClientCertificateIdentity? {
        if let identity = await identity(ofConnection: channel) { return identity }
        // An HTTP/2 stream's parent is its connection (an accepted connection's parent is the listening socket,
        // which has no TLS handler).
        guard let parent = channel.parent else { return nil }
        return await identity(ofConnection: parent)
    }

    private static func identity(ofConnection connection: any Channel) async -> ClientCertificateIdentity? {
        try? await connection.eventLoop.submit { () -> ClientCertificateIdentity? in
            try of(connection.pipeline.syncOperations)
        }.get()
    }

    /// The identity of the connection whose pipeline this is, on its event loop (the MQTT listener asks while
    /// handling CONNECT).
    static func of(_ pipeline: ChannelPipeline.SynchronousOperations) throws -> ClientCertificateIdentity? {
        guard let holder = try? pipeline.handler(type: TLSConnectionHandler.self) else { return nil }
        if let known = holder.identity { return known }
        // Only after a completed handshake: NIOSSL verified the chain before any request was read. Without
        // --tls-client-ca no certificate was asked for.
        guard let certificate = try pipeline.nioSSL_peerCertificate() else { return nil }
        let identity = try ClientCertificateIdentity(derEncoded: certificate.toDERBytes())
        holder.identity = identity
        return identity
    }

    private static func isIdCharacters(_ s: String) -> Bool {
        s.utf8.allSatisfy { c in
            switch c {
            case 48...57, 65...90, 97...122, 46, 95, 45: true
            default: false
            }
        }
    }
}
