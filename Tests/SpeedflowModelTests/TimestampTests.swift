import Foundation
import Testing

@testable import SpeedflowModel
import SpeedflowTestSupport

@Suite("Timestamp: RFC 3339 parsing and formatting")
struct TimestampTests {
    /// One random RFC 3339 string plus what an independent oracle says it means.
    struct Sample {
        var text: String
        /// The same instant without the fraction and with an upper-case `Z` (what Foundation accepts).
        var canonicalNoFraction: String
        /// The fraction digits (possibly empty).
        var fraction: String
    }

    static func randomSample(_ rng: inout SeededRandom) -> Sample {
        let year = Int.random(in: 1970...2100, using: &rng)
        let month = Int.random(in: 1...12, using: &rng)
        let comps = DateComponents(year: year, month: month)
        let days = utcCalendar.range(of: .day, in: .month, for: utcCalendar.date(from: comps)!)!.count
        let day = Int.random(in: 1...days, using: &rng)
        let hour = Int.random(in: 0...23, using: &rng)
        let minute = Int.random(in: 0...59, using: &rng)
        let second = Int.random(in: 0...59, using: &rng)
        let base = "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
        var fraction = ""
        if Bool.random(using: &rng) {
            let digits = Int.random(in: 1...9, using: &rng)
            fraction = String((0..<digits).map { _ in Character(String(Int.random(in: 0...9, using: &rng))) })
        }
        let zone: String
        let canonicalZone: String
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: (zone, canonicalZone) = ("Z", "Z")
        case 1: (zone, canonicalZone) = ("z", "Z")
        default:
            let sign = Bool.random(using: &rng) ? "+" : "-"
            let hh = Int.random(in: 0...14, using: &rng)
            let mm = Bool.random(using: &rng) ? [0, 15, 30, 45].randomElement(using: &rng)! : Int.random(in: 0...59, using: &rng)
            zone = "\(sign)\(pad(hh, 2)):\(pad(mm, 2))"
            canonicalZone = zone
        }
        return Sample(
            text: base + (fraction.isEmpty ? "" : "." + fraction) + zone,
            canonicalNoFraction: base + canonicalZone, fraction: fraction)
    }

    /// Milliseconds of a fraction's digits, truncated (".1" → 100, ".123999" → 123).
    static func truncatedMillis(_ fraction: String) -> Int64 {
        let three = (fraction + "000").prefix(3)
        return Int64(three)!
    }

    @Test("Random date-times 1970–2100 parse like Foundation (Z, z, offsets, 0–9 fraction digits)")
    func randomAgainstFoundation() throws {
        var rng = SeededRandom(seed: 0x5EED_0001)
        for _ in 0..<3000 {
            let s = Self.randomSample(&rng)
            let seconds = try #require(foundationSeconds(s.canonicalNoFraction), "Foundation rejects \(s.canonicalNoFraction)")
            let expected = seconds * 1000 + Self.truncatedMillis(s.fraction)
            #expect(Timestamp.parse(s.text) == expected, "\(s.text)")
            if s.fraction.count == 3 {
                // Foundation's own fractional parser agrees when the fraction is exactly milliseconds.
                let withFraction = s.canonicalNoFraction.prefix(19) + "." + s.fraction + s.canonicalNoFraction.dropFirst(19)
                #expect(Timestamp.parse(s.text) == foundationMillis(String(withFraction)), "\(s.text)")
            }
        }
    }

    @Test("Known instants", arguments: [
        ("1970-01-01T00:00:00Z", Int64(0)),
        ("1970-01-01T00:00:00.001Z", 1),
        ("1969-12-31T23:59:59.999Z", -1),
        ("1970-01-01T03:00:00+03:00", 0),
        ("1970-01-01T00:00:00-00:00", 0),
        ("2025-04-05T10:15:30Z", 1_743_848_130_000),
        ("2025-04-05T13:15:30.123+03:00", 1_743_848_130_123),
        ("2025-04-05T10:15:30.1234567Z", 1_743_848_130_123),
        ("2025-04-05T10:15:30.9999999z", 1_743_848_130_999),
        ("2025-04-05T10:15:30.5Z", 1_743_848_130_500),
        ("2025-04-05t10:15:30Z", 1_743_848_130_000),
        ("2025-04-05 10:15:30Z", 1_743_848_130_000),
        ("2025-04-05T15:45:30+05:30", 1_743_848_130_000),
        ("2025-04-04T23:15:30-11:00", 1_743_848_130_000),
        ("2000-02-29T00:00:00Z", 951_782_400_000),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000),
    ])
    func known(text: String, ms: Int64) {
        #expect(Timestamp.parse(text) == ms)
        // The known values themselves agree with Foundation (guards the table against typos).
        let oracle = foundationSeconds(String(text.prefix(19)).replacingOccurrences(of: " ", with: "T")
            .replacingOccurrences(of: "t", with: "T") + "Z").map { s -> Int64 in
            let zone = text.last == "Z" || text.last == "z" ? "" : String(text.suffix(6))
            var offset: Int64 = 0
            if !zone.isEmpty {
                let sign: Int64 = zone.first == "-" ? -1 : 1
                offset = sign * (Int64(zone.dropFirst().prefix(2))! * 3600 + Int64(zone.suffix(2))! * 60)
            }
            return s - offset
        }
        let fraction = text.firstIndex(of: ".").map { i in
            String(text[text.index(after: i)...].prefix { $0.isNumber })
        } ?? ""
        #expect(oracle.map { $0 * 1000 + Self.truncatedMillis(fraction) } == ms)
    }

    @Test("Invalid inputs are rejected", arguments: [
        "",
        "garbage",
        "2025-04-05",
        "2025-04-05T10:15",
        "2025-04-05T10:15:30",  // no offset
        "2025-04-05T10:15:30.123",  // no offset
        "2025-04-05T10:15:30Zjunk",  // trailing characters
        "2025-04-05T10:15:30Z ",
        "2025-04-05T10:15:30+03:00x",
        "2025-04-05T10:15:30+03",  // short offset
        "2025-04-05T10:15:30+0300",  // offset without colon
        "2025-04-05T10:15:30+24:00",
        "2025-04-05T10:15:30+03:60",
        "2025-04-05T10:15:30.Z",  // dot without digits
        "2025-04-05T10:15:30,5Z",
        "2025-13-05T10:15:30Z",  // month 13
        "2025-00-05T10:15:30Z",  // month 0
        "2025-04-00T10:15:30Z",  // day 0
        "2025-04-31T10:15:30Z",  // April has 30 days
        "2025-02-29T10:15:30Z",  // not a leap year
        "1900-02-29T10:15:30Z",  // century, not leap
        "2100-02-29T10:15:30Z",
        "2025-04-05T24:00:00Z",  // 24:00
        "2025-04-05T10:60:00Z",
        "2025-04-05T10:15:61Z",
        "2025/04/05T10:15:30Z",
        "2025-04-05X10:15:30Z",
        "2025-4-05T10:15:30Z",
        "25-04-05T10:15:30Z",
        "2025-04-05T10:15:30UTC",
        "2025-04-05T1a:15:30Z",
        "+025-04-05T10:15:30Z",
        "２０２５-04-05T10:15:30Z",
        "2025-04-05T10:15:30.12a4Z",
        "2025-04-05T10:15:30.123",
    ])
    func invalid(text: String) {
        #expect(Timestamp.parse(text) == nil, "\(text)")
    }

    @Test("Leap days are valid exactly in leap years")
    func leapDays() {
        for year in 1970...2400 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
            let text = "\(pad(year, 4))-02-29T00:00:00Z"
            if leap {
                #expect(Timestamp.parse(text) == foundationSeconds(text).map { $0 * 1000 }, "\(text)")
            } else {
                #expect(Timestamp.parse(text) == nil, "\(text)")
            }
        }
    }

    @Test("Every month's last day is valid and the day after is not")
    func monthLengths() {
        for year in [1999, 2000, 2024, 2025, 2100] {
            for month in 1...12 {
                let date = utcCalendar.date(from: DateComponents(year: year, month: month))!
                let days = utcCalendar.range(of: .day, in: .month, for: date)!.count
                let last = "\(pad(year, 4))-\(pad(month, 2))-\(pad(days, 2))T23:59:59Z"
                let past = "\(pad(year, 4))-\(pad(month, 2))-\(pad(days + 1, 2))T00:00:00Z"
                #expect(Timestamp.parse(last) == foundationSeconds(last).map { $0 * 1000 }, "\(last)")
                #expect(Timestamp.parse(past) == nil, "\(past)")
            }
        }
    }

    /// Independent formatting oracle: Foundation's UTC calendar components.
    static func oracleFormat(_ ms: Int64) -> String {
        let secs = Int64((Double(ms) / 1000).rounded(.down))
        let millis = ms - secs * 1000
        let date = Date(timeIntervalSince1970: TimeInterval(secs))
        let c = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        var s = "\(pad(c.year!, 4))-\(pad(c.month!, 2))-\(pad(c.day!, 2))T\(pad(c.hour!, 2)):\(pad(c.minute!, 2)):\(pad(c.second!, 2))"
        if millis != 0 { s += "." + pad(Int(millis), 3) }
        return s + "Z"
    }

    @Test("format matches a calendar oracle, before and after 1970, with and without millis")
    func formatAgainstOracle() {
        var rng = SeededRandom(seed: 0x5EED_0002)
        // 1583-01-01 ... 9999-12-31: Foundation's Gregorian calendar switches to Julian before October 1582,
        // so the oracle only holds from 1583 (earlier years are covered by the round-trip and sequence tests).
        let low: Int64 = -12_212_553_600_000, high: Int64 = 253_402_300_799_999
        #expect(Self.oracleFormat(low) == "1583-01-01T00:00:00Z")
        for i in 0..<3000 {
            var ms = Int64.random(in: low...high, using: &rng)
            if i % 3 == 0 { ms -= ms % 1000 }  // whole seconds: no fraction printed
            if i % 7 == 0 { ms = Int64.random(in: -5_000_000_000...5_000_000_000, using: &rng) }  // around 1970
            #expect(Timestamp.format(ms) == Self.oracleFormat(ms), "\(ms)")
            var appended: [UInt8] = [7]
            Timestamp.append(ms, to: &appended)
            #expect(appended == [7] + Array(Self.oracleFormat(ms).utf8), "append \(ms)")
        }
        // Outside years 0…9999 both say so the same way.
        for ms in [Int64.min / 2, -62_167_219_200_001, 253_402_300_800_000, Int64.max / 2] {
            var appended: [UInt8] = []
            Timestamp.append(ms, to: &appended)
            #expect(String(decoding: appended, as: UTF8.self) == Timestamp.format(ms))
            #expect(Timestamp.format(ms).hasSuffix("-out-of-range"), "\(ms)")
        }
    }

    @Test("format of known values")
    func formatKnown() {
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(1) == "1970-01-01T00:00:00.001Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.format(-1000) == "1969-12-31T23:59:59Z")
        #expect(Timestamp.format(-1001) == "1969-12-31T23:59:58.999Z")
        #expect(Timestamp.format(-86_400_000) == "1969-12-31T00:00:00Z")
        #expect(Timestamp.format(1_743_848_130_120) == "2025-04-05T10:15:30.120Z")
        #expect(Timestamp.format(1_743_848_130_000) == "2025-04-05T10:15:30Z")
        #expect(Timestamp.format(951_782_400_000) == "2000-02-29T00:00:00Z")
    }

    @Test("parse(format(ms)) == ms and format(parse(s)) == s for canonical strings")
    func roundTrips() {
        var rng = SeededRandom(seed: 0x5EED_0003)
        let low: Int64 = -62_135_596_800_000, high: Int64 = 253_402_300_799_999
        for _ in 0..<3000 {
            let ms = Int64.random(in: low...high, using: &rng)
            let text = Timestamp.format(ms)
            #expect(Timestamp.parse(text) == ms, "\(text)")
            #expect(Timestamp.format(Timestamp.parse(text) ?? .min) == text)
        }
        // Non-canonical spellings of the same instant format canonically.
        for _ in 0..<1000 {
            let s = TimestampTests.randomSample(&rng)
            guard let ms = Timestamp.parse(s.text) else {
                Issue.record("\(s.text) did not parse")
                continue
            }
            let canonical = Timestamp.format(ms)
            #expect(Timestamp.parse(canonical) == ms)
            #expect(canonical.hasSuffix("Z"))
        }
    }

    @Test("daysFromCivil and civilFromDays are inverse and agree with Foundation")
    func civilDays() {
        for days in stride(from: -1_000_000, through: 1_000_000, by: 37) {
            let (y, m, d) = Timestamp.civilFromDays(days)
            #expect(Timestamp.daysFromCivil(year: y, month: m, day: d) == days)
            #expect((1...12).contains(m) && (1...31).contains(d))
        }
        // Every day of 1600...2400 in sequence: consecutive and valid.
        var previous = Timestamp.daysFromCivil(year: 1600, month: 1, day: 1)
        for year in 1600...2400 {
            for month in 1...12 {
                for day in 1...Timestamp.daysInMonth(year: year, month: month) {
                    let n = Timestamp.daysFromCivil(year: year, month: month, day: day)
                    if !(year == 1600 && month == 1 && day == 1) {
                        #expect(n == previous + 1)
                    }
                    previous = n
                }
            }
        }
        var rng = SeededRandom(seed: 0x5EED_0004)
        for _ in 0..<2000 {
            // 1583-01-01 ... 9999-12-31 (Foundation's Gregorian calendar is Julian before 1582-10-15)
            let days = Int.random(in: -141_349...2_932_896, using: &rng)
            let date = Date(timeIntervalSince1970: TimeInterval(days) * 86_400)
            let c = utcCalendar.dateComponents([.year, .month, .day], from: date)
            let (y, m, d) = Timestamp.civilFromDays(days)
            #expect(y == c.year && m == c.month && d == c.day, "\(days)")
            #expect(Timestamp.daysFromCivil(year: c.year!, month: c.month!, day: c.day!) == days)
        }
        #expect(Timestamp.daysFromCivil(year: 1970, month: 1, day: 1) == 0)
        #expect(Timestamp.civilFromDays(-1) == (1969, 12, 31))
        #expect(Timestamp.civilFromDays(-141_349) == (1583, 1, 1))
        #expect(Timestamp.civilFromDays(-719_162) == (1, 1, 1))  // proleptic Gregorian
        #expect(Timestamp.civilFromDays(2_932_896) == (9999, 12, 31))
    }

    @Test("floorDivMod floors toward −∞ with a non-negative remainder")
    func floorDivMod() {
        var rng = SeededRandom(seed: 0x5EED_0005)
        for _ in 0..<2000 {
            let a = Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng)
            let d = Int64.random(in: 1...10_000_000, using: &rng)
            let (q, r) = a.floorDivMod(d)
            #expect(q * d + r == a)
            #expect(r >= 0 && r < d)
            #expect(a.floorDiv(d) == q)
        }
    }
}
