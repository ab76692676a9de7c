/// Camera names in ascending order, kept as cameras are learnt, so `GET /kvfv` pages through a fleet by key
/// (`after`, `prefix`) in time proportional to the page, not the fleet.
///
/// Chunks of at most `maxChunk` sorted names: an insert shifts one chunk (not the whole fleet, as a sorted array
/// would for names arriving in random order), a lookup is two binary searches, a rank adds up chunk sizes
/// (n / 512 additions: ~400 for 200,000 cameras).
public struct SortedNames: Sendable {
    /// A place between names: chunk and offset in it.
    public struct Position: Sendable, Equatable {
        var chunk: Int
        var offset: Int
    }

    static let maxChunk = 1024
    private var chunks: [[String]] = []
    public private(set) var count = 0

    public init() {}

    public init<S: Sequence>(_ names: S) where S.Element == String {
        let sorted = Array(Set(names)).sorted()
        count = sorted.count
        var i = 0
        while i < sorted.count {
            let end = min(sorted.count, i + Self.maxChunk / 2)
            chunks.append(Array(sorted[i..<end]))
            i = end
        }
    }

    /// Adds `name` unless present.
    public mutating func insert(_ name: String) {
        guard !chunks.isEmpty else {
            chunks = [[name]]
            count = 1
            return
        }
        // The first chunk whose last name is ≥ name, or the last chunk.
        var lo = 0, hi = chunks.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if chunks[mid][chunks[mid].count - 1] < name { lo = mid + 1 } else { hi = mid }
        }
        let c = lo
        let at = Self.partition(chunks[c]) { $0 >= name }
        if at < chunks[c].count && chunks[c][at] == name { return }
        chunks[c].insert(name, at: at)
        count += 1
        if chunks[c].count > Self.maxChunk {
            let upper = Array(chunks[c][(Self.maxChunk / 2)...])
            chunks[c].removeSubrange((Self.maxChunk / 2)...)
            chunks.insert(upper, at: c + 1)
        }
    }

    /// The first position whose name satisfies `isAtOrAfter`, which must be false for a prefix of the order
    /// and true for the rest (e.g. `{ $0 > cursor }`).
    public func first(where isAtOrAfter: (String) -> Bool) -> Position {
        var lo = 0, hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if isAtOrAfter(chunks[mid][chunks[mid].count - 1]) { hi = mid } else { lo = mid + 1 }
        }
        guard lo < chunks.count else { return end }
        return Position(chunk: lo, offset: Self.partition(chunks[lo], isAtOrAfter))
    }

    public var end: Position { Position(chunk: chunks.count, offset: 0) }

    /// How many names come before `p`.
    public func rank(_ p: Position) -> Int {
        var n = p.offset
        for c in 0..<min(p.chunk, chunks.count) { n += chunks[c].count }
        return n
    }

    /// The name at `p`, or `nil` at the end.
    public func name(at p: Position) -> String? {
        p.chunk < chunks.count && p.offset < chunks[p.chunk].count ? chunks[p.chunk][p.offset] : nil
    }

    /// The position after `p`.
    public func after(_ p: Position) -> Position {
        guard p.chunk < chunks.count else { return end }
        return p.offset + 1 < chunks[p.chunk].count ? Position(chunk: p.chunk, offset: p.offset + 1)
            : Position(chunk: p.chunk + 1, offset: 0)
    }

    /// Names with `prefix` (all names for an empty one) after `cursor` (from the start for `nil`): the range
    /// to page through, its first position, and how many names have the prefix.
    public func range(prefix: String, after cursor: String?) -> (start: Position, end: Position, matched: Int) {
        let prefixStart = first { $0 >= prefix }
        let prefixEnd = prefix.isEmpty ? end : first { $0 >= prefix && !$0.hasPrefix(prefix) }
        let start = cursor.map { c in first { $0 >= prefix && $0 > c } } ?? prefixStart
        return (start, prefixEnd, rank(prefixEnd) - rank(prefixStart))
    }

    public var all: [String] { chunks.flatMap { $0 } }

    static func partition(_ chunk: [String], _ isAtOrAfter: (String) -> Bool) -> Int {
        var lo = 0, hi = chunk.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if isAtOrAfter(chunk[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
