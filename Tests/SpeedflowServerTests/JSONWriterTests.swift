import Foundation
import Testing

import SpeedflowModel
@testable import SpeedflowServer
import SpeedflowTestSupport

@Suite("JSONWriter: what the hot answers are written with")
struct JSONWriterTests {
    @Test("integers are written as String(v) would, at the extremes and at random")
    func integers() {
        var rng = SeededRandom(seed: 0x150_0001)
        var values: [Int64] = [0, 1, 9, 10, 11, 99, 100, -1, -9, -10, -11, .max, .min, .max - 1, .min + 1]
        for _ in 0..<2000 { values.append(Int64.random(in: .min ... .max, using: &rng) >> Int64.random(in: 0...62, using: &rng)) }
        for v in values {
            var json = JSONWriter()
            json.number(v)
            json.raw(",")
            json.number(Int(truncatingIfNeeded: v) as Int?)
            #expect(String(decoding: json.bytes, as: UTF8.self) == "\(v),\(Int(truncatingIfNeeded: v))")
        }
        var json = JSONWriter()
        json.number(nil as Int64?)
        #expect(json.bytes == Array("null".utf8))
    }

    @Test("a timestamp is the quoted Timestamp.format, or null")
    func timestamps() throws {
        for ms: Int64 in [0, 1, -1, 1_743_848_130_120, 253_402_300_800_000] {
            var json = JSONWriter()
            json.timestamp(ms)
            #expect(try JSONSerialization.jsonObject(with: Data(json.bytes), options: .fragmentsAllowed) as? String == Timestamp.format(ms))
        }
        var json = JSONWriter()
        json.timestamp(nil)
        #expect(json.bytes == Array("null".utf8))
    }
}
