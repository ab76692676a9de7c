import Foundation
import Testing

@testable import SpeedflowModel

/// Builds one JSON object from raw JSON value texts, in order (so tests control types exactly).
func jsonObject(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}

/// The seed-001 event with `timestamp` replaced by `ts`.
func seedFields(ts: String = "\"2025-04-05T10:15:30Z\"") -> [(String, String)] {
    [
        ("kvfv_id", "\"KV12345\""), ("timestamp", ts), ("vehicle_speed", "85.2"),
        ("plate_number", "\"A123БВ68\""), ("event_id", "\"KV12345-000123\""), ("lane", "2"),
    ]
}

/// Replaces (or with `nil`, removes) a field of a field list; appends it when absent.
func with(_ fields: [(String, String)], _ key: String, _ value: String?) -> [(String, String)] {
    var out = fields.filter { $0.0 != key }
    if let value {
        if let i = fields.firstIndex(where: { $0.0 == key }) {
            out.insert((key, value), at: i)
        } else {
            out.append((key, value))
        }
    }
    return out
}

/// Server time used by validation tests: one hour after the seed event.
let nowMs: Int64 = 1_743_848_130_000 + 3_600_000

func validate(_ json: String, policy: ValidationPolicy = .init(), now: Int64 = nowMs) throws -> Result<CameraEvent, EventRejection> {
    let raw = try JSONDecoder().decode(RawEvent.self, from: Data(json.utf8))
    return policy.validate(raw, nowMs: now)
}

func rejection(_ json: String, policy: ValidationPolicy = .init(), now: Int64 = nowMs) throws -> EventRejection? {
    if case .failure(let r) = try validate(json, policy: policy, now: now) { return r }
    return nil
}

func accepted(_ json: String, policy: ValidationPolicy = .init(), now: Int64 = nowMs) throws -> CameraEvent? {
    if case .success(let e) = try validate(json, policy: policy, now: now) { return e }
    return nil
}

@Suite("ValidationPolicy: every reason code")
struct ValidationTests {
    @Test("The seed event is accepted with every field mapped")
    func seedEvent() throws {
        let e = try #require(try accepted(jsonObject(seedFields())))
        #expect(e.kvfvId == "KV12345")
        #expect(e.timestampMs == Timestamp.parse("2025-04-05T10:15:30Z"))
        #expect(e.speed == 85.2)
        #expect(e.eventId == "KV12345-000123")
        #expect(e.lane == 2)
        #expect(e.plate == "A123БВ68")
        #expect(e.extra == nil)
    }

    @Test("Optional fields may be absent or null")
    func optionalFields() throws {
        var fields = seedFields()
        for key in ["event_id", "lane", "plate_number"] { fields = with(fields, key, nil) }
        let e = try #require(try accepted(jsonObject(fields)))
        #expect(e.eventId == nil && e.lane == nil && e.plate == nil)
        var nulls = seedFields()
        for key in ["event_id", "lane", "plate_number"] { nulls = with(nulls, key, "null") }
        let n = try #require(try accepted(jsonObject(nulls)))
        #expect(n.eventId == nil && n.lane == nil && n.plate == nil)
    }

    @Test("missing_field: each required field absent or null", arguments: ["kvfv_id", "timestamp", "vehicle_speed"])
    func missingField(key: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), key, nil))) == EventRejection(.missingField, key))
        #expect(try rejection(jsonObject(with(seedFields(), key, "null"))) == EventRejection(.missingField, key))
    }

    @Test("invalid_kvfv_id", arguments: [
        "\"\"", "\"KV 1\"", "\"KV/1\"", "\"KV:1\"", "\"КВ1\"", "\"KV1\\n\"", "\"\(String(repeating: "a", count: 65))\"",
        "123", "true", "[\"KV1\"]", "{}",
    ])
    func invalidKvfvId(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "kvfv_id", value))) == EventRejection(.invalidKvfvId, "kvfv_id"))
    }

    @Test("Valid kvfv_id shapes", arguments: ["K", "a.B_c-9", String(repeating: "Z", count: 64), "0123456789", "..--__"])
    func validKvfvId(value: String) throws {
        let e = try #require(try accepted(jsonObject(with(seedFields(), "kvfv_id", "\"\(value)\""))))
        #expect(e.kvfvId == value)
        #expect(ValidationPolicy.isValidKvfvId(value))
    }

    @Test("invalid_timestamp", arguments: [
        "\"garbage\"", "\"2025-04-05T10:15:30\"", "\"2025-02-29T10:15:30Z\"", "\"2025-04-05T24:00:00Z\"",
        "1743848130000", "true", "[]", "\"\"",
    ])
    func invalidTimestamp(value: String) throws {
        #expect(try rejection(jsonObject(seedFields(ts: value))) == EventRejection(.invalidTimestamp, "timestamp"))
    }

    @Test("invalid_speed: not a JSON number", arguments: ["\"85.2\"", "true", "[85]", "{}", "\"fast\""])
    func invalidSpeed(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", value))) == EventRejection(.invalidSpeed, "vehicle_speed"))
    }

    @Test("speed_out_of_range: 0, negative, below min (1 km/h), subnormal, above max", arguments: [
        "0", "0.0", "-0.0", "-1", "-85.2", "300.0001", "301", "1e300", "0.999", "0.001", "1e-320", "4.9e-324", "2.2250738585072014e-308",
    ])
    func speedOutOfRange(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", value))) == EventRejection(.speedOutOfRange, "vehicle_speed"))
    }

    @Test("Speeds in [min, max] are accepted, both limits included", arguments: ["300", "300.0", "299.9999", "1", "1.0", "1.5", "85"])
    func speedInRange(value: String) throws {
        let e = try #require(try accepted(jsonObject(with(seedFields(), "vehicle_speed", value))))
        #expect(e.speed == Double(value)!)
    }

    @Test("A custom max_speed moves the boundary")
    func customMaxSpeed() throws {
        let policy = ValidationPolicy(maxSpeed: 250)
        #expect(try accepted(jsonObject(with(seedFields(), "vehicle_speed", "250")), policy: policy)?.speed == 250)
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", "250.5")), policy: policy)?.reason == .speedOutOfRange)
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", "300")), policy: policy)?.reason == .speedOutOfRange)
    }

    @Test("invalid_event_id: empty, longer than 128, not a string", arguments: [
        "\"\"", "\"\(String(repeating: "e", count: 129))\"", "\"\(String(repeating: "e", count: 1000))\"", "123", "123.5", "true",
        "[\"x\"]", "{\"id\":1}",
    ])
    func invalidEventId(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "event_id", value))) == EventRejection(.invalidEventId, "event_id"))
    }

    @Test("event_id of 1 and of 128 chars is accepted")
    func eventIdBounds() throws {
        for id in ["x", String(repeating: "e", count: 128)] {
            #expect(try accepted(jsonObject(with(seedFields(), "event_id", "\"\(id)\"")))?.eventId == id)
        }
    }

    @Test("invalid_seq: negative, fractional, beyond 2^63 - 1, not a number", arguments: [
        "-1", "2.5", "9223372036854775808", "1e19", "\"7\"", "true", "[1]", "{}",
    ])
    func invalidSeq(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "seq", value))) == EventRejection(.invalidSeq, "seq"))
    }

    @Test("seq from 0 to 2^63 - 1 is accepted; seq_epoch 0 is the default epoch")
    func seqBounds() throws {
        for (text, value) in [("0", Int64(0)), ("2.0", 2), ("9223372036854775807", Int64.max)] {
            let e = try accepted(jsonObject(with(seedFields(), "seq", text)))
            #expect(e?.seq == value && e?.seqEpoch == nil)
        }
        let zero = try accepted(jsonObject(with(with(seedFields(), "seq", "5"), "seq_epoch", "0")))
        #expect(zero?.seq == 5 && zero?.seqEpoch == nil)
        let e = try accepted(jsonObject(with(with(seedFields(), "seq", "5"), "seq_epoch", "32767")))
        #expect(e?.seq == 5 && e?.seqEpoch == 32_767)
    }

    @Test("invalid_seq on seq_epoch: out of 0...32767, not an integer, or without seq", arguments: [
        ("5", "-1"), ("5", "32768"), ("5", "1.5"), ("5", "\"1\""), (nil, "1"),
    ] as [(String?, String)])
    func invalidSeqEpoch(seq: String?, epoch: String) throws {
        #expect(
            try rejection(jsonObject(with(with(seedFields(), "seq", seq), "seq_epoch", epoch)))
                == EventRejection(.invalidSeq, "seq_epoch"))
    }

    @Test("invalid_lane: not an integer", arguments: ["\"2\"", "2.5", "true", "[2]", "{}"])
    func invalidLane(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "lane", value))) == EventRejection(.invalidLane, "lane"))
    }

    @Test("Negative lanes are rejected (the log codec stores lanes unsigned)")
    func negativeLane() throws {
        #expect(try rejection(jsonObject(with(seedFields(), "lane", "-1")))?.reason == .invalidLane)
        for lane in [0, 1, 7] {
            #expect(try accepted(jsonObject(with(seedFields(), "lane", "\(lane)")))?.lane == lane)
        }
    }

    @Test("invalid_plate: not a string", arguments: ["123", "true", "[\"A1\"]", "{}", "12.5"])
    func invalidPlate(value: String) throws {
        #expect(try rejection(jsonObject(with(seedFields(), "plate_number", value))) == EventRejection(.invalidPlate, "plate_number"))
    }

    @Test("in_future: exactly max_clock_skew ahead is accepted, 1 ms more is rejected")
    func inFuture() throws {
        for skew: Int64 in [300_000, 0, 60_000] {
            let policy = ValidationPolicy(maxClockSkewMs: skew)
            let edge = Timestamp.format(nowMs + skew)
            let beyond = Timestamp.format(nowMs + skew + 1)
            #expect(try accepted(jsonObject(seedFields(ts: "\"\(edge)\"")), policy: policy)?.timestampMs == nowMs + skew)
            #expect(try rejection(jsonObject(seedFields(ts: "\"\(beyond)\"")), policy: policy) == EventRejection(.inFuture, "timestamp"))
        }
        // Default policy: 5 minutes.
        #expect(try accepted(jsonObject(seedFields(ts: "\"\(Timestamp.format(nowMs + 300_000))\""))) != nil)
        #expect(try rejection(jsonObject(seedFields(ts: "\"\(Timestamp.format(nowMs + 300_001))\"")))?.reason == .inFuture)
        // An offset that puts a "past-looking" local time in the future is still in the future.
        let local = "2025-04-05T14:15:30+03:00"  // 11:15:30Z == nowMs
        #expect(try accepted(jsonObject(seedFields(ts: "\"\(local)\""))) != nil)
        let localFuture = "2025-04-05T11:20:30.001-00:00"  // nowMs + 5 min + 1 ms
        #expect(try rejection(jsonObject(seedFields(ts: "\"\(localFuture)\"")))?.reason == .inFuture)
    }

    @Test("too_late: exactly acceptance_horizon old is accepted, 1 ms older is rejected")
    func tooLate() throws {
        for horizon: Int64 in [7 * 86_400_000, 3_600_000] {
            let policy = ValidationPolicy(acceptanceHorizonMs: horizon)
            let edge = Timestamp.format(nowMs - horizon)
            let beyond = Timestamp.format(nowMs - horizon - 1)
            #expect(try accepted(jsonObject(seedFields(ts: "\"\(edge)\"")), policy: policy)?.timestampMs == nowMs - horizon)
            #expect(try rejection(jsonObject(seedFields(ts: "\"\(beyond)\"")), policy: policy) == EventRejection(.tooLate, "timestamp"))
        }
        #expect(try rejection(jsonObject(seedFields(ts: "\"2025-03-29T11:15:29.999Z\"")))?.reason == .tooLate)
        #expect(try accepted(jsonObject(seedFields(ts: "\"2025-03-29T11:15:30Z\""))) != nil)
    }

    @Test("not_an_object", arguments: ["42", "\"event\"", "[]", "[{}]", "null", "true"])
    func notAnObject(value: String) throws {
        #expect(try rejection(value) == EventRejection(.notAnObject))
    }

    @Test("Reason codes are the contract's strings")
    func reasonCodes() {
        let codes = Set(RejectionReason.allCases.map(\.rawValue))
        #expect(codes == [
            "missing_field", "invalid_kvfv_id", "invalid_timestamp", "invalid_speed", "speed_out_of_range",
            "invalid_event_id", "invalid_lane", "invalid_plate", "in_future", "too_late", "not_an_object", "malformed_json",
            "nesting_too_deep", "forbidden_kvfv_id", "invalid_seq", "topic_mismatch",
        ])
    }
}
