import CZlib
import Foundation

/// The on-disk format of a log segment, and the pure scanning that recovery and verification share.
///
/// Format 2 (current): an 8-byte magic `"SFLOG2\r\n"`, then records
/// `[u32 magic "SFLR"][u32 length | kind bits][u32 crc32][payload]`. Three kinds, by the length field's top bits:
/// - an event record (bits clear): CRC over the length field and the payload;
/// - a **commit mark** (bit 30): payload = the u64 offset up to which the log was already durable. Every group
///   commit starts with one (the end of the previous commit, whose fsync had returned), in the same write and
///   the same `fdatasync` as its records, so it costs 20 bytes and no extra IO. After a crash, the highest valid
///   mark in the last segment says how far the log was certainly acknowledged: a bad record before it is damage
///   (a rotting disk), never a torn write, and is never truncated away. The record magic lets a scan step over
///   a damaged record and still find the marks after it;
/// - **padding** (bit 31): stands in for quarantined or missing bytes; readers skip it, so later offsets stay
///   valid. Its CRC covers only its length field (the bytes it covers may be a sparse hole).
///
/// Format 1 (before data-dir format 2): no magic, records `[u32 length][u32 crc32(payload)][payload]`. Such
/// segments stay readable; a log whose last segment is format 1 rolls to a format-2 segment when opened.
///
/// Offsets are global byte positions over record bytes only (the file magic excluded), so a segment named `base`
/// holding `n` record bytes is followed by the segment named `base + n`.
enum SegmentFormat: Sendable, Equatable {
    case v1
    case v2

    static let magic: [UInt8] = Array("SFLOG2\r\n".utf8)
    static let recordMagic: UInt32 = 0x524C_4653  // "SFLR" little endian
    static let headerSize = 8
    static let paddingFlag: UInt32 = 0x8000_0000
    static let markFlag: UInt32 = 0x4000_0000
    static let lengthMask: UInt32 = 0x3FFF_FFFF
    /// Bytes of one commit mark.
    static let markSize = 20

    var headerSize: Int { self == .v2 ? Self.headerSize : 0 }
    var recordHeaderSize: Int { self == .v2 ? 12 : 8 }

    /// The format of a segment from its first bytes; nil for an empty file.
    static func detect(_ prefix: UnsafeRawBufferPointer) -> SegmentFormat? {
        if prefix.count >= magic.count, Array(prefix.prefix(magic.count)) == magic { return .v2 }
        return prefix.isEmpty ? nil : .v1
    }

    static func header() -> [UInt8] { magic }

    /// Appends a commit mark saying the log was durable up to `acked`.
    static func appendMark(acked: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: acked.littleEndian) { appendRecord(Array($0), flags: markFlag, to: &buffer) }
    }

    /// Appends one record (format 2) to `buffer`.
    static func appendRecord(_ payload: [UInt8], flags: UInt32 = 0, to buffer: inout [UInt8]) {
        let length = UInt32(payload.count) | flags
        withUnsafeBytes(of: recordMagic.littleEndian) { buffer.append(contentsOf: $0) }
        withUnsafeBytes(of: length.littleEndian) { buffer.append(contentsOf: $0) }
        var crc = withUnsafeBytes(of: length.littleEndian) { crc32(0, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 4) }
        crc = payload.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt($0.count)) }
        withUnsafeBytes(of: UInt32(crc).littleEndian) { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: payload)
    }

    /// The 12-byte header of a padding record covering `total` bytes (header included; `total >= 12`).
    static func paddingHeader(total: UInt64) -> [UInt8] {
        let field = UInt32(total - 12) | paddingFlag
        var h = [UInt8]()
        withUnsafeBytes(of: recordMagic.littleEndian) { h.append(contentsOf: $0) }
        withUnsafeBytes(of: field.littleEndian) { h.append(contentsOf: $0) }
        let crc = withUnsafeBytes(of: field.littleEndian) { crc32(0, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 4) }
        withUnsafeBytes(of: UInt32(crc).littleEndian) { h.append(contentsOf: $0) }
        return h
    }

    /// Largest padding record: its length field has 30 bits.
    static let maxPadding: UInt64 = UInt64(lengthMask) + 12

    /// What is at `position` of `bytes` (record area of a segment).
    enum Scan {
        /// A record: its payload range and where the next record starts.
        case record(payload: Range<Int>, next: Int)
        /// A padding record (quarantined or missing bytes): skip to `next`.
        case padding(next: Int)
        /// A commit mark: the log was durable up to `acked` when it was written.
        case mark(acked: UInt64, next: Int)
        /// Not a valid record (bad magic, CRC, or a length past `limit`).
        case invalid
        /// Fewer bytes than a record header remain before `limit`.
        case end
    }

    func scan(_ raw: UnsafeRawBufferPointer, at position: Int, limit: Int) -> Scan {
        let header = recordHeaderSize
        guard position + header <= limit else { return position == limit ? .end : .invalid }
        switch self {
        case .v1:
            let length = Int(raw.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian)
            let crc = raw.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self).littleEndian
            guard length <= limit - position - header else { return .invalid }
            let payload = (position + 8)..<(position + 8 + length)
            let actual = UInt32(crc32(0, raw.baseAddress!.advanced(by: payload.lowerBound).assumingMemoryBound(to: UInt8.self), uInt(length)))
            return actual == crc ? .record(payload: payload, next: payload.upperBound) : .invalid
        case .v2:
            guard raw.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian == Self.recordMagic else { return .invalid }
            let field = raw.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self).littleEndian
            let stored = raw.loadUnaligned(fromByteOffset: position + 8, as: UInt32.self).littleEndian
            var crc = crc32(0, raw.baseAddress!.advanced(by: position + 4).assumingMemoryBound(to: UInt8.self), 4)
            let length = Int(field & Self.lengthMask)
            guard length <= limit - position - header else { return .invalid }
            if field & Self.paddingFlag != 0 {
                // A stand-in for missing bytes may be a sparse hole, so only its length field is checked.
                return UInt32(crc) == stored && field & Self.markFlag == 0 ? .padding(next: position + 12 + length) : .invalid
            }
            let payload = (position + 12)..<(position + 12 + length)
            crc = crc32(crc, raw.baseAddress!.advanced(by: payload.lowerBound).assumingMemoryBound(to: UInt8.self), uInt(length))
            guard UInt32(crc) == stored else { return .invalid }
            if field & Self.markFlag != 0 {
                guard length == 8 else { return .invalid }
                return .mark(acked: raw.loadUnaligned(fromByteOffset: payload.lowerBound, as: UInt64.self).littleEndian, next: payload.upperBound)
            }
            return .record(payload: payload, next: payload.upperBound)
        }
    }

    /// The first position after `from` where a valid record or padding starts (format 2 only: format 1 has no
    /// magic to search for, so nothing after a damaged format-1 record can be found again).
    func resync(_ raw: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int? {
        guard self == .v2 else { return nil }
        let m0 = UInt8(Self.recordMagic & 0xff)
        var p = from
        while p + 12 <= limit {
            if raw[p] == m0 {
                switch scan(raw, at: p, limit: limit) {
                case .record, .padding, .mark: return p
                case .invalid, .end: break
                }
            }
            p += 1
        }
        return nil
    }

    /// Every invalid region of a segment's record area (file positions; each ends where the next valid record
    /// starts, or at `limit`) and the highest commit mark found, scanning past damage by the record magic.
    func scanAll(_ raw: UnsafeRawBufferPointer, from: Int, limit: Int) -> (invalid: [Range<Int>], acked: UInt64?) {
        var invalid: [Range<Int>] = []
        var acked: UInt64?
        var p = from
        while true {
            switch scan(raw, at: p, limit: limit) {
            case .record(_, let next), .padding(let next): p = next
            case .mark(let a, let next):
                acked = max(acked ?? 0, a)
                p = next
            case .end: return (invalid, acked)
            case .invalid:
                let q = resync(raw, from: p + 1, limit: limit) ?? limit
                invalid.append(p..<q)
                if q == limit { return (invalid, acked) }
                p = q
            }
        }
    }
}
