/// RFC 3339 date-times ⇄ milliseconds since the Unix epoch.
///
/// Hand-written because it runs once per ingested event: Foundation's `ISO8601FormatStyle` needs one
/// configuration per shape (with/without fraction) and is several times slower. The tests keep Foundation
/// as the oracle.
public enum Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`, `z` and a space separator are accepted
    /// (RFC 3339 §5.6 note). The fraction keeps milliseconds (truncated). Returns `nil` when invalid.
    public static func parse(_ string: String) -> Int64? {
        var s = string
        return s.withUTF8 { parse(utf8: $0) }
    }

    public static func parse(utf8 p: UnsafeBufferPointer<UInt8>) -> Int64? {
        let n = p.count
        guard n >= 20 else { return nil }
        @inline(__always) func digit(_ i: Int) -> Int? {
            let c = p[i] &- 48
            return c < 10 ? Int(c) : nil
        }
        @inline(__always) func number(_ i: Int, _ len: Int) -> Int? {
            var v = 0
            for k in i..<(i + len) {
                guard let d = digit(k) else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard let year = number(0, 4), p[4] == 45, let month = number(5, 2), p[7] == 45,
            let day = number(8, 2),
            p[10] == 84 || p[10] == 116 || p[10] == 32,
            let hour = number(11, 2), p[13] == 58, let minute = number(14, 2), p[16] == 58,
            let second = number(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month),
            hour <= 23, minute <= 59, second <= 59
        else { return nil }
        var i = 19
        var millis = 0
        if p[i] == 46 {  // "."
            i += 1
            let start = i
            var scale = 100
            while i < n, let d = digit(i) {
                millis += d * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < n else { return nil }
        var offsetSeconds = 0
        switch p[i] {
        case 90, 122:  // Z z
            i += 1
        case 43, 45:  // + -
            guard i + 6 == n, let oh = number(i + 1, 2), p[i + 3] == 58, let om = number(i + 4, 2),
                oh <= 23, om <= 59
            else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (p[i] == 45 ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == n else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return seconds * 1000 + Int64(millis)
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` only when the milliseconds are not zero.
    public static func format(_ ms: Int64) -> String {
        let text = String(unsafeUninitializedCapacity: 24) { write(ms, into: $0) ?? 0 }
        return text.isEmpty ? "\(civilFromDays(Int(ms.floorDivMod(1000).0.floorDivMod(86_400).0)).0)-out-of-range" : text
    }

    /// Appends `format(ms)` to `out` without making a string: a query answer writes two per window.
    public static func append(_ ms: Int64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            if let length = write(ms, into: buffer) {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<length]))
            } else {
                out.append(contentsOf: format(ms).utf8)
            }
        }
    }

    /// Writes the digits straight into `out` (at least 24 bytes); returns the length, or `nil` for a year outside
    /// 0…9999 (nothing written).
    private static func write(_ ms: Int64, into out: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        let (secs, millis) = ms.floorDivMod(1000)
        let (days, secOfDay) = secs.floorDivMod(86_400)
        let (y, m, d) = civilFromDays(Int(days))
        guard (0...9999).contains(y) else { return nil }
        let hh = Int(secOfDay / 3600), mm = Int(secOfDay % 3600 / 60), ss = Int(secOfDay % 60)
        let length = millis != 0 ? 24 : 20
        func put(_ v: Int, _ width: Int, at i: Int) {
            var x = v
            for k in stride(from: i + width - 1, through: i, by: -1) {
                out[k] = UInt8(48 + x % 10)
                x /= 10
            }
        }
        put(y, 4, at: 0); out[4] = 45; put(m, 2, at: 5); out[7] = 45; put(d, 2, at: 8); out[10] = 84
        put(hh, 2, at: 11); out[13] = 58; put(mm, 2, at: 14); out[16] = 58; put(ss, 2, at: 17)
        if millis != 0 {
            out[19] = 46
            put(Int(millis), 3, at: 20)
        }
        out[length - 1] = 90
        return length
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

extension Int64 {
    /// Floor division and the matching non-negative remainder (Swift's `/` truncates toward zero).
    @inlinable
    public func floorDivMod(_ d: Int64) -> (Int64, Int64) {
        let q = self / d, r = self % d
        return r < 0 ? (q - 1, r + d) : (q, r)
    }

    @inlinable
    public func floorDiv(_ d: Int64) -> Int64 { floorDivMod(d).0 }
}
