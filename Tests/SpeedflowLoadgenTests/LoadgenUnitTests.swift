import Foundation
import Testing

@testable import SpeedflowLoadgen

/// The load generator's pure parts, checked without a server: if the oracle or the encoder were wrong,
/// `--verify` would prove nothing.
@Suite("Loadgen pieces")
struct LoadgenUnitTests {
    @Test("RFC 3339 formatting and parsing round-trip, offsets and fractions included")
    func timestamps() throws {
        let millis: Int64 = 1_743_848_130_123  // 2025-04-05T10:15:30.123Z
        #expect(UTCTime.string(millis: millis, withMillis: true) == "2025-04-05T10:15:30.123Z")
        var out: [UInt8] = []
        UTCTime.append(millis: millis, offsetMinutes: 180, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "2025-04-05T13:15:30.123+03:00")
        #expect(UTCTime.parseMillis("2025-04-05T13:15:30.123+03:00") == millis)
        #expect(UTCTime.parseMillis("2025-04-05T10:15:30Z") == millis - 123)
        #expect(UTCTime.parseMillis("2025-04-05T10:15:30.1234567Z") == millis)
        #expect(UTCTime.parseMillis("2025-04-05T10:15:30.1Z") == millis - 23)
        #expect(UTCTime.parseMillis("yesterday at noon") == nil)
        #expect(UTCTime.parseMillis("2025-04-05T10:15:30") == nil)
        for m in stride(from: Int64(-86_400_000 * 800), to: 86_400_000 * 40_000, by: 7_777_777_777) {
            #expect(UTCTime.parseMillis(UTCTime.string(millis: m, withMillis: true)) == m)
        }
    }

    @Test("5-minute buckets floor, also before 1970")
    func buckets() {
        #expect(UTCTime.bucket(ofMillis: 0) == 0)
        #expect(UTCTime.bucket(ofMillis: 299_999) == 0)
        #expect(UTCTime.bucket(ofMillis: 300_000) == 1)
        #expect(UTCTime.bucket(ofMillis: -1) == -1)
        #expect(UTCTime.bucket(ofMillis: -300_000) == -1)
        #expect(UTCTime.bucket(ofMillis: -300_001) == -2)
    }

    func encoder(cameras: Int = 3) -> EventEncoder {
        EventEncoder(cameraIds: (1...cameras).map { Array("KV\(Loadgen.digits($0, 5))".utf8) },
                     cameraOffsetMinutes: (0..<cameras).map { $0 % 2 == 0 ? 0 : 180 }, runTag: Array("abc123".utf8))
    }

    func encode(_ event: SimulatedEvent) -> String {
        var out: [UInt8] = []
        encoder().append(event, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test("A valid event is the seed's format and reads back exactly")
    func validEvent() throws {
        let event = SimulatedEvent(camera: 1, sequence: 123, millis: 1_743_848_130_123, speedTenths: 852, lane: 2, flaw: nil)
        let text = encode(event)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["kvfv_id"] as? String == "KV00002")
        #expect(object["event_id"] as? String == "KV00002-abc123-000000123")
        #expect(object["vehicle_speed"] as? Double == 85.2)
        #expect(object["lane"] as? Int == 2)
        #expect(UTCTime.parseMillis(try #require(object["timestamp"] as? String)) == event.millis)
        let plate = try #require(object["plate_number"] as? String)
        #expect(plate.count == 8)
        // Resends must be byte-identical.
        #expect(encode(event) == text)
        // Whole speeds are written without a fraction; the oracle's speed equals the parsed value.
        let whole = SimulatedEvent(camera: 0, sequence: 1, millis: 0, speedTenths: 900, lane: 1, flaw: nil)
        #expect(encode(whole).contains(#""vehicle_speed":90,"#))
        #expect(Double("85.2")! == event.speed)
    }

    @Test("Every flaw makes the event invalid in the way its reason names", arguments: EventFlaw.allCases)
    func flaws(flaw: EventFlaw) throws {
        let now: Int64 = 1_743_848_130_123
        var event = SimulatedEvent(camera: 0, sequence: 7, millis: now, speedTenths: 852, lane: 1, flaw: flaw)
        if flaw == .speedOutOfRange { event.speedTenths = 0 }
        if flaw == .inFuture { event.millis = now + 3_600_000 }
        if flaw == .tooLate { event.millis = now - 8 * 86_400_000 }
        let parsed = try JSONSerialization.jsonObject(with: Data(encode(event).utf8), options: .fragmentsAllowed)
        guard flaw != .notAnObject else {
            #expect(!(parsed is [String: Any]))
            return
        }
        let object = try #require(parsed as? [String: Any])
        switch flaw {
        case .missingField: #expect(object["vehicle_speed"] == nil)
        case .invalidSpeed: #expect(object["vehicle_speed"] is String)
        case .invalidKvfvId: #expect((object["kvfv_id"] as? String)?.contains(" ") == true)
        case .invalidTimestamp: #expect(UTCTime.parseMillis(object["timestamp"] as? String ?? "") == nil)
        case .invalidEventId: #expect(((object["event_id"] as? String)?.count ?? 0) > 128)
        case .speedOutOfRange: #expect(object["vehicle_speed"] as? Double == 0)
        case .inFuture, .tooLate: #expect(UTCTime.parseMillis(object["timestamp"] as? String ?? "") == event.millis)
        case .notAnObject: break
        case .invalidSeq:
            let seq = object["seq"], epoch = object["seq_epoch"] as? Int
            #expect(seq is String || (seq as? Int).map { $0 < 0 } == true || epoch.map { $0 > 32767 } == true)
        }
    }

    @Test("The oracle is the naive sum per 5-minute bucket")
    func oracle() {
        var oracle = WindowOracle()
        let base: Int64 = 1_743_848_100_000  // 10:15:00Z, a bucket start
        for (offset, tenths) in [(0, 600), (299_999, 900), (300_000, 1200)] as [(Int64, Int32)] {
            oracle.add(SimulatedEvent(camera: 0, sequence: 1, millis: base + offset, speedTenths: tenths, lane: 1, flaw: nil),
                       sentMs: base + 600_000, ackedMs: base + 600_010)
        }
        let first = UTCTime.bucket(ofMillis: base)
        let w = oracle.windows[first]!
        #expect(w.count == 2)
        #expect(w.averageSpeed == 75)
        #expect(abs(w.harmonicMeanSpeed - 2 / (1 / 60.0 + 1 / 90.0)) < 1e-12)
        #expect(w.minSpeed == 60 && w.maxSpeed == 90)
        #expect(oracle.count(inBucket: first + 1) == 1)
        #expect(oracle.events == 3)
    }

    @Test("Ack answers parse")
    func ackParsing() throws {
        let text = #"{"accepted": 497, "duplicates": 2, "rejected": [{"index": 13, "reason": "in_future"}], "x": [true, null, -1.5e2, "a\"b\u0041"]}"#
        let answer = try #require(MiniJSON.parse(Array(text.utf8)))
        #expect(answer["accepted"]?.int == 497)
        #expect(answer["duplicates"]?.int == 2)
        #expect(answer["rejected"]?.array?.first?["reason"]?.string == "in_future")
        #expect(answer["x"]?.array == [.bool(true), .null, .number(-150), .string("a\"bA")])
        #expect(MiniJSON.parse(Array("{\"a\":1".utf8)) == nil)
        #expect(MiniJSON.parse(Array("{} x".utf8)) == nil)
    }

    @Test("Generated traffic stays inside the contract: past (within skew), within the horizon, ordered backlogs")
    func traffic() {
        var configuration = LoadgenConfiguration()
        configuration.invalidShare = 0
        configuration.backlogEvents = 500
        configuration.backlogAge = .seconds(6 * 3600)
        var rng = FastRandom(seed: 42)
        var generator = TrafficGenerator(seed: 7, configuration: configuration)
        let now: Int64 = 1_743_848_130_123
        let skew = configuration.maxClockSkew.milliseconds
        for index in 0..<50 {
            var camera = TrafficGenerator.makeCamera(index: index, configuration: configuration, rng: &rng)
            #expect(abs(camera.skewMillis) <= skew)
            for _ in 0..<100 {
                let e = generator.makeLiveEvent(camera: &camera, nowMillis: now, spreadMillis: 1000)
                #expect(e.millis <= now + skew && e.millis >= now - 1000 - skew)
                #expect(e.speedTenths > 0 && e.speedTenths <= 3000)
                #expect(e.lane >= 1 && e.lane <= camera.lanes)
            }
            let backlog = generator.makeBacklog(camera: &camera, offlineSince: now - 10_000, nowMillis: now, liveRatePerCamera: 12)
            #expect(backlog.count >= 500 + 100)
            #expect(zip(backlog, backlog.dropFirst()).allSatisfy { $0.millis <= $1.millis && $0.sequence < $1.sequence })
            #expect(backlog.allSatisfy { $0.millis <= now + skew && $0.millis >= now - 10_000 - 6 * 3_600_000 - skew })
        }
    }

    @Test("Invalid events cycle through every reason")
    func invalidCycle() {
        var configuration = LoadgenConfiguration()
        configuration.invalidShare = 1
        var rng = FastRandom(seed: 1)
        var generator = TrafficGenerator(seed: 2, configuration: configuration)
        var camera = TrafficGenerator.makeCamera(index: 0, configuration: configuration, rng: &rng)
        let flaws = (0..<EventFlaw.allCases.count).compactMap {
            _ in generator.makeLiveEvent(camera: &camera, nowMillis: 1_743_848_130_123, spreadMillis: 10).flaw
        }
        #expect(Set(flaws) == Set(EventFlaw.allCases))
    }

    @Test("The seed makes a run reproducible")
    func seeded() {
        var a = FastRandom(seed: 99)
        var b = FastRandom(seed: 99)
        #expect((0..<10).map { _ in a.next() } == (0..<10).map { _ in b.next() })
        var c = FastRandom(seed: 5)
        let units = (0..<10_000).map { _ in c.unit() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
    }
}
