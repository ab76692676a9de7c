import SpeedflowModel

/// Where valid events go once a request is decoded: the one thing `POST /events` and the PostgreSQL source need.
///
/// - `Engine` (serve): the segment log's group commit, then counted; answers accepted and duplicates.
/// - The Kafka sink of an ingest node (`SpeedflowScaleOut`): durable in Kafka; counting happens downstream.
public protocol EventSink: Sendable {
    /// Makes `events` durable (and, for a counting sink, counted) as one record attributed to `writer` (a
    /// credential id, or nil); returns once they are, or throws having stored nothing the client must not resend.
    /// `reports`: what cameras say they have recorded (`POST /kvfv/{id}/status`), durable with the events.
    /// `rejections`: the request's rejections per camera and reason, durable with the events (a request whose
    /// elements were all rejected makes a record of its tallies alone), counted per camera by arrival time.
    func ingest(
        _ events: [CameraEvent], reports: [CameraReport], rejections: [RejectionTally], arrivalMs: Int64, writer: String?
    ) async throws(IngestError) -> IngestOutcome
    /// Events waiting to be made durable (for `/stats` and back-pressure).
    var queueDepth: Int { get }
}

extension EventSink {
    public func ingest(
        _ events: [CameraEvent], reports: [CameraReport], arrivalMs: Int64, writer: String? = nil
    ) async throws(IngestError) -> IngestOutcome {
        try await ingest(events, reports: reports, rejections: [], arrivalMs: arrivalMs, writer: writer)
    }

    public func ingest(_ events: [CameraEvent], arrivalMs: Int64, writer: String? = nil) async throws(IngestError) -> IngestOutcome {
        try await ingest(events, reports: [], rejections: [], arrivalMs: arrivalMs, writer: writer)
    }
}

/// Why an ingest was not taken. Nothing of the request is stored in either case.
public struct IngestError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The intake queue is full: retry after a moment.
        public static let overloaded = Code(raw: "overloaded")
        /// The server is shutting down: retry against it after restart.
        public static let shuttingDown = Code(raw: "shutting_down")
        /// The log could not make the events durable (disk full, I/O error).
        public static let logFailure = Code(raw: "log_failure")
        /// A late event's bucket is neither in memory nor readable from the store (ClickHouse down): the request
        /// is in the log but its count is not settled; resending it is safe (dedup).
        public static let storeUnavailable = Code(raw: "store_unavailable")
        /// The data directory's file system is below `--min-free-space` (`FreeSpaceGuard`): nothing was stored;
        /// resend once space returns.
        public static let insufficientStorage = Code(raw: "insufficient_storage")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
