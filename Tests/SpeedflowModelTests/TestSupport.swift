import Foundation

/// A seeded generator (SplitMix64) so a failing random case can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Two-digit / four-digit zero padding without `String(format:)`.
func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}

/// A UTC Gregorian calendar: the independent oracle for civil dates.
let utcCalendar: Calendar = {
    var c = Calendar(identifier: .gregorian)
    c.timeZone = TimeZone(identifier: "UTC")!
    return c
}()

/// Foundation's RFC 3339 parser without fractional seconds.
func foundationSeconds(_ s: String) -> Int64? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    guard let d = f.date(from: s) else { return nil }
    return Int64(d.timeIntervalSince1970.rounded())
}

/// Foundation's RFC 3339 parser with (millisecond) fractional seconds, in milliseconds.
func foundationMillis(_ s: String) -> Int64? {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let d = f.date(from: s) else { return nil }
    return Int64((d.timeIntervalSince1970 * 1000).rounded())
}
