import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

/// Record version 5: a request's rejection tallies travel in its log record; records without them keep the
/// exact bytes of versions 3 and 4.
@Suite("EventRecord: rejection tallies (version 5)")
struct EventRecordRejectionTests {
    @Test("records with tallies round-trip as version 5; records without keep version 3/4")
    func roundTrip() throws {
        var rng = SeededRandom(seed: 0x7A17)
        for i in 0..<300 {
            let arrival = Int64.random(in: 0...4_000_000_000_000, using: &rng)
            let events = (0..<Int.random(in: 0...8, using: &rng)).map { _ in randomEvent(&rng, arrival: arrival) }
            let reports = i % 4 == 0 ? [CameraReport(kvfvId: "KV1", epoch: 2, seq: 99, timeMs: arrival - 5)] : []
            let tallies = (0..<(i % 3 == 0 ? 0 : Int.random(in: 1...5, using: &rng))).map { _ in
                RejectionTally(
                    kvfvId: "KV\(Int.random(in: 0...9, using: &rng))",
                    reason: RejectionReason.allCases.randomElement(using: &rng)!, count: Int64.random(in: 1...Int64.max, using: &rng))
            }
            let record = EventRecord(arrivalMs: arrival, events: events, writer: "w", reports: reports, rejections: tallies)
            let bytes = record.encoded()
            #expect(try decodeRecord(bytes) == record)
            let sequenced = !reports.isEmpty || events.contains { $0.seq != nil }
            #expect(bytes[0] == (tallies.isEmpty ? (sequenced ? 4 : 3) : 5))
            if !tallies.isEmpty {
                // Without its tallies the same record encodes as before version 5 existed.
                var bare = record
                bare.rejections = []
                #expect(bare.encoded()[0] == (sequenced ? 4 : 3))
                // Every truncation throws.
                for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) {
                    #expect(throws: EventRecord.FormatError.self) { try decodeRecord(Array(bytes.prefix(cut))) }
                }
            }
        }
    }

    @Test("a record without tallies keeps its exact bytes")
    func bytesUnchanged() {
        let event = CameraEvent(kvfvId: "K", timestampMs: 1000, speed: 50)
        // 3, arrival 1000 zigzag (2000 = D0 0F), writer "" (0), 1 event, lateness 0, 50.0 LE, flags 0, "K".
        let v3: [UInt8] = [3, 0xD0, 0x0F, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x49, 0x40, 0, 1, 0x4B]
        #expect(EventRecord(arrivalMs: 1000, events: [event]).encoded() == v3)
        // Version 4: the same, then one report (camera, epoch, seq, lateness).
        let v4: [UInt8] = [4] + v3.dropFirst() + [1, 1, 0x4B, 0, 7, 0]
        #expect(EventRecord(arrivalMs: 1000, events: [event], reports: [CameraReport(kvfvId: "K", seq: 7, timeMs: 1000)]).encoded() == v4)
        // Version 5: the version-4 layout (no reports) and then the tallies.
        let v5: [UInt8] = [5] + v3.dropFirst() + [0, 1, 1, 0x4B, 9] + Array("in_future".utf8) + [3]
        #expect(
            EventRecord(arrivalMs: 1000, events: [event], rejections: [RejectionTally(kvfvId: "K", reason: .inFuture, count: 3)])
                .encoded() == v5)
    }

    @Test("a reason code this version does not know (a newer writer's) is skipped, not an error")
    func unknownReason() throws {
        var bytes: [UInt8] = [5]
        bytes.appendVarint(zigzag: 1000)
        bytes.appendString("")
        bytes.appendVarint(0)  // no events
        bytes.appendVarint(0)  // no reports
        bytes.appendVarint(3)
        for (camera, code, n) in [("K1", "too_late", 2), ("K2", "reason_from_the_future", 5), ("K2", "speed_out_of_range", 1)] {
            bytes.appendString(camera)
            bytes.appendString(code)
            bytes.appendVarint(UInt64(n))
        }
        let record = try decodeRecord(bytes)
        #expect(record.rejections == [
            RejectionTally(kvfvId: "K1", reason: .tooLate, count: 2), RejectionTally(kvfvId: "K2", reason: .speedOutOfRange, count: 1),
        ])
        #expect(record.events.isEmpty && record.arrivalMs == 1000)
    }

    @Test("a batch's tallies: per camera and reason, in a stable order, only for elements naming a valid camera")
    func batchTallies() throws {
        let now: Int64 = 1_767_225_600_000
        let body = """
            {"kvfv_id":"B","timestamp":"\(Timestamp.format(now + 3_600_000))","vehicle_speed":50}
            {"kvfv_id":"A","timestamp":"\(Timestamp.format(now))","vehicle_speed":-4}
            {"kvfv_id":"B","timestamp":"\(Timestamp.format(now))","vehicle_speed":900}
            {"kvfv_id":"B","timestamp":"\(Timestamp.format(now + 3_600_000))","vehicle_speed":50}
            {"kvfv_id":"bad id!","timestamp":"\(Timestamp.format(now))","vehicle_speed":50}
            {"kvfv_id":"A","timestamp":"\(Timestamp.format(now))","vehicle_speed":50}
            """
        let batch = try EventBatch.decode(Data(body.utf8), ndjson: true, policy: ValidationPolicy(), nowMs: now)
        #expect(batch.events.count == 1)
        #expect(batch.rejectionTallies == [
            RejectionTally(kvfvId: "A", reason: .speedOutOfRange, count: 1),
            RejectionTally(kvfvId: "B", reason: .inFuture, count: 2),
            RejectionTally(kvfvId: "B", reason: .speedOutOfRange, count: 1),
        ])
    }
}
