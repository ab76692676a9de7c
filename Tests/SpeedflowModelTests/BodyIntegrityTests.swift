import Foundation
import Testing

@testable import SpeedflowModel

/// gzip members, RFC 8259 number forms, nesting limits, bounded rejection lists, character limits, minimum speed:
/// the body-side reproductions of issue 11.
@Suite("Body integrity: gzip, strict JSON, nesting, bounded answers, limits")
struct BodyIntegrityTests {
    static func gzip(_ text: String) -> [UInt8] { Array(text.utf8).withUnsafeBytes { Gzip.compress($0) } }

    static func gunzip(_ bytes: [UInt8], limit: Int = 1 << 20) -> Result<String, GzipError> {
        bytes.withUnsafeBytes { buffer in
            do throws(GzipError) {
                return .success(String(decoding: try Gzip.decompress(buffer, limit: limit), as: UTF8.self))
            } catch {
                return .failure(error)
            }
        }
    }

    static func code(_ r: Result<String, GzipError>) -> GzipError.Code? {
        if case .failure(let e) = r { return e.code }
        return nil
    }

    /// `/bin/gzip -c` of `text` (a real gzip, not our zlib call).
    static func systemGzip(_ text: String) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-c", "-n"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Array(data)
    }

    @Test("gzip: every member of a multi-member stream is read (ours and /bin/gzip's)")
    func gzipMembers() throws {
        let a = "{\"kvfv_id\":\"A\"}\n", b = "{\"kvfv_id\":\"B\"}\n"
        #expect(Self.gunzip(Self.gzip(a)) == .success(a))
        #expect(Self.gunzip(Self.gzip(a) + Self.gzip(b)) == .success(a + b))
        #expect(Self.gunzip(Self.gzip(a) + Self.gzip("") + Self.gzip(b)) == .success(a + b))
        let system = try Self.systemGzip(a) + Self.systemGzip(b)
        #expect(Self.gunzip(system) == .success(a + b))
    }

    @Test("gzip: trailing garbage, zero padding, a cut trailer, a truncated member, a bad CRC or length, empty input are invalid")
    func gzipInvalid() throws {
        let a = Self.gzip("{\"kvfv_id\":\"A\"}\n"), b = Self.gzip("{\"kvfv_id\":\"B\"}\n")
        #expect(Self.code(Self.gunzip(a + Array("garbage".utf8))) == .invalid)
        #expect(Self.code(Self.gunzip(a + [0, 0, 0, 0])) == .invalid)
        #expect(Self.code(Self.gunzip(a + [0x1F])) == .invalid)
        #expect(Self.code(Self.gunzip(Array(a.dropLast(4)))) == .invalid, "ISIZE cut")
        #expect(Self.code(Self.gunzip(Array(a.dropLast(1)))) == .invalid)
        #expect(Self.code(Self.gunzip(a + Array(b.dropLast(3)))) == .invalid, "second member cut")
        #expect(Self.code(Self.gunzip(Array(a.prefix(a.count / 2)))) == .invalid)
        var badCRC = a
        badCRC[badCRC.count - 8] ^= 0xFF
        #expect(Self.code(Self.gunzip(badCRC)) == .invalid)
        var badLength = a
        badLength[badLength.count - 1] ^= 0x01
        #expect(Self.code(Self.gunzip(badLength)) == .invalid)
        #expect(Self.code(Self.gunzip([])) == .invalid)
        #expect(Self.code(Self.gunzip(Array("not gzip".utf8))) == .invalid)
        // zlib and raw deflate are not gzip.
        #expect(Self.code(Self.gunzip([0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])) == .invalid)
    }

    @Test("gzip: output is bounded: limit bytes pass, one more is tooLarge, a bomb stops at the limit")
    func gzipLimit() {
        let text = String(repeating: "x", count: 10_000)
        let z = Self.gzip(text)
        #expect(Self.gunzip(z, limit: 10_000) == .success(text))
        #expect(Self.code(Self.gunzip(z, limit: 9_999)) == .tooLarge)
        #expect(Self.code(Self.gunzip(z + z, limit: 15_000)) == .tooLarge)
        let bomb = Self.gzip("[" + String(repeating: "1,", count: 2_000_000) + "1]")
        #expect(bomb.count < 20_000)
        #expect(Self.code(Self.gunzip(bomb, limit: 1 << 20)) == .tooLarge)
    }

    // MARK: Strict JSON

    static func decode(_ body: String, ndjson: Bool = false, fast: Bool = true, detailLimit: Int = .max) -> Result<EventBatch, EventBatch.DecodeError> {
        do throws(EventBatch.DecodeError) {
            return .success(try EventBatch.decode(
                Data(body.utf8), ndjson: ndjson, policy: .init(), nowMs: nowMs, useFastPath: fast, detailLimit: detailLimit))
        } catch {
            return .failure(error)
        }
    }

    static func reasonOf(_ r: Result<EventBatch, EventBatch.DecodeError>) -> String? {
        if case .failure(let e) = r { return e.reason }
        return nil
    }

    static let event = #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":80,"event_id":"e1"}"#

    @Test("number forms RFC 8259 refuses are one rule: array/object body 400 malformed_json, NDJSON line malformed_json",
          arguments: [".5", "+80", "080", "5.", "1.e5", "-", "0x10", "NaN", "-.5", "01.5"])
    func numberForms(number: String) {
        let bad = #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":\#(number)}"#
        for fast in [true, false] {
            #expect(Self.reasonOf(Self.decode("[" + Self.event + "," + bad + "]", fast: fast)) == "malformed_json", "\(number)")
            #expect(Self.reasonOf(Self.decode(bad, fast: fast)) == "malformed_json", "\(number)")
            // In an unknown field too.
            let extra = #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":80,"x":[\#(number)]}"#
            #expect(Self.reasonOf(Self.decode("[" + extra + "]", fast: fast)) == "malformed_json", "\(number)")
            guard case .success(let batch) = Self.decode(Self.event + "\n" + bad + "\n" + Self.event, ndjson: true, fast: fast) else {
                Issue.record("NDJSON must not fail as a whole")
                continue
            }
            #expect(batch.rejections.map(\.reason) == [.malformedJSON])
            #expect(batch.rejections.map(\.index) == [1])
        }
    }

    @Test("nesting: 16 levels within an element are kept; 17 are refused before any decoder sees them")
    func nesting() throws {
        func element(depth: Int) -> String {
            // The element's own braces are level 1; `extra` adds depth - 1 array levels.
            #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":80,"extra":\#(String(repeating: "[", count: depth - 1))1\#(String(repeating: "]", count: depth - 1))}"#
        }
        for fast in [true, false] {
            let ok = try Self.decode("[" + element(depth: 16) + "]", fast: fast).get()
            #expect(ok.events.first?.extra == "{\"extra\":" + String(repeating: "[", count: 15) + "1" + String(repeating: "]", count: 15) + "}")
            #expect(Self.reasonOf(Self.decode("[" + element(depth: 17) + "]", fast: fast)) == "nesting_too_deep")
            #expect(Self.reasonOf(Self.decode(element(depth: 17), fast: fast)) == "nesting_too_deep")
            // The issue's reproduction: 400 levels in an unknown field.
            #expect(Self.reasonOf(Self.decode("[" + element(depth: 400) + "]", fast: fast)) == "nesting_too_deep")
            let lines = [Self.event, element(depth: 400), element(depth: 17), element(depth: 16)].joined(separator: "\n")
            let batch = try Self.decode(lines, ndjson: true, fast: fast).get()
            #expect(batch.rejections.map(\.reason) == [.nestingTooDeep, .nestingTooDeep])
            #expect(batch.rejections.map(\.index) == [1, 2])
            #expect(batch.positions == [0, 3])
        }
    }

    @Test("a body of 100,000 deeply nested lines is refused line by line in linear time (no JSONDecoder)")
    func deepLinesAreCheap() throws {
        let deep = #"{"kvfv_id":"KV1","x":"# + String(repeating: "[", count: 400) + String(repeating: "]", count: 400) + "}"
        let body = Array(repeating: deep, count: 2_000).joined(separator: "\n")
        let batch = try Self.decode(body, ndjson: true).get()
        #expect(batch.rejectedByReason == [.nestingTooDeep: 2_000])
    }

    // MARK: Bounded answers

    @Test("rejections: the first N by index in detail, all counted by reason, also when declined elements arrive late")
    func boundedRejections() throws {
        let ones = "[" + Array(repeating: "1", count: 5_000).joined(separator: ",") + "]"
        for fast in [true, false] {
            let batch = try Self.decode(ones, fast: fast, detailLimit: 1_000).get()
            #expect(batch.rejections.count == 1_000)
            #expect(batch.rejections.map(\.index) == Array(0..<1_000))
            #expect(batch.rejectedCount == 5_000 && batch.rejectedByReason == [.notAnObject: 5_000])
            #expect(batch.rejectionsTruncated)
            #expect(batch.elementCount == 5_000)
        }
        // Unknown fields make elements go through JSONDecoder after the flat ones: order must still hold.
        var elements: [String] = []
        for i in 0..<3_000 {
            elements.append(i % 2 == 0
                ? #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":900,"x":\#(i)}"#
                : #"{"kvfv_id":"KV1","timestamp":"2025-04-05T10:15:30Z","vehicle_speed":"fast"}"#)
        }
        let mixed = try Self.decode("[" + elements.joined(separator: ",") + "]", detailLimit: 1_000).get()
        #expect(mixed.rejections.map(\.index) == Array(0..<1_000))
        #expect(mixed.rejectedByReason == [.speedOutOfRange: 1_500, .invalidSpeed: 1_500])
        #expect(mixed.rejectedByCamera == ["KV1": [.speedOutOfRange: 1_500, .invalidSpeed: 1_500]])
        let all = try Self.decode("[" + elements.joined(separator: ",") + "]").get()
        #expect(all.rejections.count == 3_000 && !all.rejectionsTruncated)
    }

    @Test("accepted events keep request order when some went through JSONDecoder")
    func eventOrder() throws {
        let t = Timestamp.format(nowMs - 1000)
        var elements: [String] = []
        for i in 0..<200 {
            elements.append(i % 3 == 0
                ? #"{"kvfv_id":"KV1","timestamp":"\#(t)","vehicle_speed":80,"event_id":"e\#(i)","x":1}"#
                : #"{"kvfv_id":"KV1","timestamp":"\#(t)","vehicle_speed":80,"event_id":"e\#(i)"}"#)
        }
        let batch = try Self.decode("[" + elements.joined(separator: ",") + "]").get()
        #expect(batch.positions == Array(0..<200))
        #expect(batch.events.map(\.eventId) == (0..<200).map { "e\($0)" })
    }

    // MARK: Field limits

    @Test("plate_number ≤ 64 and event_id ≤ 128 count Unicode scalars, not bytes; control characters are refused")
    func characterLimits() throws {
        let cyrillicPlate = String(repeating: "Б", count: 33)
        #expect(try accepted(jsonObject(with(seedFields(), "plate_number", "\"\(cyrillicPlate)\"")))?.plate == cyrillicPlate)
        #expect(try accepted(jsonObject(with(seedFields(), "plate_number", "\"\(String(repeating: "Б", count: 64))\""))) != nil)
        #expect(try rejection(jsonObject(with(seedFields(), "plate_number", "\"\(String(repeating: "Б", count: 65))\"")))?.reason == .invalidPlate)
        #expect(try accepted(jsonObject(with(seedFields(), "event_id", "\"\(String(repeating: "Ж", count: 128))\""))) != nil)
        #expect(try rejection(jsonObject(with(seedFields(), "event_id", "\"\(String(repeating: "Ж", count: 129))\"")))?.reason == .invalidEventId)
        for control in ["\\u0000", "\\u0001", "\\n", "\\t", "\\u001f", "\\u007f"] {
            #expect(try rejection(jsonObject(with(seedFields(), "event_id", "\"a\(control)b\""))) == EventRejection(.invalidEventId, "event_id"), "\(control)")
            #expect(try rejection(jsonObject(with(seedFields(), "plate_number", "\"A\(control)1\""))) == EventRejection(.invalidPlate, "plate_number"), "\(control)")
        }
        #expect(try accepted(jsonObject(with(seedFields(), "plate_number", "\"A 123\""))) != nil, "a space is printable")
    }

    @Test("camera ids . and .. are refused (they cannot be queried)", arguments: [".", ".."])
    func dotIds(id: String) throws {
        #expect(!ValidationPolicy.isValidKvfvId(id))
        #expect(try rejection(jsonObject(with(seedFields(), "kvfv_id", "\"\(id)\""))) == EventRejection(.invalidKvfvId, "kvfv_id"))
        #expect(ValidationPolicy.isValidKvfvId("..."))
    }

    // MARK: Minimum speed

    @Test("min_speed: configurable; subnormals and speeds with an infinite reciprocal never pass")
    func minimumSpeed() throws {
        let policy = ValidationPolicy(minSpeed: 5)
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", "4.99")), policy: policy)?.reason == .speedOutOfRange)
        #expect(try accepted(jsonObject(with(seedFields(), "vehicle_speed", "5")), policy: policy) != nil)
        // Even a policy built in code below the allowed range refuses subnormals.
        let lax = ValidationPolicy(minSpeed: 0, maxSpeed: 300)
        #expect(!lax.isAcceptedSpeed(1e-320) && !lax.isAcceptedSpeed(.leastNonzeroMagnitude) && !lax.isAcceptedSpeed(0))
        #expect(!lax.isAcceptedSpeed(.nan) && !lax.isAcceptedSpeed(.infinity))
        #expect(lax.isAcceptedSpeed(0.5))
        // The issue's reproduction.
        #expect(try rejection(jsonObject(with(seedFields(), "vehicle_speed", "1e-320")))?.reason == .speedOutOfRange)
        #expect(ValidationPolicy.checkSpeedLimits(min: 1, max: 300) == nil)
        #expect(ValidationPolicy.checkSpeedLimits(min: 0, max: 300) != nil)
        #expect(ValidationPolicy.checkSpeedLimits(min: 1e-320, max: 300) != nil)
        #expect(ValidationPolicy.checkSpeedLimits(min: 10, max: 5) != nil)
        #expect(ValidationPolicy.checkSpeedLimits(min: 1, max: 1e300) != nil)
        #expect(ValidationPolicy.checkSpeedLimits(min: .nan, max: 300) != nil)
    }
}
