import SpeedflowAggregation
import SpeedflowTestSupport
import Testing

/// `SortedNames` against a sorted array: inserts in random order (chunks split), ranks, prefix ranges, cursors.
@Suite("SortedNames: the fleet's names in order")
struct SortedNamesTests {
    @Test("random inserts, duplicates included, read back in order; every prefix and cursor range as a filter")
    func againstSortedArray() {
        var random = SeededRandom(seed: 7)
        let alphabet = Array("AB01.-_z")
        var names = SortedNames()
        var truth = Set<String>()
        for _ in 0..<20_000 {
            let length = 1 + Int(random.next() % 6)
            let name = String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            names.insert(name)
            truth.insert(name)
        }
        let sorted = truth.sorted()
        #expect(names.all == sorted)
        #expect(names.count == sorted.count)
        for prefix in ["", "A", "B0", "z", "zz", "0.", "AAAAAAA", "_"] {
            for cursor in [nil, "A", "B0", "B0z", "z", sorted[sorted.count / 2]] as [String?] {
                let r = names.range(prefix: prefix, after: cursor)
                var listed: [String] = []
                var p = r.start
                while let n = names.name(at: p), n.hasPrefix(prefix) {
                    listed.append(n)
                    p = names.after(p)
                }
                let want = sorted.filter { name in name.hasPrefix(prefix) && (cursor.map { name > $0 } ?? true) }
                #expect(listed == want, "prefix \(prefix) after \(cursor ?? "-")")
                #expect(r.matched == sorted.filter { $0.hasPrefix(prefix) }.count)
            }
        }
        #expect(names.rank(names.end) == sorted.count)
    }
}
