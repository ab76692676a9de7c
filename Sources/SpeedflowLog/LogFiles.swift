import Foundation

/// Read-only access to a segment log's files, beside a `serve` that may be appending to them (`speedflow check`
/// and `speedflow backup` take no lock and write nothing).
///
/// How a reader outside the writing process finds a consistent end: bytes of an append whose `fdatasync` had
/// returned are in the file and never change again (quarantine, which rewrites bytes, runs only with the server
/// stopped). Only the append in progress, at the very end of the last segment, may be seen partly written. So
/// the rule is the one `SegmentLog` applies at start: in the last segment, an invalid record at or after the
/// acknowledged point — the highest commit mark in the bytes read, or `log/ACKED` read *before* them — is that
/// append (or one a crash cut): the log, as read, ends there. Anything invalid before it, in any segment, is
/// damage.
public enum LogFiles {
    /// One segment file.
    public struct SegmentInfo: Sendable {
        public let name: String
        public let url: URL
        /// Global offset of its first record byte.
        public let base: UInt64
        /// Segment format: 1 (`.seg`, before data-dir format 2) or 2.
        public let formatVersion: Int
        let format: SegmentFormat
    }

    /// What a snapshot of one segment's bytes holds.
    public struct SegmentScan: Sendable {
        public let segment: SegmentInfo
        /// The file's bytes up to the log's end as read (a valid segment file on its own: magic, whole records).
        public let kept: Data
        /// Record bytes in `kept`.
        public let recordBytes: UInt64
        /// Invalid regions before the acknowledged point (global offsets).
        public let damage: [LogDamage]
        /// Bytes after the end as read: an append in progress, or one a crash cut (only in the last segment).
        public let unacknowledgedTail: Int

        public var end: UInt64 { segment.base + recordBytes }
    }

    /// The whole log, as `check` reports it.
    public struct Verification: Sendable {
        public var segments: [SegmentInfo] = []
        public var start: UInt64 = 0
        public var end: UInt64 = 0
        public var damage: [LogDamage] = []
        /// See `SegmentScan.unacknowledgedTail`.
        public var unacknowledgedTail = 0
        /// Ranges set aside earlier (`log/quarantine/`).
        public var quarantined: [LogDamage] = []
        /// `log/ACKED`, if readable.
        public var ackedMark: UInt64?
    }

    /// The segment files of the log in `directory`, in offset order.
    public static func segments(_ directory: URL) throws -> [SegmentInfo] {
        try SegmentLog.listSegments(directory).map {
            SegmentInfo(name: $0.url.lastPathComponent, url: $0.url, base: $0.base, formatVersion: $0.format == .v1 ? 1 : 2, format: $0.format)
        }
    }

    /// `log/ACKED`: the offset up to which appends had returned (lags by up to its interval), if readable.
    public static func ackedMark(_ directory: URL) -> UInt64? {
        AckedMark.read(directory.appendingPathComponent("ACKED"))?.offset
    }

    /// The ranges `log/quarantine/` records.
    public static func quarantined(_ directory: URL) -> [LogDamage] { SegmentLog.quarantined(in: directory) }

    /// Scans `data`, the whole file of `segment`. `last`: the log's last segment, whose invalid tail at or after
    /// the acknowledged point (`acked`, read from `log/ACKED` before `data`, or a commit mark inside it) is cut.
    public static func scan(_ data: Data, segment: SegmentInfo, last: Bool, acked: UInt64?) -> SegmentScan {
        let format = segment.format
        let h = format.headerSize
        if data.count < h {
            // A segment created but its magic never fully written: an empty segment.
            return SegmentScan(
                segment: segment, kept: Data(SegmentFormat.header()), recordBytes: 0, damage: [], unacknowledgedTail: last ? data.count : 0)
        }
        let (invalid, marks) = data.withUnsafeBytes { format.scanAll($0, from: h, limit: $0.count) }
        var cut = data.count
        var damage: [LogDamage] = []
        let ackedOffset = max(marks ?? segment.base, acked ?? 0, segment.base)
        let ackedPosition = h + Int(min(ackedOffset - segment.base, UInt64(data.count - h)))
        for region in invalid {
            if last && region.lowerBound >= ackedPosition {
                cut = region.lowerBound
                break
            }
            damage.append(
                LogDamage(
                    kind: .corrupt,
                    range: (segment.base + UInt64(region.lowerBound - h))..<(segment.base + UInt64(region.upperBound - h)),
                    segment: segment.name))
        }
        return SegmentScan(
            segment: segment, kept: data.prefix(cut), recordBytes: UInt64(cut - h), damage: damage,
            unacknowledgedTail: data.count - cut)
    }

    /// Reads every segment of the log in `directory` and lists its damage (no lock taken, nothing written: works
    /// beside a running server). Costs a read of the whole log.
    public static func verify(_ directory: URL) throws -> Verification {
        var v = Verification()
        // Before the segments: the mark never passes what the files then held.
        v.ackedMark = ackedMark(directory)
        v.segments = try segments(directory)
        v.quarantined = quarantined(directory)
        guard !v.segments.isEmpty else { return v }
        v.start = v.segments[0].base
        var previousEnd: UInt64?
        for (i, segment) in v.segments.enumerated() {
            let data: Data
            do {
                data = try Data(contentsOf: segment.url, options: .uncached)
            } catch where i == 0 && (error as? CocoaError)?.code == .fileReadNoSuchFile {
                continue  // removed by retention meanwhile
            }
            let last = i == v.segments.count - 1
            let scan = scan(data, segment: segment, last: last, acked: last ? v.ackedMark : nil)
            if let previousEnd {
                if previousEnd < segment.base {
                    v.damage.append(LogDamage(kind: .missing, range: previousEnd..<segment.base, segment: segment.name))
                } else if previousEnd > segment.base {
                    v.damage.append(LogDamage(kind: .corrupt, range: segment.base..<previousEnd, segment: segment.name))
                }
            } else {
                v.start = segment.base
            }
            v.damage += scan.damage
            v.unacknowledgedTail += scan.unacknowledgedTail
            previousEnd = scan.end
            v.end = scan.end
        }
        if let acked = v.ackedMark, acked > v.end {
            v.damage.append(LogDamage(kind: .missing, range: v.end..<acked, segment: v.segments.last?.name ?? ""))
        }
        return v
    }
}
