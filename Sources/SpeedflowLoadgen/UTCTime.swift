import SpeedflowModel

/// RFC 3339 formatting and parsing on integer milliseconds, without `DateFormatter`
/// (which would cost more than the rest of event generation together).
enum UTCTime {
    static let millisPerBucket: Int64 = 300_000

    /// The 5-minute bucket index of an instant (floor division, also before 1970).
    static func bucket(ofMillis millis: Int64) -> Int64 {
        millis >= 0 ? millis / millisPerBucket : -((-millis + millisPerBucket - 1) / millisPerBucket)
    }

    /// Days since 1970-01-01 to (year, month, day): the calendar math lives in SpeedflowModel's `Timestamp`.
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let (y, m, d) = Timestamp.civilFromDays(Int(days))
        return (Int64(y), Int64(m), Int64(d))
    }

    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        Int64(Timestamp.daysFromCivil(year: Int(year), month: Int(month), day: Int(day)))
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmm` followed by `Z` or `±HH:MM` for a local offset.
    static func append(millis: Int64, offsetMinutes: Int = 0, withMillis: Bool = true, to out: inout [UInt8]) {
        let local = millis + Int64(offsetMinutes) * 60_000
        let ms = ((local % 1000) + 1000) % 1000
        let seconds = (local - ms) / 1000
        var days = seconds / 86_400
        var secOfDay = seconds % 86_400
        if secOfDay < 0 { secOfDay += 86_400; days -= 1 }
        let (y, mo, d) = civil(fromDays: days)
        appendDigits(y, 4, &out); out.append(UInt8(ascii: "-"))
        appendDigits(mo, 2, &out); out.append(UInt8(ascii: "-"))
        appendDigits(d, 2, &out); out.append(UInt8(ascii: "T"))
        appendDigits(secOfDay / 3600, 2, &out); out.append(UInt8(ascii: ":"))
        appendDigits(secOfDay / 60 % 60, 2, &out); out.append(UInt8(ascii: ":"))
        appendDigits(secOfDay % 60, 2, &out)
        if withMillis {
            out.append(UInt8(ascii: "."))
            appendDigits(ms, 3, &out)
        }
        if offsetMinutes == 0 {
            out.append(UInt8(ascii: "Z"))
        } else {
            out.append(UInt8(ascii: offsetMinutes > 0 ? "+" : "-"))
            let m = Int64(abs(offsetMinutes))
            appendDigits(m / 60, 2, &out); out.append(UInt8(ascii: ":"))
            appendDigits(m % 60, 2, &out)
        }
    }

    static func string(millis: Int64, withMillis: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(30)
        append(millis: millis, withMillis: withMillis, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func appendDigits(_ value: Int64, _ width: Int, _ out: inout [UInt8]) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: (v / divisor) % 10))
            v %= divisor
            divisor /= 10
        }
    }

    /// Parses RFC 3339 (`Z` or offset, optional fraction) to epoch milliseconds; nil if malformed.
    static func parseMillis(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ n: Int) -> Int64? {
            guard i + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ")
        else { return nil }
        i += 1
        guard let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2)
        else { return nil }
        var millis: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            var scale = digits
            while scale < 3 { millis *= 10; scale += 1 }
        }
        var offset: Int64 = 0
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "+") ? 1 : -1
            i += 1
            guard let oh = number(2), expect(":"), let om = number(2) else { return nil }
            offset = sign * (oh * 60 + om)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = Self.days(fromCivil: year, month, day)
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) - offset * 60) * 1000 + millis
    }
}
