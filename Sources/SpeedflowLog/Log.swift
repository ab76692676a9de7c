/// A position in a log: records before it are "consumed". For the segment log it is the global byte offset.
public struct LogOffset: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public static let zero = LogOffset(0)
    public static func < (a: LogOffset, b: LogOffset) -> Bool { a.value < b.value }
    public var description: String { String(value) }
}

/// The durable, ordered intake: what is in the log is never lost, and replaying it from a stored offset
/// rebuilds everything after that offset.
///
/// Calls are synchronous and blocking (they fsync); callers keep them off the cooperative pool. A single
/// writer appends; reads are for replay and may run before or beside appends.
public protocol Log: AnyObject, Sendable {
    /// Appends `payloads` in order and returns only once they are durable. Returns the end offset after each one.
    func append(_ payloads: [[UInt8]]) throws -> [LogOffset]

    /// The offset after the last durable record.
    var endOffset: LogOffset { get }

    /// The oldest offset still readable (records before it were removed by retention).
    var startOffset: LogOffset { get }

    /// Calls `body(payload, endOffsetOfRecord)` for every record at or after `offset`, in order.
    /// `offset` must be a record boundary previously returned by this log (or `startOffset`).
    func read(from offset: LogOffset, _ body: (UnsafeRawBufferPointer, LogOffset) throws -> Void) throws

    /// Bytes on disk.
    var sizeInBytes: Int64 { get }

    /// Deletes whole segments whose records all end at or before `consumed` and which were last written
    /// before `cutoffMs` (retention = acceptance horizon). Returns the number of segments removed.
    @discardableResult
    func removeSegments(consumedUpTo consumed: LogOffset, lastWrittenBeforeMs cutoffMs: Int64) throws -> Int

    /// Flushes and closes; further appends fail.
    func close() throws

    /// Squares the log with what its consumer has counted (the store's checkpoint), before any replay: a log
    /// that ends before `checkpoint`, or damage after it, stops the caller with a clear error; damage before it
    /// (already counted) is set aside. Logs that are not the replay source do nothing.
    func reconcile(countedUpTo checkpoint: UInt64) throws

    /// Ranges set aside (damaged or missing, see `SegmentLog.quarantine`): their events are in no replay, so a
    /// store rebuilt from this log would lack them.
    var quarantined: [LogDamage] { get }
}

extension Log {
    public func reconcile(countedUpTo checkpoint: UInt64) throws {}
    public var quarantined: [LogDamage] { [] }
}

/// Damaged or missing bytes of acknowledged log data, as global offsets.
public struct LogDamage: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Bytes present but not valid records (bad CRC, magic or length): a rotting disk or an outside write.
        case corrupt
        /// Bytes absent: a deleted or truncated segment, or a log that ends before what the store counted.
        case missing
    }

    public var kind: Kind
    public var range: Range<UInt64>
    /// The segment file it was found in (or after), for messages.
    public var segment: String

    public init(kind: Kind, range: Range<UInt64>, segment: String) {
        self.kind = kind
        self.range = range
        self.segment = segment
    }

    public var description: String {
        "\(kind.rawValue) log bytes at offsets \(range.lowerBound)..<\(range.upperBound) (\(range.count) bytes)"
            + (segment.isEmpty ? "" : " in or after \(segment)")
    }
}

/// Errors of the log, with a stable code.
public struct LogError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        public static let io = Code(raw: "io")
        public static let corrupt = Code(raw: "corrupt")
        public static let closed = Code(raw: "closed")
        public static let badOffset = Code(raw: "bad_offset")
        public static let locked = Code(raw: "locked")
        /// The store counted more of the log than the log holds.
        public static let behindStore = Code(raw: "log_behind_store")
        public var description: String { raw }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "log error (\(code)): \(message)" }
}
