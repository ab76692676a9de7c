import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

/// An independent FNV-1a 64 + MurmurHash3 fmix64, written from the published definitions.
struct ReferenceHash {
    var h: UInt64 = 14_695_981_039_346_656_037  // FNV offset basis
    static let prime: UInt64 = 1_099_511_628_211  // FNV 64-bit prime

    mutating func feed<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        for b in bytes {
            h ^= UInt64(b)
            h = h &* Self.prime
        }
    }

    mutating func feedLittleEndian(_ v: UInt64) {
        feed((0..<8).map { UInt8((v >> (8 * UInt64($0))) & 0xff) })
    }

    static func fmix64(_ x: UInt64) -> UInt64 {
        var k = x
        k ^= k >> 33
        k = k &* 0xff51afd7ed558ccd
        k ^= k >> 33
        k = k &* 0xc4ceb9fe1a85ec53
        k ^= k >> 33
        return k
    }

    var fnv: UInt64 { h }
    var finalized: UInt64 { Self.fmix64(h) }
}

func event(
    ts: Int64 = 1_743_848_130_000, speed: Double = 85.2, eventId: String? = nil, lane: Int? = 2,
    plate: String? = "A123БВ68", kvfv: String = "KV12345", extra: String? = nil
) -> CameraEvent {
    CameraEvent(kvfvId: kvfv, timestampMs: ts, speed: speed, eventId: eventId, lane: lane, plate: plate, extra: extra)
}

@Suite("EventIdentity: stable 64-bit identities")
struct EventIdentityTests {
    @Test("The reference FNV-1a 64 matches the published test vectors")
    func referenceVectors() {
        func fnv(_ s: String) -> UInt64 {
            var r = ReferenceHash()
            r.feed(Array(s.utf8))
            return r.fnv
        }
        #expect(fnv("") == 0xcbf29ce484222325)
        #expect(fnv("a") == 0xaf63dc4c8601ec8c)
        #expect(fnv("foobar") == 0x85944171f73967e8)
        #expect(ReferenceHash.fmix64(0) == 0)
    }

    @Test("Keyed identity: a stable hash of 'e' + event_id")
    func keyedStable() {
        for id in ["KV12345-000123", "x", "событие-1", String(repeating: "z", count: 128)] {
            var r = ReferenceHash()
            r.feed([0x65])
            r.feed(Array(id.utf8))
            #expect(event(eventId: id).identity == r.finalized, "\(id)")
            #expect(EventIdentity.hash(of: event(eventId: id)) == r.finalized)
        }
    }

    @Test("Content identity: a stable hash of 'c' + timestamp, lane, plate, 0, speed bits")
    func contentStable() {
        let cases: [(Int64, Int?, String?, Double)] = [
            (1_743_848_130_000, 2, "A123БВ68", 85.2),
            (-1, nil, nil, 0.5),
            (0, 0, "", 300),
        ]
        for (ts, lane, plate, speed) in cases {
            var r = ReferenceHash()
            r.feed([0x63])
            r.feedLittleEndian(UInt64(bitPattern: ts))
            r.feedLittleEndian(UInt64(bitPattern: Int64(lane ?? Int(Int32.min))))
            r.feed(Array((plate ?? "").utf8))
            r.feed([0])
            r.feedLittleEndian(speed.bitPattern)
            #expect(event(ts: ts, speed: speed, lane: lane, plate: plate).identity == r.finalized)
        }
    }

    @Test("Same event_id, same identity, whatever the other fields")
    func sameEventId() {
        var rng = SeededRandom(seed: 0x1D)
        let reference = event(eventId: "KV12345-000123").identity
        for _ in 0..<500 {
            let e = event(
                ts: Int64.random(in: 0...2_000_000_000_000, using: &rng), speed: Double.random(in: 1...300, using: &rng),
                eventId: "KV12345-000123", lane: Bool.random(using: &rng) ? nil : Int.random(in: 0...8, using: &rng),
                plate: Bool.random(using: &rng) ? nil : "P\(Int.random(in: 0...999, using: &rng))",
                extra: Bool.random(using: &rng) ? nil : "{\"a\":1}")
            #expect(e.identity == reference)
        }
    }

    @Test("Distinct event_ids give distinct identities")
    func distinctEventIds() {
        var seen = Set<UInt64>()
        for i in 0..<50_000 { seen.insert(event(eventId: "KV12345-\(i)").identity) }
        #expect(seen.count == 50_000)
    }

    @Test("Without event_id, changing any of timestamp, lane, plate or speed changes the identity")
    func contentSensitivity() {
        var rng = SeededRandom(seed: 0xC0)
        for _ in 0..<1000 {
            let base = event(
                ts: Int64.random(in: 0...2_000_000_000_000, using: &rng), speed: Double.random(in: 1...300, using: &rng),
                lane: Int.random(in: 0...8, using: &rng), plate: "P\(Int.random(in: 0...9999, using: &rng))")
            var e = base
            e.timestampMs += Int64.random(in: 1...1000, using: &rng)
            #expect(e.identity != base.identity)
            e = base
            e.lane = base.lane! + 1
            #expect(e.identity != base.identity)
            e = base
            e.lane = nil
            #expect(e.identity != base.identity)
            e = base
            e.plate = base.plate! + "X"
            #expect(e.identity != base.identity)
            e = base
            e.speed = base.speed.nextUp
            #expect(e.identity != base.identity)
            // Fields outside the identity do not matter; the camera scopes dedup elsewhere.
            e = base
            e.extra = "{\"confidence\":0.5}"
            #expect(e.identity == base.identity)
            // A keyed event never shares the content identity.
            e = base
            e.eventId = ""
            #expect(e.identity != base.identity)
        }
    }

    @Test("A resent copy (same content) has the same identity")
    func resent() {
        let a = event(ts: 1_743_848_130_123, speed: 91.7, lane: 1, plate: "B777ОР77")
        let b = event(ts: 1_743_848_130_123, speed: 91.7, lane: 1, plate: "B777ОР77")
        #expect(a.identity == b.identity)
        #expect(event(eventId: "id-1").identity != event(eventId: "id-2").identity)
    }
}
