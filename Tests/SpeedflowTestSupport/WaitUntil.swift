import Testing

/// Polls `condition` every `interval` until it holds; after `timeout` records an issue naming `what` and throws,
/// so a test waits on a real condition instead of sleeping and hoping. Errors the condition throws count as "not yet".
public func waitUntil(
    _ what: String, timeout: Duration, interval: Duration = .milliseconds(50),
    sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: interval)
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)", sourceLocation: sourceLocation)
    throw WaitTimeout(what: what, timeout: timeout)
}

/// What `waitUntil` throws when its condition did not hold in time.
public struct WaitTimeout: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for: \(what)" }
}
