import Foundation

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
