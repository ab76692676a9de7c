import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

func randomString(_ rng: inout SeededRandom, maxLength: Int, alphabet: [Character]) -> String {
    String((0..<Int.random(in: 0...maxLength, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
}

let unicodeAlphabet: [Character] = Array("ABCEHKMOPTXYАВЕКМНОРСТУХ0123456789-_ é😀\u{0}\"\\") + ["\u{1F1F7}\u{1F1FA}"]

func randomEvent(_ rng: inout SeededRandom, arrival: Int64) -> CameraEvent {
    CameraEvent(
        kvfvId: "KV" + String(Int.random(in: 0...99_999, using: &rng)),
        timestampMs: arrival - Int64.random(in: -300_000...(8 * 86_400_000), using: &rng),
        speed: Double.random(in: Double.leastNonzeroMagnitude...300, using: &rng),
        eventId: Bool.random(using: &rng) ? randomString(&rng, maxLength: 128, alphabet: unicodeAlphabet) : nil,
        lane: Bool.random(using: &rng) ? Int.random(in: 0...255, using: &rng) : nil,
        plate: Bool.random(using: &rng) ? randomString(&rng, maxLength: 12, alphabet: unicodeAlphabet) : nil,
        extra: Bool.random(using: &rng) ? "{\"k\":\"" + randomString(&rng, maxLength: 40, alphabet: unicodeAlphabet) + "\"}" : nil,
        seq: Int.random(in: 0..<4, using: &rng) == 0 ? Int64.random(in: 0...Int64.max, using: &rng) : nil)
}

func decodeRecord(_ bytes: [UInt8]) throws -> EventRecord {
    try bytes.withUnsafeBytes { try EventRecord.decode($0) }
}

@Suite("EventRecord: the log's binary codec")
struct EventRecordTests {
    @Test("Random records round-trip exactly")
    func roundTrip() throws {
        var rng = SeededRandom(seed: 0xEC0D)
        for i in 0..<400 {
            let arrival = Int64.random(in: -10_000_000_000...4_000_000_000_000, using: &rng)
            let n = i == 0 ? 0 : Int.random(in: 1...40, using: &rng)
            let writer: String? = i % 3 == 0 ? nil : i % 3 == 1 ? "0123456789abcdef" : "source:postgres"
            var events = (0..<n).map { _ in randomEvent(&rng, arrival: arrival) }
            for k in events.indices where events[k].seq != nil && Bool.random(using: &rng) {
                events[k].seqEpoch = Int64.random(in: 1...32_767, using: &rng)
            }
            let reports = (0..<(i % 5 == 0 ? Int.random(in: 1...3, using: &rng) : 0)).map { _ in
                CameraReport(
                    kvfvId: "KV\(Int.random(in: 0...9, using: &rng))", epoch: Int64.random(in: 0...5, using: &rng),
                    seq: Int64.random(in: 0...Int64.max, using: &rng), timeMs: arrival - Int64.random(in: -1000...86_400_000, using: &rng))
            }
            let record = EventRecord(arrivalMs: arrival, events: events, writer: writer, reports: reports)
            let bytes = record.encoded()
            let decoded = try decodeRecord(bytes)
            #expect(decoded == record)
            // Version 4 only for what needs it: a log without sequence numbers stays readable by version-3 readers.
            #expect(bytes[0] == (reports.isEmpty && events.allSatisfy { $0.seq == nil } ? 3 : 4))
            // encode(into:) appends the same bytes.
            var out: [UInt8] = [9, 9]
            record.encode(into: &out)
            #expect(Array(out.dropFirst(2)) == bytes)
        }
    }

    @Test("Extreme values round-trip")
    func extremes() throws {
        let events = [
            CameraEvent(kvfvId: "K", timestampMs: .min / 2, speed: .leastNonzeroMagnitude),
            CameraEvent(kvfvId: String(repeating: "Z", count: 64), timestampMs: .max / 2, speed: .greatestFiniteMagnitude,
                        eventId: "", lane: 0, plate: "", extra: ""),
            CameraEvent(kvfvId: "KV1", timestampMs: 0, speed: 300, eventId: String(repeating: "я", count: 500), lane: 255,
                        plate: "A123БВ68", extra: "{}"),
        ]
        let record = EventRecord(arrivalMs: 0, events: events)
        #expect(try decodeRecord(record.encoded()) == record)
    }

    @Test("Every truncation of an encoded record throws")
    func truncated() throws {
        var rng = SeededRandom(seed: 0x7A11)
        for _ in 0..<30 {
            let arrival = Int64.random(in: 0...4_000_000_000_000, using: &rng)
            let record = EventRecord(arrivalMs: arrival, events: (0..<Int.random(in: 1...5, using: &rng)).map { _ in randomEvent(&rng, arrival: arrival) })
            let bytes = record.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: EventRecord.FormatError.self) { try decodeRecord(Array(bytes.prefix(cut))) }
            }
        }
    }

    @Test("An unknown version or an absurd event count throws")
    func badHeader() throws {
        var bytes = EventRecord(arrivalMs: 5, events: [CameraEvent(kvfvId: "KV1", timestampMs: 1, speed: 50)]).encoded()
        for version: UInt8 in [0, 1, 6, 255] {
            bytes[0] = version
            #expect(throws: EventRecord.FormatError.self) { try decodeRecord(bytes) }
        }
        // version 2, arrival 0, count 2^40 with a tiny body
        var huge: [UInt8] = [2, 0]
        huge.appendVarint(1 << 40)
        #expect(throws: EventRecord.FormatError.self) { try decodeRecord(huge) }
        // A varint longer than 64 bits.
        #expect(throws: EventRecord.FormatError.self) { try decodeRecord([2] + [UInt8](repeating: 0xff, count: 11)) }
    }

    @Test("Version-2 records (before attribution) are still read, with no writer")
    func version2() throws {
        let record = EventRecord(
            arrivalMs: 5, events: [CameraEvent(kvfvId: "KV1", timestampMs: 1, speed: 50, eventId: "e1")], writer: nil)
        let v3 = record.encoded()
        // Version 3 is version 2 with the writer (here the empty string: one length byte 0) after the arrival.
        #expect(v3[0] == 3 && v3[1] == 10 && v3[2] == 0)
        let v2: [UInt8] = [2, 10] + v3.dropFirst(3)
        #expect(try decodeRecord(v2) == record)
        let attributed = EventRecord(arrivalMs: 5, events: record.events, writer: "0123456789abcdef")
        #expect(try decodeRecord(attributed.encoded()).writer == "0123456789abcdef")
    }

    /// version 2, arrival 0, one event: lateness 0, speed 0.0, flags 0, then the kvfv_id's length varint.
    static let headerUpToKvfvLength: [UInt8] = [2, 0, 1, 0] + [UInt8](repeating: 0, count: 8) + [0]

    @Test("A string length of 2^64 − 1 throws instead of trapping (Int(UInt64) conversion)")
    func hugeStringLength() async {
        var bytes = EventRecordTests.headerUpToKvfvLength
        bytes.appendVarint(.max)
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try bytes.withUnsafeBytes { try EventRecord.decode($0) } }
    }

    @Test("A string length near Int.max throws instead of trapping (position + length overflow)")
    func overflowingStringLength() async {
        var bytes = EventRecordTests.headerUpToKvfvLength
        bytes.appendVarint(UInt64(Int.max - 3))
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try bytes.withUnsafeBytes { try EventRecord.decode($0) } }
    }

    @Test("A lane varint ≥ 2^63 throws instead of trapping")
    func hugeLane() async {
        var bytes: [UInt8] = [2, 0, 1, 0] + [UInt8](repeating: 0, count: 8) + [2]  // flags: lane present
        bytes.appendString("KV1")
        bytes.appendVarint(.max)
        // Decoding corrupt bytes must throw, never trap (a trap would crash the whole test run).
        #expect(throws: EventRecord.FormatError.self) { try bytes.withUnsafeBytes { try EventRecord.decode($0) } }
    }

    @Test("A seed-format event costs at most ~60 bytes in the log")
    func compactness() {
        let arrival: Int64 = 1_743_848_131_000
        let events = (0..<100).map { i in
            CameraEvent(kvfvId: "KV12345", timestampMs: arrival - 1_000 - Int64(i) * 10, speed: 85.2, eventId: "KV12345-\(pad(i, 6))",
                        lane: 2, plate: "A123БВ68")
        }
        let bytes = EventRecord(arrivalMs: arrival, events: events).encoded()
        #expect(bytes.count <= 60 * events.count, "\(bytes.count) bytes for \(events.count) events")
    }

    @Test("Varints and zigzag round-trip through ByteReader")
    func varints() throws {
        var rng = SeededRandom(seed: 0x7A6)
        var values: [UInt64] = [0, 1, 127, 128, 255, 16_383, 16_384, .max, .max - 1, 1 << 63]
        var signed: [Int64] = [0, -1, 1, .min, .max, -64, 63, -65, 64]
        for _ in 0..<500 {
            values.append(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng))
            signed.append(Int64.random(in: .min ... .max, using: &rng) >> Int64.random(in: 0...62, using: &rng))
        }
        var out: [UInt8] = []
        for v in values { out.appendVarint(v) }
        for v in signed { out.appendVarint(zigzag: v) }
        var readValues: [UInt64] = [], readSigned: [Int64] = [], atEnd = false
        try out.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            for _ in values { readValues.append(try r.varint()) }
            for _ in signed { readSigned.append(try r.zigzag()) }
            atEnd = r.isAtEnd
        }
        #expect(readValues == values)
        #expect(readSigned == signed)
        #expect(atEnd)
        // zigzag keeps small magnitudes small
        var small: [UInt8] = []
        small.appendVarint(zigzag: -1)
        small.appendVarint(zigzag: 63)
        small.appendVarint(zigzag: -64)
        #expect(small.count == 3)
    }
}
