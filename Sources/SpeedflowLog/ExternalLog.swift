/// A log for processes whose events are durable elsewhere (Kafka aggregators, API nodes): nothing to append,
/// nothing to replay.
public final class ExternalLog: Log {
    public init() {}
    public var endOffset: LogOffset { LogOffset(0) }
    public var startOffset: LogOffset { LogOffset(0) }
    public var sizeInBytes: Int64 { 0 }
    public func append(_ payloads: [[UInt8]]) throws -> [LogOffset] {
        throw LogError(.closed, "this process does not take events (it is an API node or an aggregator)")
    }
    public func read(from offset: LogOffset, _ body: (UnsafeRawBufferPointer, LogOffset) throws -> Void) throws {}
    public func removeSegments(consumedUpTo consumed: LogOffset, lastWrittenBeforeMs cutoffMs: Int64) throws -> Int { 0 }
    public func close() throws {}

}

/// A log that takes concurrent appends itself (Kafka: the producer batches and pipelines), so an engine that
/// does not aggregate can skip its group-commit thread and let every request wait only for its own records.
public protocol ConcurrentAppendLog: Log {
    /// Returns once `payload` is durable in the log.
    func appendConcurrently(_ payload: [UInt8]) async throws
}
