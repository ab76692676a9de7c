import ServiceLifecycle
import SpeedflowTestSupport
import Testing

/// Runs `group` (a server's services) in a child task until `ready` holds, then `body`; afterwards, also when `body`
/// throws, shuts the group down gracefully and waits for it, as SIGTERM would.
func withRunningGroup(
    _ group: ServiceGroup, until what: String, ready: () -> Bool, _ body: () async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        try await waitUntil(what, timeout: .seconds(30)) { ready() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
    }
}
