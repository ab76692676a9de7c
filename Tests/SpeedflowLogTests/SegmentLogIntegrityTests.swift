import Foundation
import Testing

@testable import SpeedflowLog
import SpeedflowTestSupport

/// Flips bits of `count` bytes of `file` at `position` (an outside write or a rotting disk).
func flip(_ file: URL, at position: Int, count: Int = 1) throws {
    var bytes = [UInt8](try Data(contentsOf: file))
    for i in position..<(position + count) { bytes[i] ^= 0x5A }
    try Data(bytes).write(to: file)
}

/// `n` appends of one distinct payload each (separate group commits, so each moves the acknowledged mark).
func appendEach(_ log: SegmentLog, _ n: Int, size: Int = 100, tag: UInt8 = 0) throws -> (payloads: [[UInt8]], ends: [LogOffset]) {
    var payloads: [[UInt8]] = []
    var ends: [LogOffset] = []
    for i in 0..<n {
        let p = [UInt8](repeating: UInt8(truncatingIfNeeded: i) &+ tag, count: size)
        payloads.append(p)
        ends += try log.append([p])
    }
    return (payloads, ends)
}

@Suite("SegmentLog integrity: damage is never taken for a torn tail")
struct SegmentLogIntegrityTests {
    @Test("A corrupt record before the acknowledged mark is damage: listed, not truncated, read refuses to cross it")
    func midLogDamage() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let (payloads, ends) = try appendEach(log, 40, size: 1000)
        try log.close()
        let file = try #require(try dir.segments().first)
        let sizeBefore = try fileSize(file)
        // Four bytes in the middle of record 20's payload (the reproduction: "flip 4 bytes near 700,000").
        try flip(file, at: 8 + Int(ends[19].value) + 500, count: 4)
        log = try SegmentLog(directory: dir.url)
        #expect(try fileSize(file) == sizeBefore, "damaged acknowledged data must not be cut")
        #expect(log.endOffset == ends.last!)
        // The damaged record starts after append 20's commit mark and ends where append 21's mark begins.
        #expect(log.damage == [LogDamage(kind: .corrupt, range: (ends[19].value + 20)..<ends[20].value, segment: file.lastPathComponent)])
        #expect(logError { try log.read(from: .zero) { _, _ in } }?.code == .corrupt)
        // Everything after the damaged record is still there.
        #expect(try readAll(log, from: ends[20]).map(\.0) == Array(payloads[21...]))
        #expect(try log.verify() == log.damage)
    }

    @Test("reconcile: damage the store has not counted stops the caller; damage it counted is quarantined with a copy")
    func reconcile() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let (payloads, ends) = try appendEach(log, 10)
        try log.close()
        let file = try #require(try dir.segments().first)
        let original = [UInt8](try Data(contentsOf: file))
        try flip(file, at: 8 + Int(ends[3].value) + 20 + 12 + 7)
        log = try SegmentLog(directory: dir.url)
        let damaged = (ends[3].value + 20)..<ends[4].value
        // The store counted up to record 2: record 4 is acknowledged and uncounted.
        let error = logError { try log.reconcile(countedUpTo: ends[2].value) }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains("speedflow log quarantine") == true)
        #expect(log.damage.count == 1)
        // The store counted past it: set aside, replay skips it, later records stay at their offsets.
        try log.reconcile(countedUpTo: ends[5].value)
        #expect(log.damage.isEmpty)
        let read = try readAll(log)
        #expect(read.map(\.0) == Array(payloads[0..<4]) + Array(payloads[5...]))
        #expect(read.map(\.1) == Array(ends[0..<4]) + Array(ends[5...]))
        let copy = dir.url.appendingPathComponent("quarantine/\(SegmentLog.quarantineName(damaged, .corrupt))")
        var expected = Array(original[(8 + Int(damaged.lowerBound))..<(8 + Int(damaged.upperBound))])
        expected[12 + 7] ^= 0x5A
        #expect([UInt8](try Data(contentsOf: copy)) == expected)
        #expect(log.quarantined.map(\.range) == [damaged])
        // Appends continue; a reopen finds nothing wrong.
        let more = try log.append([[1, 2, 3]])
        try log.close()
        log = try SegmentLog(directory: dir.url)
        #expect(log.damage.isEmpty && log.endOffset == more[0])
        #expect(try log.verify().isEmpty)
        #expect(try readAll(log).last?.0 == [1, 2, 3])
    }

    @Test("A damaged length field: the scan finds the next record by its magic")
    func resyncAfterBadLength() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let (payloads, ends) = try appendEach(log, 6, size: 50)
        try log.close()
        let file = try #require(try dir.segments().first)
        try flip(file, at: 8 + Int(ends[1].value) + 20 + 5)  // record 2's length field
        log = try SegmentLog(directory: dir.url)
        #expect(log.damage.map(\.range) == [(ends[1].value + 20)..<ends[2].value])
        try log.reconcile(countedUpTo: ends.last!.value)
        #expect(try readAll(log).map(\.0) == [payloads[0], payloads[1]] + Array(payloads[3...]))
    }

    @Test("Damaged commit marks: a later mark still says the damage was acknowledged")
    func damagedMarks() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let (payloads, ends) = try appendEach(log, 5)
        try log.close()
        let file = try #require(try dir.segments().first)
        try flip(file, at: 8 + Int(ends[0].value) + 20 + 20)  // record 1's payload
        try flip(file, at: 8 + Int(ends[1].value) + 15)  // the next append's mark
        log = try SegmentLog(directory: dir.url)
        // One damaged region (record 1 and the mark after it), bounded by the marks of appends 3 and 4.
        #expect(log.damage.map(\.range) == [(ends[0].value + 20)..<(ends[1].value + 20)])
        #expect(log.endOffset == ends.last!)
        try log.reconcile(countedUpTo: ends.last!.value)
        #expect(try readAll(log).map(\.0) == [payloads[0]] + Array(payloads[2...]))
    }

    @Test("A missing middle segment is damage: read refuses to cross the hole, quarantine fills it")
    func missingSegment() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 200, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        let (payloads, ends) = try appendEach(log, 20, size: 60)
        try log.close()
        let files = try dir.segments()
        #expect(files.count >= 4)
        let bases = files.map { UInt64($0.deletingPathExtension().lastPathComponent)! }
        try FileManager.default.removeItem(at: files[1])
        log = try SegmentLog(directory: dir.url, configuration: config)
        #expect(log.damage == [LogDamage(kind: .missing, range: bases[1]..<bases[2], segment: files[0].lastPathComponent)])
        #expect(logError { try log.read(from: .zero) { _, _ in } }?.code == .corrupt)
        #expect(logError { try log.reconcile(countedUpTo: bases[1]) }?.code == .corrupt)
        try log.reconcile(countedUpTo: bases[2])
        let kept = zip(payloads, ends).filter { $0.1.value <= bases[1] || $0.1.value > bases[2] }
        #expect(try readAll(log).map(\.0) == kept.map(\.0))
        #expect(try readAll(log).map(\.1) == kept.map(\.1))
        try log.close()
        log = try SegmentLog(directory: dir.url, configuration: config)
        #expect(log.damage.isEmpty)
        #expect(log.quarantined.map(\.kind) == [.missing])
    }

    @Test("A truncated older segment leaves a hole that is found at open")
    func truncatedOlderSegment() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 200, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        _ = try appendEach(log, 20, size: 60)
        try log.close()
        let files = try dir.segments()
        let size = try fileSize(files[0])
        #expect(truncate(files[0].path, off_t(size - 30)) == 0)
        log = try SegmentLog(directory: dir.url, configuration: config)
        let base1 = UInt64(files[1].deletingPathExtension().lastPathComponent)!
        #expect(log.damage.map(\.kind) == [.missing])
        #expect(log.damage.first?.range == (base1 - 30)..<base1)
        // The cut record's remaining bytes are damage too: verify finds them (the open does not read old segments).
        #expect(try log.verify().map(\.kind) == [.corrupt, .missing])
    }

    @Test("The last segment cut short: log/ACKED says the bytes were acknowledged, so it is damage, not a torn tail")
    func truncatedLastSegment() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let (payloads, ends) = try appendEach(log, 10)
        try log.close()  // writes the final mark
        let file = try #require(try dir.segments().last)
        let size = try fileSize(file)
        #expect(truncate(file.path, off_t(size - 150)) == 0)
        log = try SegmentLog(directory: dir.url)
        // The cut record (from the start of its append's mark... its record) to the acknowledged end: one range.
        let lost = try #require(log.damage.first)
        #expect(log.damage.count == 1 && lost.range.upperBound == ends.last!.value)
        #expect(try fileSize(file) == size - 150, "nothing is cut further")
        #expect(logError { try log.reconcile(countedUpTo: ends[5].value) }?.code == .corrupt)
        #expect(try log.verify() == log.damage)
        // Counted by the store: padded up to the mark; records before it are intact, new ones follow it.
        try log.reconcile(countedUpTo: ends.last!.value)
        #expect(log.endOffset == ends.last!)
        let kept = zip(payloads, ends).filter { $0.1.value <= lost.range.lowerBound }
        #expect(try readAll(log).map(\.0) == kept.map(\.0))
        #expect(try log.append([[4]]) == [LogOffset(ends.last!.value + 33)])
    }

    @Test("A deleted last segment: log/ACKED makes it missing data, not a shorter log")
    func deletedLastSegment() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 300, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        let (_, ends) = try appendEach(log, 12, size: 60)
        try log.close()
        let files = try dir.segments()
        let lastBase = UInt64(files.last!.deletingPathExtension().lastPathComponent)!
        try FileManager.default.removeItem(at: files.last!)
        log = try SegmentLog(directory: dir.url, configuration: config)
        if lastBase < ends.last!.value {
            #expect(log.damage.map(\.kind) == [.missing])
            #expect(log.damage.first?.range == lastBase..<ends.last!.value)
        }
    }

    @Test("A store checkpoint past the log's end stops the caller; quarantining the range moves new records past it")
    func checkpointPastEnd() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        let (_, ends) = try appendEach(log, 3)
        let counted = ends.last!.value + 500
        #expect(logError { try log.reconcile(countedUpTo: counted) }?.code == .behindStore)
        try log.quarantine(LogDamage(kind: .missing, range: ends.last!.value..<counted, segment: ""))
        #expect(log.endOffset == LogOffset(counted))
        try log.reconcile(countedUpTo: counted)
        #expect(try log.append([[9]]) == [LogOffset(counted + 33)])
        #expect(try readAll(log, from: LogOffset(counted)).map(\.0) == [[9]])
        #expect(try readAll(log).count == 4)
    }

    @Test("Format-1 segments stay readable; new records go to a format-2 segment after them")
    func formatOneUpgrade() throws {
        let dir = try TempDir()
        // A format-1 segment: [u32 length][u32 crc32(payload)][payload], no header, named .seg.
        let old: [[UInt8]] = [[1, 2, 3], Array(repeating: 9, count: 40), []]
        var bytes: [UInt8] = []
        for p in old {
            withUnsafeBytes(of: UInt32(p.count).littleEndian) { bytes += $0 }
            withUnsafeBytes(of: referenceCRC32(p).littleEndian) { bytes += $0 }
            bytes += p
        }
        let torn: [UInt8] = [0x10, 0, 0, 0, 1, 2]
        try Data(bytes + torn).write(to: dir.url.appendingPathComponent("00000000000000000000.seg"))
        var log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(log.endOffset == LogOffset(UInt64(bytes.count)))
        #expect(try readAll(log).map(\.0) == old)
        #expect(try readAll(log).map(\.1) == [LogOffset(11), LogOffset(59), LogOffset(67)])
        let more = try log.append([[5, 5]])
        #expect(more == [LogOffset(67 + 20 + 14)])
        try log.close()
        #expect(try dir.segments().map(\.lastPathComponent) == ["00000000000000000000.seg", "00000000000000000067.log"])
        log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(try readAll(log).map(\.0) == old + [[5, 5]])
        #expect(try readAll(log, from: LogOffset(59)).map(\.0) == [[], [5, 5]])
        #expect(log.damage.isEmpty)
    }

    @Test("Random bit flips anywhere in a log: every record is either read intact or inside a reported damage range")
    func randomFlips() throws {
        var rng = SeededRandom(seed: 0xF11B)
        for round in 0..<80 {
            let dir = try TempDir()
            let config = SegmentLog.Configuration(segmentBytes: 1500, fsync: false)
            var log = try SegmentLog(directory: dir.url, configuration: config)
            var payloads: [[UInt8]] = []
            var ends: [LogOffset] = []
            for _ in 0..<Int.random(in: 5...40, using: &rng) {
                let batch = (0..<Int.random(in: 1...3, using: &rng)).map { _ in randomPayload(&rng, maxLength: 120) }
                ends += try log.append(batch)
                payloads += batch
            }
            try log.close()
            let files = try dir.segments()
            let file = files[Int.random(in: 0..<files.count, using: &rng)]
            let size = Int(try fileSize(file))
            guard size > 12 else { continue }
            try flip(file, at: Int.random(in: 8..<(size - 4), using: &rng), count: Int.random(in: 1...4, using: &rng))
            log = try SegmentLog(directory: dir.url, configuration: config)
            let damage = try log.verify()
            for d in damage { try log.quarantine(d) }  // what `speedflow log quarantine` does
            let read = try readAll(log)
            // Whatever is read is exactly what was written at that offset; whatever is missing was reported
            // (or, in the last segment after its acknowledged mark, cut as a torn tail).
            let written = Dictionary(uniqueKeysWithValues: zip(ends, payloads))
            for (payload, end) in read { #expect(written[end] == payload, "round \(round)") }
            let readEnds = Set(read.map(\.1))
            for end in ends where !readEnds.contains(end) && end <= log.endOffset {
                #expect(damage.contains { $0.range.contains(end.value - 1) }, "round \(round): record ending \(end) lost silently")
            }
        }
    }
}
