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

    public init(arrivalMs: Int64, events: [CameraEvent], writer: String? = nil) {
        self.arrivalMs = arrivalMs
        self.events = events
        self.writer = writer
    }

    /// 3: the writer (a string, empty for none) after the arrival time. 2: event time stored as lateness
    /// (arrival − time) only; 1 also stored the absolute time. Records of version 2 are still read (their
    /// writer is `nil`); a log holds both after an upgrade.
    static let version: UInt8 = 3

    public func encode(into out: inout [UInt8]) {
        out.append(Self.version)
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
            out.append(flags)
            out.appendString(e.kvfvId)
            if let v = e.eventId { out.appendString(v) }
            if let v = e.lane { out.appendVarint(UInt64(v)) }
            if let v = e.plate { out.appendString(v) }
            if let v = e.extra { out.appendString(v) }
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
        guard recordVersion == version || recordVersion == 2 else { throw FormatError() }
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
            events.append(
                CameraEvent(kvfvId: kvfv, timestampMs: ts, speed: speed, eventId: eventId, lane: lane, plate: plate, extra: extra))
        }
        return EventRecord(arrivalMs: arrival, events: events, writer: writer)
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
