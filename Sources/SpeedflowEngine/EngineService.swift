import Foundation
import NIOPosix
import ServiceLifecycle

/// Runs the engine inside a `ServiceGroup`: on graceful shutdown (after the HTTP server, listed after it,
/// has stopped taking requests) it drains the intake, commits the store and closes the log.
///
/// The service owns the thread pool of the engine's blocking work (background flushes, integrity checks, the
/// final drain), started with it and stopped after it: nothing the engine runs outlives the service.
public struct EngineService: Service {
    public let engine: Engine

    public init(engine: Engine) { self.engine = engine }

    public func run() async throws {
        let pool = NIOThreadPool(numberOfThreads: 3)
        pool.start()
        engine.start(background: pool)
        try? await gracefulShutdown()
        let engine = self.engine
        // `shutdown` blocks on the commit thread and the last flush; keep it off the cooperative pool. It runs
        // even when the group was cancelled rather than shut down gracefully: answered requests must land.
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            pool.submit { _ in
                engine.shutdown()
                c.resume()
            }
        }
        try await pool.shutdownGracefully()
    }
}
