/// Topic names and filters (§4.7): validation and matching.
public enum MQTTTopic {
    /// A topic name to publish to: at least one character, no wildcard (`+`, `#`).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.utf8.contains(UInt8(ascii: "+")) && !name.utf8.contains(UInt8(ascii: "#"))
    }

    /// A topic filter to subscribe with: at least one character; `+` only as a whole level, `#` only as the whole
    /// last level.
    public static func isValidFilter(_ filter: String) -> Bool {
        guard !filter.isEmpty else { return false }
        let levels = filter.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for (i, level) in levels.enumerated() {
            if level.contains(UInt8(ascii: "#")) && (level.count != 1 || i != levels.count - 1) { return false }
            if level.contains(UInt8(ascii: "+")) && level.count != 1 { return false }
        }
        return true
    }

    /// Whether `filter` (valid) matches topic `name` (valid). Wildcards at the first level do not match names
    /// starting with `$` (§4.7.2).
    public static func matches(filter: String, name: String) -> Bool {
        let f = filter.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        let n = name.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if name.utf8.first == UInt8(ascii: "$"), let first = f.first, first.elementsEqual("+".utf8) || first.elementsEqual("#".utf8) {
            return false
        }
        var i = 0
        while i < f.count {
            if f[i].elementsEqual("#".utf8) { return true }  // also matches the parent level itself
            guard i < n.count else { return false }
            if !f[i].elementsEqual("+".utf8) && !f[i].elementsEqual(n[i]) { return false }
            i += 1
        }
        return i == n.count
    }
}
