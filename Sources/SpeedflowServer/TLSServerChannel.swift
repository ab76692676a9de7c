import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// Wraps a child channel (HTTP/1.1, or one that guards it) in TLS, taking the certificate that is current when the
/// connection is accepted: like Hummingbird's `TLSChannel`, whose context is fixed at start, but reloadable.
///
/// With client certificates required, a `ClientIdentityHandler` follows the TLS handler, so the verified client's
/// identity is parsed once per connection (`ClientCertificateIdentity.of(_:)`).
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
            if certificates.requiresClientCertificates { try pipeline.addHandler(ClientIdentityHandler()) }
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
