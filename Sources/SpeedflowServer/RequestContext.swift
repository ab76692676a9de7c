import Hummingbird
import NIOCore
import SpeedflowAuth

/// Hummingbird's request context plus who is asking: `principal` is set by `AccessMiddleware` from a bearer
/// token or a dashboard session (nil when auth is off and nothing was presented).
public struct SpeedflowRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var principal: Principal?
    /// The connection, for its peer address and (under mutual TLS) its client certificate.
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}
