/// The log's payload: the events of one request (or one source batch) with their arrival time.
///
/// Binary, compact and versioned, because the log is both the replay source and the raw archive and its
/// size per event is a figure we track (~40–60 bytes for a seed-format event).
public struct EventRecord: Sendable, Hashable {
    /// Server time when the request arrived, ms since the epoch.
    public var arrivalMs: Int64
    public var events: [CameraEvent]
    /// Who wrote the record: the id of the credential the request presented (`nil`: none, e.g. `--auth off`,
    /// or a record from before attribution). `rebuild --exclude-credential` and `log export --credential`
    /// select by it.
    public var writer: String?
    /// What cameras reported they have recorded (`POST /kvfv/{id}/status`): travels through the log like events,
    /// so the backlog it implies is durable and ordered with them in every role.
    public var reports: [CameraReport]
    /// The request's rejections of elements that named a valid camera (`RejectionTally`): durable with its
    /// events, and counted per camera by arrival time wherever the record is applied.
    public var rejections: [RejectionTally]

    public init(
        arrivalMs: Int64, events: [CameraEvent], writer: String? = nil, reports: [CameraReport] = [],
        rejections: [RejectionTally] = []
    ) {
        self.arrivalMs = arrivalMs
        self.events = events
        self.writer = writer
        self.reports = reports
        self.rejections = rejections
    }

    /// 5: rejection tallies follow the camera reports (per tally: camera, reason code as its stable
    /// `RejectionReason.rawValue`, count). Written only when a record has tallies, so records without them keep
    /// their version-3/4 bytes; a reason code this version does not know (a newer writer's) is skipped on read.
    /// 4: events may carry `seq` / `seq_epoch` (flags 16 / 32), and camera reports follow the events. Written
    /// only when a record has one of them, so a log without sequence numbers stays readable by version-3
    /// readers. 3: the writer (a string, empty for none) after the arrival time. 2: event time stored as
    /// lateness (arrival − time) only; 1 also stored the absolute time. Records of versions 2 and 3 are still
    /// read (a version-2 writer is `nil`); a log holds all of them after upgrades.
    static let version: UInt8 = 5

    public func encode(into out: inout [UInt8]) {
        let tallied = !rejections.isEmpty
        let sequenced = tallied || !reports.isEmpty || events.contains { $0.seq != nil }
        out.append(tallied ? 5 : sequenced ? 4 : 3)
        out.appendVarint(zigzag: arrivalMs)
        out.appendString(writer ?? "")
        out.appendVarint(UInt64(events.count))
        for e in events {
            // Event time as its lateness against the record's arrival: small, so one to three bytes.
            out.appendVarint(zigzag: arrivalMs - e.timestampMs)
            withUnsafeBytes(of: e.speed.bitPattern.littleEndian) { out.append(contentsOf: $0) }
            var flags: UInt8 = 0
            if e.eventId != nil { flags |= 1 }
            if e.lane != nil { flags |= 2 }
            if e.plate != nil { flags |= 4 }
            if e.extra != nil { flags |= 8 }
            if e.seq != nil { flags |= 16 }
            if e.seqEpoch != nil { flags |= 32 }
            out.append(flags)
            out.appendString(e.kvfvId)
            if let v = e.eventId { out.appendString(v) }
            if let v = e.lane { out.appendVarint(UInt64(v)) }
            if let v = e.plate { out.appendString(v) }
            if let v = e.extra { out.appendString(v) }
            if let v = e.seq { out.appendVarint(UInt64(v)) }
            if let v = e.seqEpoch { out.appendVarint(UInt64(v)) }
        }
        guard sequenced else { return }
        out.appendVarint(UInt64(reports.count))
        for r in reports {
            out.appendString(r.kvfvId)
            out.appendVarint(UInt64(r.epoch))
            out.appendVarint(UInt64(r.seq))
            out.appendVarint(zigzag: arrivalMs - r.timeMs)
        }
        guard tallied else { return }
        out.appendVarint(UInt64(rejections.count))
        for t in rejections {
            out.appendString(t.kvfvId)
            out.appendString(t.reason.rawValue)
            out.appendVarint(UInt64(max(0, t.count)))
        }
    }

    public func encoded() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16 + events.count * 48)
        encode(into: &out)
        return out
    }

    public struct FormatError: Error, Sendable {
        public init() {}
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(FormatError) -> EventRecord {
        var r = ByteReader(bytes)
        let recordVersion = try r.byte()
        guard (2...version).contains(recordVersion) else { throw FormatError() }
        let arrival = try r.zigzag()
        var writer: String?
        if recordVersion >= 3 {
            let w = try r.string()
            writer = w.isEmpty ? nil : w
        }
        let n = try r.varint()
        guard n <= UInt64(bytes.count) else { throw FormatError() }
        var events = [CameraEvent]()
        events.reserveCapacity(Int(n))
        for _ in 0..<n {
            let ts = arrival &- (try r.zigzag())
            let speed = Double(bitPattern: UInt64(littleEndian: try r.uint64()))
            let flags = try r.byte()
            let kvfv = try r.string()
            let eventId = flags & 1 != 0 ? try r.string() : nil
            var lane: Int?
            if flags & 2 != 0 {
                let v = try r.varint()
                guard v <= 255 else { throw FormatError() }
                lane = Int(v)
            }
            let plate = flags & 4 != 0 ? try r.string() : nil
            let extra = flags & 8 != 0 ? try r.string() : nil
            guard recordVersion >= 4 || flags & 48 == 0 else { throw FormatError() }
            let seq = flags & 16 != 0 ? try r.nonNegative() : nil
            let epoch = flags & 32 != 0 ? try r.nonNegative() : nil
            events.append(
                CameraEvent(
                    kvfvId: kvfv, timestampMs: ts, speed: speed, eventId: eventId, lane: lane, plate: plate, extra: extra,
                    seq: seq, seqEpoch: epoch))
        }
        var reports: [CameraReport] = []
        if recordVersion >= 4 {
            let count = try r.varint()
            guard count <= UInt64(bytes.count) else { throw FormatError() }
            for _ in 0..<count {
                let kvfv = try r.string()
                let epoch = try r.nonNegative()
                let seq = try r.nonNegative()
                reports.append(CameraReport(kvfvId: kvfv, epoch: epoch, seq: seq, timeMs: arrival &- (try r.zigzag())))
            }
        }
        var rejections: [RejectionTally] = []
        if recordVersion >= 5 {
            let count = try r.varint()
            guard count <= UInt64(bytes.count) else { throw FormatError() }
            for _ in 0..<count {
                let kvfv = try r.string()
                let code = try r.string()
                let n = try r.nonNegative()
                // A reason a newer writer knows and this version does not: not counted here, never an error.
                guard let reason = RejectionReason(rawValue: code) else { continue }
                rejections.append(RejectionTally(kvfvId: kvfv, reason: reason, count: n))
            }
        }
        return EventRecord(arrivalMs: arrival, events: events, writer: writer, reports: reports, rejections: rejections)
    }
}

extension [UInt8] {
    @inlinable
    public mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    @inlinable
    public mutating func appendVarint(zigzag value: Int64) {
        appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inlinable
    public mutating func appendString(_ s: String) {
        var s = s
        s.withUTF8 { u in
            appendVarint(UInt64(u.count))
            append(contentsOf: u)
        }
    }
}

/// Bounds-checked reader over a byte buffer, for the formats we persist.
public struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    public private(set) var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var isAtEnd: Bool { position >= bytes.count }

    public mutating func byte() throws(EventRecord.FormatError) -> UInt8 {
        guard position < bytes.count else { throw EventRecord.FormatError() }
        defer { position += 1 }
        return bytes[position]
    }

    /// Bytes not yet read.
    public var remaining: Int { max(0, bytes.count - position) }

    /// Skips `n` bytes.
    public mutating func skip(_ n: Int) throws(EventRecord.FormatError) {
        guard n >= 0, n <= remaining else { throw EventRecord.FormatError() }
        position += n
    }

    /// The next byte, without consuming it.
    public func peekByte() throws(EventRecord.FormatError) -> UInt8 {
        guard position < bytes.count else { throw EventRecord.FormatError() }
        return bytes[position]
    }

    public mutating func varint() throws(EventRecord.FormatError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
            guard shift < 64 else { throw EventRecord.FormatError() }
        }
    }

    /// A varint that fits a non-negative `Int64` (a sequence number, an epoch).
    public mutating func nonNegative() throws(EventRecord.FormatError) -> Int64 {
        let v = try varint()
        guard v <= UInt64(Int64.max) else { throw EventRecord.FormatError() }
        return Int64(v)
    }

    public mutating func zigzag() throws(EventRecord.FormatError) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    public mutating func uint64() throws(EventRecord.FormatError) -> UInt64 {
        guard position + 8 <= bytes.count else { throw EventRecord.FormatError() }
        defer { position += 8 }
        return bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self)
    }

    public mutating func double() throws(EventRecord.FormatError) -> Double {
        Double(bitPattern: UInt64(littleEndian: try uint64()))
    }

    public mutating func string() throws(EventRecord.FormatError) -> String {
        let length = try varint()
        guard length <= UInt64(bytes.count - position) else { throw EventRecord.FormatError() }
        let n = Int(length)
        defer { position += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)]), as: UTF8.self)
    }
}
