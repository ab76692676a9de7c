import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

func decodeBatch(_ body: String, ndjson: Bool = false, policy: ValidationPolicy = .init()) throws -> EventBatch {
    try EventBatch.decode(Data(body.utf8), ndjson: ndjson, policy: policy, nowMs: nowMs)
}

func decodeError(_ body: String, ndjson: Bool = false) -> EventBatch.DecodeError? {
    do {
        _ = try EventBatch.decode(Data(body.utf8), ndjson: ndjson, policy: .init(), nowMs: nowMs)
        return nil
    } catch {
        return error
    }
}

/// A valid event with a distinct event_id.
func validEvent(_ n: Int, speed: Double = 80) -> String {
    jsonObject(with(with(seedFields(), "event_id", "\"e-\(n)\""), "vehicle_speed", "\(speed)"))
}

/// The elements of a mixed batch and the reason each should get (`nil` = accepted).
let mixedElements: [(String, RejectionReason?)] = [
    (validEvent(0), nil),
    (jsonObject(with(seedFields(), "vehicle_speed", "0")), .speedOutOfRange),
    (validEvent(2), nil),
    (jsonObject(with(seedFields(), "kvfv_id", nil)), .missingField),
    (jsonObject(seedFields(ts: "\"\(Timestamp.format(nowMs + 3_600_000))\"")), .inFuture),
    (jsonObject(seedFields(ts: "\"2020-01-01T00:00:00Z\"")), .tooLate),
    ("17", .notAnObject),
    (validEvent(7, speed: 300), nil),
    (jsonObject(with(seedFields(), "event_id", "42")), .invalidEventId),
    (jsonObject(with(seedFields(), "lane", "\"left\"")), .invalidLane),
    (jsonObject(with(seedFields(), "plate_number", "7")), .invalidPlate),
    (jsonObject(with(seedFields(), "vehicle_speed", "\"85\"")), .invalidSpeed),
    (jsonObject(with(seedFields(), "kvfv_id", "\"bad id\"")), .invalidKvfvId),
    (jsonObject(seedFields(ts: "\"yesterday\"")), .invalidTimestamp),
    (validEvent(14), nil),
]

/// Checks a decoded batch against the expected per-position outcome.
func expectOutcome(_ batch: EventBatch, _ expected: [RejectionReason?], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(batch.elementCount == expected.count, sourceLocation: sourceLocation)
    let acceptedPositions = expected.indices.filter { expected[$0] == nil }
    #expect(batch.positions == acceptedPositions, sourceLocation: sourceLocation)
    #expect(batch.events.count == acceptedPositions.count, sourceLocation: sourceLocation)
    let rejected = expected.indices.compactMap { i in expected[i].map { (i, $0) } }
    #expect(batch.rejections.map(\.index) == rejected.map(\.0), sourceLocation: sourceLocation)
    #expect(batch.rejections.map(\.reason) == rejected.map(\.1), sourceLocation: sourceLocation)
}

@Suite("EventBatch: JSON object, array and NDJSON bodies")
struct EventBatchTests {
    @Test("JSON array: every element is validated, indexes are positions in the request")
    func array() throws {
        let body = "[" + mixedElements.map(\.0).joined(separator: ",\n ") + "]"
        let batch = try decodeBatch(body)
        expectOutcome(batch, mixedElements.map(\.1))
        #expect(batch.events.map(\.eventId) == ["e-0", "e-2", "e-7", "e-14"])
        #expect(batch.events[2].speed == 300)
        // Rejections name the camera only when it was a valid one.
        let byIndex = Dictionary(uniqueKeysWithValues: batch.rejections.map { ($0.index, $0) })
        #expect(byIndex[1]?.kvfvId == "KV12345")
        #expect(byIndex[1]?.field == "vehicle_speed")
        #expect(byIndex[3]?.kvfvId == nil)
        #expect(byIndex[6]?.kvfvId == nil)
        #expect(byIndex[12]?.kvfvId == nil)
    }

    @Test("NDJSON: same outcome with the flag, with blank lines and CRLF line ends")
    func ndjson() throws {
        let plain = mixedElements.map(\.0).joined(separator: "\n") + "\n"
        expectOutcome(try decodeBatch(plain, ndjson: true), mixedElements.map(\.1))
        let crlf = "\r\n" + mixedElements.map(\.0).joined(separator: "\r\n\r\n  \r\n") + "\r\n\r\n"
        expectOutcome(try decodeBatch(crlf, ndjson: true), mixedElements.map(\.1))
        // No trailing newline either.
        expectOutcome(try decodeBatch(mixedElements.map(\.0).joined(separator: "\n"), ndjson: true), mixedElements.map(\.1))
    }

    @Test("NDJSON without the content-type flag is recognised")
    func ndjsonWithoutFlag() throws {
        let elements = mixedElements.filter { $0.0.hasPrefix("{") }
        let body = elements.map(\.0).joined(separator: "\n")
        expectOutcome(try decodeBatch(body, ndjson: false), elements.map(\.1))
        let crlf = elements.map(\.0).joined(separator: "\r\n\r\n")
        expectOutcome(try decodeBatch(crlf, ndjson: false), elements.map(\.1))
    }

    @Test("A malformed NDJSON line costs only that line", arguments: [true, false])
    func malformedLine(flag: Bool) throws {
        let lines = [validEvent(0), "{\"kvfv_id\": \"KV1\", ", validEvent(2), "not json at all", validEvent(4), "{}}", validEvent(6)]
        let batch = try decodeBatch(lines.joined(separator: "\n"), ndjson: flag)
        expectOutcome(batch, [nil, .malformedJSON, nil, .malformedJSON, nil, .malformedJSON, nil])
        #expect(batch.events.map(\.eventId) == ["e-0", "e-2", "e-4", "e-6"])
    }

    @Test("NDJSON: a line holding two values or a value split across lines is malformed")
    func ndjsonLineBoundaries() throws {
        // Line 0 and 1 together form one object, line 2 holds two objects: as NDJSON all three lines are invalid.
        let lines = [
            "{\"kvfv_id\":\"KV1\",\"timestamp\":\"2025-04-05T10:15:30Z\",\"vehicle_speed\":[1",
            "2],\"event_id\":\"split\"}",
            validEvent(1) + "," + validEvent(2),
            validEvent(3),
        ]
        let batch = try decodeBatch(lines.joined(separator: "\n"), ndjson: true)
        expectOutcome(batch, [.malformedJSON, .malformedJSON, .malformedJSON, nil])
        #expect(batch.events.map(\.eventId) == ["e-3"])
    }

    @Test("A single JSON object")
    func singleObject() throws {
        let batch = try decodeBatch("  " + validEvent(9) + "\n")
        expectOutcome(batch, [nil])
        #expect(batch.events.first?.eventId == "e-9")
        let bad = try decodeBatch(jsonObject([("kvfv_id", "\"KV1\"")]))
        expectOutcome(bad, [.missingField])
        #expect(bad.rejections.first?.kvfvId == "KV1")
    }

    @Test("An NDJSON body whose line is an array gives not_an_object for that line")
    func ndjsonArrayLine() throws {
        let batch = try decodeBatch(validEvent(0) + "\n[" + validEvent(1) + "]\n" + validEvent(2), ndjson: true)
        expectOutcome(batch, [nil, .notAnObject, nil])
    }

    @Test("Array elements that are not objects")
    func arrayNonObjects() throws {
        let batch = try decodeBatch("[1, \"x\", null, [], true, " + validEvent(5) + "]")
        expectOutcome(batch, [.notAnObject, .notAnObject, .notAnObject, .notAnObject, .notAnObject, nil])
    }

    @Test("Empty array is an empty batch")
    func emptyArray() throws {
        let batch = try decodeBatch("[]")
        #expect(batch.elementCount == 0 && batch.events.isEmpty && batch.rejections.isEmpty)
    }

    @Test("Unparseable bodies throw DecodeError", arguments: [
        ("", false, "empty_body"),
        ("   \r\n\t ", false, "empty_body"),
        ("", true, "empty_body"),
        ("\n\n", true, "empty_body"),
        ("[" + validEvent(0) + ",", false, "malformed_json"),
        ("[" + validEvent(0) + "] x", false, "malformed_json"),
        ("[{\"kvfv_id\": }]", false, "malformed_json"),
        ("hello", false, "malformed_json"),
        ("{not json", false, "malformed_json"),
        ("{bad\n{worse", false, "malformed_json"),
    ])
    func decodeErrors(body: String, ndjson: Bool, reason: String) {
        let error = decodeError(body, ndjson: ndjson)
        #expect(error?.reason == reason, "\(body.debugDescription)")
        #expect(error?.message.isEmpty == false)
    }

    @Test("Unknown fields are kept in `extra` as a JSON object; known fields are not")
    func extraFields() throws {
        let fields = seedFields() + [
            ("speed_unit", "\"kmh\""), ("confidence", "0.93"), ("count", "3"), ("tags", "[\"a\",\"b\"]"),
            ("meta", "{\"x\":null,\"y\":true,\"z\":false}"), ("note", "null"), ("text", "\"квфв \\\"q\\\"\""),
        ]
        let e = try #require(try decodeBatch(jsonObject(fields)).events.first)
        let extra = try #require(e.extra)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(extra.utf8)) as? [String: Any])
        #expect(Set(parsed.keys) == ["speed_unit", "confidence", "count", "tags", "meta", "note", "text"])
        #expect(parsed["speed_unit"] as? String == "kmh")
        #expect((parsed["confidence"] as? NSNumber)?.doubleValue == 0.93)
        #expect(parsed["tags"] as? [String] == ["a", "b"])
        #expect(parsed["text"] as? String == "квфв \"q\"")
        #expect(parsed["note"] is NSNull)
        let meta = try #require(parsed["meta"] as? [String: Any])
        #expect(meta["x"] is NSNull)
        // Types survive textually: numbers stay numbers, booleans stay booleans.
        let compact = extra.replacingOccurrences(of: " ", with: "")
        #expect(compact.contains("\"count\":3"))
        #expect(compact.contains("\"y\":true"))
        #expect(compact.contains("\"z\":false"))
        #expect(compact.contains("\"note\":null"))
        #expect(!compact.contains("kvfv_id") && !compact.contains("vehicle_speed"))
        // Without unknown fields there is no extra.
        #expect(try decodeBatch(jsonObject(seedFields())).events.first?.extra == nil)
    }

    @Test("Unknown integer fields keep their exact value in `extra` (raw archive is faithful)")
    func extraLargeIntegers() throws {
        let fields = seedFields() + [("serial", "9007199254740993"), ("counter", "1234567890123456789")]
        let e = try #require(try decodeBatch(jsonObject(fields)).events.first)
        let extra = try #require(e.extra)
        #expect(extra.contains("9007199254740993"), "\(extra)")
        #expect(extra.contains("1234567890123456789"), "\(extra)")
    }

    @Test("Rejected elements of a large random batch keep their positions")
    func randomBatchPositions() throws {
        var rng = SeededRandom(seed: 0xBA7C)
        for ndjson in [false, true] {
            var elements: [String] = []
            var expected: [RejectionReason?] = []
            for i in 0..<500 {
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    let (text, reason) = mixedElements.filter { $0.1 != nil && $0.0.hasPrefix("{") }.randomElement(using: &rng)!
                    elements.append(text)
                    expected.append(reason)
                } else {
                    elements.append(validEvent(i, speed: Double.random(in: 1...300, using: &rng)))
                    expected.append(nil)
                }
            }
            let body = ndjson ? elements.joined(separator: "\n") : "[" + elements.joined(separator: ",") + "]"
            let batch = try decodeBatch(body, ndjson: ndjson)
            expectOutcome(batch, expected)
            #expect(batch.events.map(\.eventId) == batch.positions.map { "e-\($0)" })
        }
    }
}

@Suite("EventBatch.reject: events a writer may not send become rejections in index order")
struct EventBatchRejectTests {
    @Test("merged with the decode's rejections in index order, detail bounded, all counted, positions kept")
    func mergeAndBound() throws {
        // Elements: even indices valid (camera A at 0 mod 4, B at 2 mod 4), odd indices not objects.
        let elements = (0..<40).map { i in
            i % 2 == 1 ? "1" : "{\"kvfv_id\":\"\(i % 4 == 0 ? "A" : "B")\",\"timestamp\":\"\(Timestamp.format(nowMs - 1000))\",\"vehicle_speed\":80,\"event_id\":\"e-\(i)\"}"
        }
        let decoded = try decodeBatch("[" + elements.joined(separator: ",") + "]")
        for limit in [1000, 15] {
            var batch = decoded
            if limit < 1000 { batch.rejections = Array(batch.rejections.prefix(limit)) }
            batch.reject(where: { $0.kvfvId == "B" }, reason: .forbiddenKvfvId, field: "kvfv_id", detailLimit: limit)
            #expect(batch.positions == stride(from: 0, to: 40, by: 4).map { $0 })
            #expect(batch.events.allSatisfy { $0.kvfvId == "A" })
            #expect(batch.rejectedCount == 30)
            #expect(batch.rejectedByReason == [.notAnObject: 20, .forbiddenKvfvId: 10])
            let expected = (0..<40).filter { $0 % 4 != 0 }.prefix(limit)
            #expect(batch.rejections.map(\.index) == Array(expected))
            #expect(batch.rejections.allSatisfy { ($0.index % 2 == 1) == ($0.reason == .notAnObject) })
            #expect(batch.rejectionsTruncated == (limit < 30))
        }
    }
}
