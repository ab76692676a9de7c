import Metrics
import SpeedflowModel

/// The source's swift-metrics instruments (exported by `/metrics` in `speedflow serve`), labelled by source.
struct SourceMetrics: Sendable {
    enum ErrorKind: String {
        case connection, ingest, position, configuration
    }

    let source: String
    /// Rows (or inserted changes) read from PostgreSQL.
    let rowsRead: Counter
    let accepted: Counter
    let duplicates: Counter
    /// Rows past the position, committed or waiting behind an open transaction (poll / notify).
    let lagRows: Gauge
    /// WAL bytes between the server's current LSN and the slot's confirmed position (logical).
    let lagBytes: Gauge

    init(source: String) {
        self.source = source
        let s = [("source", source)]
        rowsRead = Counter(label: "speedflow_source_postgres_rows_read_total", dimensions: s)
        accepted = Counter(label: "speedflow_source_postgres_events_total", dimensions: s + [("outcome", "accepted")])
        duplicates = Counter(label: "speedflow_source_postgres_events_total", dimensions: s + [("outcome", "duplicate")])
        lagRows = Gauge(label: "speedflow_source_postgres_lag_rows", dimensions: s)
        lagBytes = Gauge(label: "speedflow_source_postgres_lag_bytes", dimensions: s)
    }

    func rejected(_ reason: RejectionReason) {
        Counter(label: "speedflow_source_postgres_rows_rejected_total", dimensions: [("source", source), ("reason", reason.rawValue)])
            .increment()
    }

    func errors(_ kind: ErrorKind) {
        Counter(label: "speedflow_source_postgres_errors_total", dimensions: [("source", source), ("kind", kind.rawValue)]).increment()
    }

    /// UPDATE / DELETE / TRUNCATE seen by logical decoding and not applied (the aggregate is append-only).
    func ignored(_ action: String) {
        Counter(label: "speedflow_source_postgres_changes_ignored_total", dimensions: [("source", source), ("action", action)])
            .increment()
    }
}
