import Foundation
import Synchronization
import Testing

@testable import SpeedflowLog
import SpeedflowTestSupport

/// A thread-safe one-way flag.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// A fresh directory under the system temp dir, removed when the test is done.
final class TempDir {
    let url: URL
    init() throws { url = temporaryDirectory("speedflow-log-test") }
    deinit { try? FileManager.default.removeItem(at: url) }

    /// Segment files, sorted by name (= base offset).
    func segments() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".log") || $0.hasSuffix(".seg") }.sorted()
            .map { url.appendingPathComponent($0) }
    }
}

func randomPayload(_ rng: inout SeededRandom, maxLength: Int = 200) -> [UInt8] {
    (0..<Int.random(in: 0...maxLength, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// Every record from `offset` on, with its end offset.
func readAll(_ log: SegmentLog, from offset: LogOffset = .zero) throws -> [([UInt8], LogOffset)] {
    var out: [([UInt8], LogOffset)] = []
    try log.read(from: offset) { payload, end in out.append((Array(payload), end)) }
    return out
}

/// The end offsets one append must return: a 20-byte commit mark, then 12 bytes of header per record (format 2).
func expectedEnds(start: UInt64, _ payloads: [[UInt8]]) -> [LogOffset] {
    var end = start + (payloads.isEmpty ? 0 : 20)
    return payloads.map { p in
        end += UInt64(p.count + 12)
        return LogOffset(end)
    }
}

func appendBytes(_ bytes: [UInt8], to url: URL) throws {
    let handle = try FileHandle(forWritingTo: url)
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
}

func fileSize(_ url: URL) throws -> Int64 {
    (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? -1
}

func logError(_ body: () throws -> Void) -> LogError? {
    do {
        try body()
        return nil
    } catch let e as LogError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// CRC-32 (IEEE, reflected), written independently of zlib for checking the on-disk format.
func referenceCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

@Suite("SegmentLog: durable segment files")
struct SegmentLogTests {
    @Test("Append then read returns every payload with its end offset", arguments: [true, false])
    func appendRead(fsync: Bool) throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: fsync))
        #expect(log.startOffset == .zero && log.endOffset == .zero && log.sizeInBytes == 0)
        var rng = SeededRandom(seed: 0x106)
        var all: [[UInt8]] = []
        var allEnds: [LogOffset] = []
        for _ in 0..<20 {
            let batch = (0..<Int.random(in: 0...10, using: &rng)).map { _ in randomPayload(&rng) }
            let ends = try log.append(batch)
            #expect(ends == expectedEnds(start: allEnds.last?.value ?? 0, batch))
            all += batch
            allEnds += ends
            #expect(log.endOffset == (allEnds.last ?? .zero))
        }
        let read = try readAll(log)
        #expect(read.map(\.0) == all)
        #expect(read.map(\.1) == allEnds)
        #expect(log.sizeInBytes == Int64(allEnds.last?.value ?? 0))
        try log.close()
    }

    @Test("The on-disk format: magic, then per append a commit mark and [magic][length][crc][payload] records")
    func recordFormat() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        let payload: [UInt8] = Array("hello, log".utf8)
        let first = try log.append([payload, []])
        _ = try log.append([[7]])
        try log.close()
        let file = try #require(try dir.segments().first)
        #expect(file.lastPathComponent == "00000000000000000000.log")
        let bytes = [UInt8](try Data(contentsOf: file))
        func u32(_ at: Int) -> UInt32 { UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24 }
        func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
        #expect(bytes.count == 8 + 20 + (12 + payload.count) + 12 + 20 + 13)
        #expect(Array(bytes[0..<8]) == Array("SFLOG2\r\n".utf8))
        // The first append's commit mark: acknowledged up to 0 (bit 30 of the length field marks it).
        #expect(u32(8) == 0x524C_4653 && u32(12) == 0x4000_0008 && u64(20) == 0)  // "SFLR"
        #expect(u32(16) == referenceCRC32(Array(bytes[12..<16]) + Array(bytes[20..<28])))
        #expect(u32(28) == 0x524C_4653)
        #expect(u32(32) == UInt32(payload.count))
        #expect(u32(36) == referenceCRC32(Array(bytes[32..<36]) + payload))
        #expect(referenceCRC32(Array("123456789".utf8)) == 0xCBF4_3926)  // the CRC-32 check value
        #expect(Array(bytes[40..<(40 + payload.count)]) == payload)
        let empty = 40 + payload.count
        #expect(u32(empty) == 0x524C_4653 && u32(empty + 4) == 0 && u32(empty + 8) == referenceCRC32([0, 0, 0, 0]))
        // The second append's mark says the first one was durable.
        #expect(first == [LogOffset(UInt64(20 + 12 + payload.count)), LogOffset(UInt64(20 + 12 + payload.count + 12))])
        #expect(u32(empty + 16) == 0x4000_0008 && u64(empty + 24) == first[1].value)
    }

    @Test("Empty appends and empty payloads")
    func empties() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(try log.append([]) == [])
        #expect(log.endOffset == .zero)
        #expect(try log.append([[], [], []]) == [LogOffset(32), LogOffset(44), LogOffset(56)])
        #expect(try readAll(log).map(\.0) == [[], [], []])
        #expect(try readAll(log, from: LogOffset(56)).isEmpty)
    }

    @Test("Reading from any returned offset yields exactly the later records")
    func readFromMiddle() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        var rng = SeededRandom(seed: 0x3D)
        let payloads = (0..<50).map { _ in randomPayload(&rng) }
        let ends = try log.append(payloads)
        for (i, end) in ends.enumerated() {
            let rest = try readAll(log, from: end)
            #expect(rest.map(\.0) == Array(payloads[(i + 1)...]))
            #expect(rest.map(\.1) == Array(ends[(i + 1)...]))
        }
        // Past the end is an error, not silence.
        let error = logError { try log.read(from: LogOffset(ends.last!.value + 100)) { _, _ in } }
        #expect(error?.code == .badOffset)
    }

    @Test("Errors thrown by the reader's body stop the read and propagate")
    func bodyThrows() throws {
        struct Stop: Error {}
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        _ = try log.append([[1], [2], [3]])
        var seen = 0
        #expect(throws: Stop.self) {
            try log.read(from: .zero) { _, _ in
                seen += 1
                if seen == 2 { throw Stop() }
            }
        }
        #expect(seen == 2)
    }

    @Test("Reopening keeps the data and continues the offsets")
    func reopen() throws {
        let dir = try TempDir()
        var rng = SeededRandom(seed: 0x0E)
        let first = (0..<10).map { _ in randomPayload(&rng) }
        let second = (0..<10).map { _ in randomPayload(&rng) }
        var log = try SegmentLog(directory: dir.url)
        let ends1 = try log.append(first)
        try log.close()
        log = try SegmentLog(directory: dir.url)
        #expect(log.endOffset == ends1.last!)
        #expect(try readAll(log).map(\.0) == first)
        let ends2 = try log.append(second)
        #expect(ends2 == expectedEnds(start: ends1.last!.value, second))
        try log.close()
        log = try SegmentLog(directory: dir.url)
        #expect(try readAll(log).map(\.0) == first + second)
        #expect(try readAll(log).map(\.1) == ends1 + ends2)
        try log.close()
    }

    @Test("A torn tail is truncated on reopen; later appends and reads work", arguments: [
        "garbage", "short header", "truncated record", "header only",
    ])
    func tornTail(kind: String) throws {
        let dir = try TempDir()
        var rng = SeededRandom(seed: 0x70A)
        let payloads = (0..<8).map { _ in randomPayload(&rng, maxLength: 100) }
        var log = try SegmentLog(directory: dir.url)
        let ends = try log.append(payloads)
        try log.close()
        let file = try #require(try dir.segments().last)
        let torn: [UInt8]
        switch kind {
        case "garbage": torn = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]
        case "short header": torn = [0x05, 0x00, 0x00]
        case "truncated record":
            // A record announcing 100 bytes with a correct CRC, but only 10 of them written.
            let full = (0..<100).map { UInt8($0) }
            let crc = referenceCRC32(full)
            torn = [100, 0, 0, 0] + withUnsafeBytes(of: crc.littleEndian, Array.init) + Array(full.prefix(10))
        default: torn = [0x10, 0, 0, 0, 0, 0, 0, 0]
        }
        try appendBytes(torn, to: file)
        #expect(try fileSize(file) == 8 + Int64(ends.last!.value) + Int64(torn.count))
        log = try SegmentLog(directory: dir.url)
        #expect(log.endOffset == ends.last!)
        #expect(log.damage.isEmpty)
        #expect(try fileSize(file) == 8 + Int64(ends.last!.value))
        // Nothing is cut without a copy.
        let copies = try FileManager.default.contentsOfDirectory(atPath: dir.url.appendingPathComponent("quarantine").path)
        #expect(copies.count == 1 && copies[0].hasPrefix("tail-"))
        #expect([UInt8](try Data(contentsOf: dir.url.appendingPathComponent("quarantine/\(copies[0])"))) == torn)
        #expect(try readAll(log).map(\.0) == payloads)
        let more = try log.append([[9, 9, 9], [8]])
        #expect(more == expectedEnds(start: ends.last!.value, [[9, 9, 9], [8]]))
        #expect(try readAll(log).map(\.0) == payloads + [[9, 9, 9], [8]])
        try log.close()
        log = try SegmentLog(directory: dir.url)
        #expect(try readAll(log).map(\.0) == payloads + [[9, 9, 9], [8]])
        try log.close()
    }

    @Test("The residual: with log/ACKED behind (a crash within its interval), a damaged last commit is cut as torn")
    func corruptLastRecord() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url)
        let payloads: [[UInt8]] = [[1, 2, 3], Array(repeating: 7, count: 50), [4, 5, 6, 7]]
        let ends = try log.append(payloads)
        try log.close()
        let file = try #require(try dir.segments().last)
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[bytes.count - 1] ^= 0xff  // flip the last payload byte
        try Data(bytes).write(to: file)
        // With the mark up to date it is damage (kept, reported)...
        log = try SegmentLog(directory: dir.url)
        #expect(log.damage.map(\.range) == [ends[1].value..<ends[2].value])
        try log.close()
        // ...without it (the crash came before the mark's next write), only the commit marks speak, and the last
        // commit's own records have none after them: indistinguishable from a torn write. Cut, with a copy kept.
        try FileManager.default.removeItem(at: dir.url.appendingPathComponent("ACKED"))
        log = try SegmentLog(directory: dir.url)
        #expect(log.endOffset == ends[1])
        #expect(try readAll(log).map(\.0) == Array(payloads.prefix(2)))
        #expect(try log.append([[42]]) == [LogOffset(ends[1].value + 33)])
        #expect(try readAll(log).map(\.0) == Array(payloads.prefix(2)) + [[42]])
        try log.close()
    }

    @Test("The residual again: a corrupted CRC field (not payload) in the last commit, log/ACKED behind")
    func corruptCRCField() throws {
        let dir = try TempDir()
        var log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        let ends = try log.append([[1], [2], [3]])
        try log.close()
        let file = try #require(try dir.segments().last)
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[8 + Int(ends[1].value) + 8] ^= 0x01  // CRC field of the third record
        try Data(bytes).write(to: file)
        try FileManager.default.removeItem(at: dir.url.appendingPathComponent("ACKED"))  // as if it lagged
        log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(log.endOffset == ends[1])
        #expect(try readAll(log).map(\.0) == [[1], [2]])
    }

    @Test("Small segmentBytes rolls into several segments; reads cross them; names are base offsets")
    func rolling() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 200, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        var rng = SeededRandom(seed: 0x5E6)
        var payloads: [[UInt8]] = []
        var ends: [LogOffset] = []
        for _ in 0..<40 {
            let batch = (0..<Int.random(in: 1...3, using: &rng)).map { _ in randomPayload(&rng, maxLength: 60) }
            ends += try log.append(batch)
            payloads += batch
        }
        let files = try dir.segments()
        #expect(files.count > 5)
        // Each segment is named by the offset of its first byte, a record boundary; sizes add up.
        let bases = files.map { UInt64($0.lastPathComponent.dropLast(4))! }
        #expect(bases.first == 0)
        #expect(bases.dropFirst().allSatisfy { b in ends.contains(LogOffset(b)) })
        #expect(files.allSatisfy { $0.lastPathComponent.count == 24 && $0.pathExtension == "log" })
        var total: Int64 = 0
        for (i, file) in files.enumerated() {
            let size = try fileSize(file) - 8
            if i + 1 < files.count {
                #expect(UInt64(total) == bases[i])
                #expect(bases[i] + UInt64(size) == bases[i + 1])
                #expect(size >= 200)
            }
            total += size
        }
        #expect(total == Int64(ends.last!.value))
        #expect(log.sizeInBytes == total)
        #expect(try readAll(log).map(\.0) == payloads)
        for (i, end) in ends.enumerated() where i % 5 == 0 {
            #expect(try readAll(log, from: end).map(\.0) == Array(payloads[(i + 1)...]))
        }
        try log.close()
        log = try SegmentLog(directory: dir.url, configuration: config)
        #expect(try readAll(log).map(\.0) == payloads)
        #expect(try readAll(log).map(\.1) == ends)
        #expect(log.endOffset == ends.last!)
        try log.close()
    }

    @Test("A torn tail after a roll is truncated; earlier segments are untouched")
    func tornTailAfterRoll() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 64, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        let payloads = (0..<10).map { [UInt8](repeating: UInt8($0), count: 30) }
        var ends: [LogOffset] = []
        for p in payloads { ends += try log.append([p]) }
        try log.close()
        let files = try dir.segments()
        #expect(files.count >= 3)
        try appendBytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], to: files.last!)
        log = try SegmentLog(directory: dir.url, configuration: config)
        #expect(log.endOffset == ends.last!)
        #expect(try readAll(log).map(\.0) == payloads)
        _ = try log.append([[0xAA]])
        #expect(try readAll(log).map(\.0) == payloads + [[0xAA]])
    }

    @Test("A corrupt record in an older segment is reported by read, not skipped")
    func corruptOlderSegment() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 64, fsync: false)
        var log = try SegmentLog(directory: dir.url, configuration: config)
        for i in 0..<10 { _ = try log.append([[UInt8](repeating: UInt8(i), count: 30)]) }
        try log.close()
        let first = try #require(try dir.segments().first)
        var bytes = [UInt8](try Data(contentsOf: first))
        bytes[64 + 10] ^= 0xff
        try Data(bytes).write(to: first)
        log = try SegmentLog(directory: dir.url, configuration: config)
        #expect(logError { try log.read(from: .zero) { _, _ in } }?.code == .corrupt)
    }

    @Test("removeSegments deletes only old, fully consumed segments and never the active one")
    func retention() throws {
        let dir = try TempDir()
        let config = SegmentLog.Configuration(segmentBytes: 100, fsync: false)
        let log = try SegmentLog(directory: dir.url, configuration: config)
        var payloads: [[UInt8]] = []
        var ends: [LogOffset] = []
        for i in 0..<30 {
            let p = [UInt8](repeating: UInt8(i), count: 40)
            payloads.append(p)
            ends += try log.append([p])
        }
        let files = try dir.segments()
        #expect(files.count >= 8)
        let bases = files.map { UInt64($0.lastPathComponent.dropLast(4))! }
        let now = Date()
        let old = now.addingTimeInterval(-10 * 86_400)
        for f in files { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: f.path) }
        let cutoff = Int64(now.addingTimeInterval(-86_400).timeIntervalSince1970 * 1000)
        let sizeBefore = log.sizeInBytes

        // Nothing consumed: nothing removed.
        #expect(try log.removeSegments(consumedUpTo: .zero, lastWrittenBeforeMs: cutoff) == 0)
        // Consumed up to the middle of segment 3: segments 0, 1, 2 go (their records all end at or before it).
        let consumed = LogOffset(bases[3] + 1)
        #expect(try log.removeSegments(consumedUpTo: consumed, lastWrittenBeforeMs: cutoff) == 3)
        #expect(log.startOffset == LogOffset(bases[3]))
        #expect(try dir.segments() == Array(files.dropFirst(3)))
        #expect(log.sizeInBytes == sizeBefore - Int64(bases[3]))
        // Reads from the new start still work; reads before it fail.
        let firstKept = ends.firstIndex { $0.value > bases[3] }!
        #expect(try readAll(log, from: log.startOffset).map(\.0) == Array(payloads[firstKept...]))
        #expect(logError { try log.read(from: .zero) { _, _ in } }?.code == .badOffset)

        // Consumed exactly to the end of segment 4 (= base of 5): segment 3 and 4 go, but a recent segment stops retention.
        try FileManager.default.setAttributes([.modificationDate: now], ofItemAtPath: files[4].path)
        #expect(try log.removeSegments(consumedUpTo: LogOffset(bases[5]), lastWrittenBeforeMs: cutoff) == 1)
        #expect(log.startOffset == LogOffset(bases[4]))
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: files[4].path)
        #expect(try log.removeSegments(consumedUpTo: LogOffset(bases[5]), lastWrittenBeforeMs: cutoff) == 1)
        #expect(log.startOffset == LogOffset(bases[5]))

        // Everything consumed and old: all but the active (last) segment go.
        #expect(try log.removeSegments(consumedUpTo: log.endOffset, lastWrittenBeforeMs: Int64.max) == files.count - 6)
        #expect(try dir.segments() == [files.last!])
        #expect(log.startOffset == LogOffset(bases.last!))
        #expect(try log.removeSegments(consumedUpTo: log.endOffset, lastWrittenBeforeMs: Int64.max) == 0)
        // The log still appends and reads after retention, and reopens.
        let more = try log.append([[1, 2, 3]])
        #expect(more == [LogOffset(ends.last!.value + 35)])
        #expect(try readAll(log, from: log.startOffset).last?.0 == [1, 2, 3])
        try log.close()
        let reopened = try SegmentLog(directory: dir.url, configuration: config)
        #expect(reopened.startOffset == LogOffset(bases.last!))
        #expect(reopened.endOffset == more[0])
    }

    @Test("A second SegmentLog on the same directory fails with .locked while the first is open")
    func locked() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        _ = try log.append([[1]])
        #expect(logError { _ = try SegmentLog(directory: dir.url) }?.code == .locked)
        // The failed attempt did not disturb the first.
        #expect(try log.append([[2]]) == [LogOffset(66)])
        try log.close()
        let again = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(try readAll(again).map(\.0) == [[1], [2]])
        try again.close()
    }

    @Test("Append after close fails with .closed; close is idempotent")
    func appendAfterClose() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        _ = try log.append([[1, 2]])
        try log.close()
        #expect(logError { _ = try log.append([[3]]) }?.code == .closed)
        try log.close()
        #expect(log.endOffset == LogOffset(34))
    }

    @Test("Releasing the last reference closes the log and its lock")
    func deinitCloses() throws {
        let dir = try TempDir()
        do {
            let log = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
            _ = try log.append([[7]])
        }
        let again = try SegmentLog(directory: dir.url, configuration: .init(fsync: false))
        #expect(try readAll(again).map(\.0) == [[7]])
    }

    @Test("A failed open releases the directory lock, so a later open can succeed")
    func failedOpenReleasesLock() throws {
        let dir = try TempDir()
        // A directory where the last segment file should be: reading it fails after the lock was taken.
        let bogus = dir.url.appendingPathComponent("00000000000000000000.log")
        try FileManager.default.createDirectory(at: bogus, withIntermediateDirectories: false)
        #expect(throws: (any Error).self) { _ = try SegmentLog(directory: dir.url, configuration: .init(fsync: false)) }
        try FileManager.default.removeItem(at: bogus)
        let error = logError { _ = try SegmentLog(directory: dir.url, configuration: .init(fsync: false)) }
        #expect(error == nil, "reopening after a failed open: \(error.map(String.init(describing:)) ?? "ok")")
    }

    @Test("Reads beside appends see a consistent prefix, across rolls")
    func concurrentReadAppend() async throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url, configuration: .init(segmentBytes: 4096, fsync: false))
        let total = 3000
        // Record i is 1 + i % 50 bytes, all equal to UInt8(i % 251): a reader can check each record it sees.
        func payload(_ i: Int) -> [UInt8] { [UInt8](repeating: UInt8(i % 251), count: 1 + i % 50) }
        let done = Flag()
        let writer = Task.detached {
            defer { done.set() }
            var i = 0
            while i < total {
                let n = min(7, total - i)
                _ = try log.append((i..<(i + n)).map(payload))
                i += n
            }
        }
        let reader = Task.detached { () throws -> Int in
            var passes = 0
            while true {
                let end = log.endOffset
                var seen = 0
                var last = LogOffset.zero
                try log.read(from: .zero) { bytes, offset in
                    guard Array(bytes) == payload(seen), offset > last else { throw LogError(.corrupt, "record \(seen) differs") }
                    seen += 1
                    last = offset
                }
                guard last >= end else { throw LogError(.corrupt, "read ended at \(last) before the end \(end) seen first") }
                passes += 1
                if seen == total || (done.isSet && passes > 1_000) { return passes }
            }
        }
        try await writer.value
        let passes = try await reader.value
        #expect(passes >= 1)
        #expect(try readAll(log).count == total)
        #expect(try dir.segments().count > 5)
    }

    @Test("LogOffset orders by value")
    func offsets() {
        #expect(LogOffset(1) < LogOffset(2))
        #expect(LogOffset.zero == LogOffset(0))
        #expect(LogOffset(42).description == "42")
        #expect(LogError(.io, "x").description.contains("io"))
    }
}
