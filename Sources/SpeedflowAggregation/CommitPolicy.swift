/// How a store takes a flush — the one difference between stores that the pipeline has to know about.
///
/// It is read from the store once, where a pipeline is put together, and handed to the two parts it changes:
/// the bucket table (whether to keep each bucket's delta and new events) and the flush state machine (what a
/// failed commit means).
public enum CommitPolicy: Sendable, Hashable {
    /// The store replaces each changed bucket's whole state (SQLite). A failed commit changed nothing, so its
    /// buckets are simply dirty again and go out, merged with newer changes, in the next flush.
    case overwrite
    /// The store appends each bucket's delta and new events (ClickHouse). A failed commit may have landed in
    /// part (one shard written, the other not), so it is retried verbatim — same content, same log offset —
    /// before anything newer: merged into the next delta it could be counted twice.
    case appendDeltas
}
