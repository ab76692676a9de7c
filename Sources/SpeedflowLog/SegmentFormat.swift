import CZlib
import Foundation

/// The on-disk format of a log segment, and the pure scanning that recovery and verification share.
///
/// Format 2 (current): a 64-byte header, then records.
/// ```
/// header  [8: magic "SFLOG2\r\n"] [24: slot 0] [24: slot 1] [8: zero]
/// slot    [u64 sequence] [u64 acknowledged offset] [u32 crc32 of the 16 bytes before] [u32 zero]
/// record  [u32 magic "SFLR"] [u32 length, bit 31 = padding] [u32 crc32(length field ++ payload)] [payload]
/// ```
/// Every group commit first rewrites the older header slot with the offset up to which the log was already
/// durable (the end before this commit), then writes its records, then one `fdatasync` covers both. So after a
/// crash the newest valid slot says how far the log was certainly acknowledged: a bad record before that
/// offset is damage (a rotting disk), never a torn write, and is never truncated away. Two slots, each with its
/// own CRC, so a torn header write leaves the previous one readable. The record magic lets a scan find the
/// next record after a damaged one. A padding record stands in for quarantined or missing bytes: readers skip
/// it, so offsets after it stay valid; its CRC covers only its length field.
///
/// Format 1 (before data-dir format 2): no header, records `[u32 length][u32 crc32(payload)][payload]`. Such
/// segments stay readable; a log whose last segment is format 1 rolls to a format-2 segment when opened.
///
/// Offsets are global byte positions over record bytes only (headers excluded), so a segment named `base`
/// holding `n` record bytes is followed by the segment named `base + n`.
enum SegmentFormat: Sendable, Equatable {
    case v1
    case v2

    static let magic: [UInt8] = Array("SFLOG2\r\n".utf8)
    static let recordMagic: UInt32 = 0x524C_4653  // "SFLR" little endian
    static let headerSize = 64
    static let slotOffsets = [8, 32]
    static let paddingFlag: UInt32 = 0x8000_0000

    var headerSize: Int { self == .v2 ? Self.headerSize : 0 }
    var recordHeaderSize: Int { self == .v2 ? 12 : 8 }

    /// The format of a segment from its first bytes: an empty or header-less file is format 1 unless empty.
    static func detect(_ prefix: UnsafeRawBufferPointer) -> SegmentFormat? {
        if prefix.count >= magic.count, Array(prefix.prefix(magic.count)) == magic { return .v2 }
        return prefix.isEmpty ? nil : .v1
    }

    /// A fresh format-2 header whose slot 0 acknowledges `acked`.
    static func header(acked: UInt64) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: headerSize)
        h.replaceSubrange(0..<magic.count, with: magic)
        h.replaceSubrange(slotOffsets[0]..<(slotOffsets[0] + 24), with: slot(sequence: 1, acked: acked))
        return h
    }

    static func slot(sequence: UInt64, acked: UInt64) -> [UInt8] {
        var s = [UInt8]()
        s.reserveCapacity(24)
        withUnsafeBytes(of: sequence.littleEndian) { s.append(contentsOf: $0) }
        withUnsafeBytes(of: acked.littleEndian) { s.append(contentsOf: $0) }
        let crc = s.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, 16)) }
        withUnsafeBytes(of: crc.littleEndian) { s.append(contentsOf: $0) }
        s.append(contentsOf: [0, 0, 0, 0])
        return s
    }

    /// The newest valid slot of a format-2 header: (sequence, acknowledged offset), or nil if neither is valid.
    static func newestSlot(_ header: UnsafeRawBufferPointer) -> (sequence: UInt64, acked: UInt64)? {
        guard header.count >= headerSize else { return nil }
        var best: (UInt64, UInt64)?
        for at in slotOffsets {
            let slot = UnsafeRawBufferPointer(rebasing: header[at..<(at + 24)])
            let crc = UInt32(crc32(0, slot.baseAddress!.assumingMemoryBound(to: UInt8.self), 16))
            guard crc == slot.loadUnaligned(fromByteOffset: 16, as: UInt32.self).littleEndian else { continue }
            let seq = slot.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
            let acked = slot.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
            if best == nil || seq > best!.0 { best = (seq, acked) }
        }
        return best
    }

    /// Appends one record (format 2) to `buffer`.
    static func appendRecord(_ payload: [UInt8], to buffer: inout [UInt8]) {
        let length = UInt32(payload.count)
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

    /// Largest padding record: its length field has 31 bits.
    static let maxPadding: UInt64 = UInt64(Int32.max) + 12

    /// What is at `position` of `bytes` (record area of a segment).
    enum Scan {
        /// A record: its payload range and where the next record starts.
        case record(payload: Range<Int>, next: Int)
        /// A padding record (quarantined or missing bytes): skip to `next`.
        case padding(next: Int)
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
            let length = Int(field & ~Self.paddingFlag)
            guard length <= limit - position - header else { return .invalid }
            if field & Self.paddingFlag != 0 {
                // A stand-in for missing bytes may be a sparse hole, so only its length field is checked.
                return UInt32(crc) == stored ? .padding(next: position + 12 + length) : .invalid
            }
            let payload = (position + 12)..<(position + 12 + length)
            crc = crc32(crc, raw.baseAddress!.advanced(by: payload.lowerBound).assumingMemoryBound(to: UInt8.self), uInt(length))
            return UInt32(crc) == stored ? .record(payload: payload, next: payload.upperBound) : .invalid
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
                case .record, .padding: return p
                case .invalid, .end: break
                }
            }
            p += 1
        }
        return nil
    }
}
