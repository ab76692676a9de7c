import Foundation
import GRDB

/// Damages a real SQLite store file as a failing disk does: one page overwritten. The WAL is checkpointed into
/// the main file first, so a page is where `dbstat` (compiled into Debian's SQLite) says it is.
public enum PageDamage {
    /// Page size and the leaf pages of table or index `name`, ascending.
    public static func leafPages(_ path: String, of name: String) throws -> (pageSize: Int, pages: [Int]) {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            let size = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            let pages = try Int.fetchAll(
                db, sql: "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", arguments: [name])
            return (size, pages)
        }
    }

    public static func write(_ path: String, page: Int, pageSize: Int, _ bytes: Data) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: UInt64((page - 1) * pageSize))
        h.write(bytes)
    }

    public static func read(_ path: String, page: Int, pageSize: Int) throws -> Data {
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.seek(toOffset: UInt64((page - 1) * pageSize))
        return h.readData(ofLength: pageSize)
    }

    /// Random bytes over the whole page.
    public static func garbage(_ path: String, page: Int, pageSize: Int, seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        try write(path, page: page, pageSize: pageSize, Data((0..<pageSize).map { _ in UInt8(truncatingIfNeeded: rng.next()) }))
    }

    /// A misdirected write: another leaf of the same tree lands on this page. The b-tree stays well-formed,
    /// so SQLite reads on — the rows of this page are gone and others appear twice (the issue's `count: 0`).
    public static func copy(_ path: String, from source: Int, to page: Int, pageSize: Int) throws {
        try write(path, page: page, pageSize: pageSize, try read(path, page: source, pageSize: pageSize))
    }
}
