import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOSSL
import NIOTLS

/// Wraps a child channel (HTTP/1.1, or one that guards it) in TLS, taking the certificate that is current when the
/// connection is accepted: like Hummingbird's `TLSChannel`, whose context is fixed at start, but reloadable.
///
/// A `TLSConnectionHandler` follows the TLS handler: it logs and counts refused handshakes and keeps the verified
/// client's identity, parsed once per connection (`ClientCertificateIdentity.of(_:)`).
public struct TLSServerChannel<BaseChannel: ServerChildChannel>: ServerChildChannel {
    public typealias Value = BaseChannel.Value

    public let base: BaseChannel
    public let certificates: TLSCertificates

    public init(_ base: BaseChannel, certificates: TLSCertificates) {
        self.base = base
        self.certificates = certificates
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(NIOSSLServerHandler(context: certificates.context))
            try pipeline.addHandler(TLSConnectionHandler(logger: logger))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    public func handle(value: BaseChannel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension TLSServerChannel: HTTPChannelHandler where BaseChannel: HTTPChannelHandler {
    public var responder: HTTPChannelHandler.Responder { base.responder }
}

/// Follows the TLS handler of a connection. Logs a failed handshake (at info: a camera with an expired or foreign
/// certificate, a client speaking plain HTTP, a scanner) with the peer's address, and counts it in
/// `speedflow_tls_handshake_failures_total`; keeps the client's identity once read. Passes every event on; used
/// only on the channel's event loop.
final class TLSConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    static let failures = Counter(label: "speedflow_tls_handshake_failures_total")

    /// The verified client certificate's identity, once `ClientCertificateIdentity.of(_:)` has read it.
    var identity: ClientCertificateIdentity?
    private var handshakeDone = false
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { handshakeDone = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeDone {
            handshakeDone = true  // once per connection
            Self.failures.increment()
            logger.info(
                "TLS handshake refused",
                metadata: ["tls.peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)"])
        }
        context.fireErrorCaught(error)
    }
}
