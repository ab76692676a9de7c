import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Appends one JSON line per completed ClickHouse statement to the file `SPEEDFLOW_CLICKHOUSE_RECORD` names,
/// so `scripts/chdb-check` can replay what 18.16 was asked on a current ClickHouse and compare the answers.
///
/// Off unless the variable is set; it is read once per process. A line holds the node, the SQL, the URL
/// settings, the INSERT body and the node's answer (both base64) or its error, and two numbers from one
/// per-process counter: `started` (taken before the request goes out) and `seq` (taken when the line is
/// written). Lines are written in `seq` order, so a statement's line follows every statement that completed
/// before it; a read whose `started`…`seq` overlaps a write of the same database may or may not have seen it,
/// which the checker needs to know. Credentials are never part of a line: they travel in a header this
/// does not see, and URLs cannot hold any (`ClickHouseTopology`).
final class StatementRecorder: Sendable {
    /// The recorder of this process, or `nil` (the default) when the variable is unset or the file can't open.
    static let shared: StatementRecorder? = {
        guard let path = ProcessInfo.processInfo.environment["SPEEDFLOW_CLICKHOUSE_RECORD"], !path.isEmpty else { return nil }
        let recorder = StatementRecorder(path: path)
        if recorder == nil {
            FileHandle.standardError.write(Data("SPEEDFLOW_CLICKHOUSE_RECORD: cannot open \(path); not recording\n".utf8))
        }
        return recorder
    }()

    private let fd: Int32
    /// The counter behind `started` and `seq`; held while a line is written, so file order is `seq` order.
    private let counter = Mutex<UInt64>(0)

    init?(path: String) {
        // O_APPEND: several processes (a test and the binary it starts) may record into one file.
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
    }

    deinit { close(fd) }

    /// Called before a statement is sent.
    func begin() -> UInt64 {
        counter.withLock { n in
            n += 1
            return n
        }
    }

    struct Line: Encodable {
        var seq: UInt64
        var started: UInt64
        var pid: Int32
        var node: String
        var sql: String
        var settings: [String: String]
        var body: String?
        var answer: String?
        var error: String?
        var errorKind: String?

        enum CodingKeys: String, CodingKey {
            case seq, started, pid, node, sql, settings, body, answer, error
            case errorKind = "error_kind"
        }
    }

    /// Called when the statement's answer (or failure) is known, before the caller sees it. Runs on an event
    /// loop; a write of one line to a local file is short, and only happens while recording.
    func record(
        started: UInt64, node: String, sql: String, settings: [String: String], body: [UInt8]?,
        result: Result<[UInt8], any Error>
    ) {
        var line = Line(
            seq: 0, started: started, pid: getpid(), node: node, sql: sql, settings: settings,
            body: body.map { Data($0).base64EncodedString() })
        switch result {
        case .success(let answer):
            line.answer = Data(answer).base64EncodedString()
        case .failure(let error as ClickHouseError):
            line.error = error.message
            line.errorKind = "\(error.kind)"
        case .failure(let error):
            line.error = "\(error)"
            line.errorKind = "unknown"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        counter.withLock { n in
            n += 1
            line.seq = n
            guard var bytes = try? encoder.encode(line) else { return }
            bytes.append(UInt8(ascii: "\n"))
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { return }
                    offset += written
                }
            }
        }
    }
}
