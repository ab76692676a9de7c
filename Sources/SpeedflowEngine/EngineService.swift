import Foundation
import ServiceLifecycle

/// Runs the engine inside a `ServiceGroup`: on graceful shutdown (after the HTTP server, listed after it,
/// has stopped taking requests) it drains the intake, commits the store and closes the log.
public struct EngineService: Service {
    public let engine: Engine

    public init(engine: Engine) { self.engine = engine }

    public func run() async throws {
        engine.start()
        try? await gracefulShutdown()
        let engine = self.engine
        // `shutdown` blocks on the commit thread; keep it off the cooperative pool.
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                engine.shutdown()
                c.resume()
            }
        }
    }
}
