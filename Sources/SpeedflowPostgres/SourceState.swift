import Foundation
import SpeedflowModel

#if canImport(Glibc)
import Glibc
#endif

/// Where a source is in its table: the last row (or change) whose event is durable in Speedflow.
///
/// Poll / notify: `(xid, id)` = the inserting transaction (`xid8` column) and the row key, in that order.
/// Logical: `(commit LSN, change LSN)` of the change; the slot's `confirmed_flush_lsn` is the authority there,
/// this copy only orders the rejected-rows record.
public struct SourcePosition: Codable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: UInt64
    public var minor: Int64

    public init(major: UInt64, minor: Int64) {
        self.major = major
        self.minor = minor
    }

    public static let start = SourcePosition(major: 0, minor: Int64.min)

    public static func < (a: SourcePosition, b: SourcePosition) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    public var description: String { "\(major)/\(minor)" }
}

/// A row that failed validation: never skipped silently, written here before the position moves past it.
public struct RejectedRow: Codable, Sendable, Hashable {
    public var position: SourcePosition
    /// The row's key (`id` column) as text.
    public var rowId: String
    public var reason: String
    public var field: String?
    /// When it was rejected, RFC 3339.
    public var at: String

    enum CodingKeys: String, CodingKey {
        case position, rowId = "row_id", reason, field, at
    }
}

/// The source's persistent state in `<data-dir>/sources/`: the position file (replaced atomically, fsync'd)
/// and the rejected-rows record (NDJSON, appended and fsync'd), both written only after the events before
/// them are durable in the engine.
public final class SourceStateFiles: Sendable {
    public let positionPath: String
    public let rejectedPath: String

    public init(dataDir: String, sourceName: String) throws {
        let dir = URL(fileURLWithPath: dataDir, isDirectory: true).appendingPathComponent("sources", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        positionPath = dir.appendingPathComponent("postgres-\(sourceName).position.json").path
        rejectedPath = dir.appendingPathComponent("postgres-\(sourceName).rejected.ndjson").path
    }

    struct PositionFile: Codable {
        var mode: String
        var table: String
        var position: SourcePosition
    }

    /// The stored position, or `nil` before the first batch.
    public func loadPosition(mode: String, table: String) throws -> SourcePosition? {
        guard let data = FileManager.default.contents(atPath: positionPath) else { return nil }
        let file = try JSONDecoder().decode(PositionFile.self, from: data)
        guard file.table == table, (file.mode == "logical") == (mode == "logical") else {
            throw PostgresSourceError(
                .position,
                "\(positionPath) belongs to table \(file.table) in mode \(file.mode); use another --name for this source")
        }
        return file.position
    }

    /// Replaces the position file: temp file, fsync, rename, fsync of the directory.
    public func savePosition(_ position: SourcePosition, mode: String, table: String) throws {
        let data = try JSONEncoder().encode(PositionFile(mode: mode, table: table, position: position))
        try Self.writeDurably(data, to: positionPath)
    }

    /// The position of the last rejected row recorded (rows re-read after a crash are not recorded twice).
    public func lastRejectedPosition() -> SourcePosition? {
        guard let data = FileManager.default.contents(atPath: rejectedPath), !data.isEmpty else { return nil }
        let lines = data.split(separator: UInt8(ascii: "\n"))
        for line in lines.reversed() {
            if let row = try? JSONDecoder().decode(RejectedRow.self, from: Data(line)) { return row.position }
        }
        return nil
    }

    /// Appends and fsyncs.
    public func appendRejected(_ rows: [RejectedRow]) throws {
        guard !rows.isEmpty else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var data = Data()
        for row in rows {
            data.append(try encoder.encode(row))
            data.append(UInt8(ascii: "\n"))
        }
        let fd = open(rejectedPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw PostgresSourceError(.position, "cannot open \(rejectedPath): errno \(errno)") }
        defer { close(fd) }
        try Self.writeAll(fd, data, rejectedPath)
        guard fsync(fd) == 0 else { throw PostgresSourceError(.position, "fsync \(rejectedPath): errno \(errno)") }
    }

    static func writeDurably(_ data: Data, to path: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw PostgresSourceError(.position, "cannot open \(tmp): errno \(errno)") }
        do {
            try writeAll(fd, data, tmp)
            guard fsync(fd) == 0 else { throw PostgresSourceError(.position, "fsync \(tmp): errno \(errno)") }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw PostgresSourceError(.position, "rename \(tmp): errno \(errno)") }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    private static func writeAll(_ fd: Int32, _ data: Data, _ path: String) throws {
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw PostgresSourceError(.position, "write \(path): errno \(errno)")
                }
                offset += n
            }
        }
    }
}
