import Foundation
import Testing

@testable import SpeedflowLog

/// `LogFiles`: reading a log from outside the writing process (check, backup).
@Suite("LogFiles: a consistent end without the writer's lock")
struct LogFilesTests {
    @Test("an append seen half-written at the end is cut (not damage); a bad record before the acknowledged point is damage")
    func tailAndDamage() throws {
        let dir = try TempDir()
        let log = try SegmentLog(directory: dir.url)
        let (_, ends) = try appendEach(log, 30, size: 200)
        // The writer stays open: the files are read beside it, as check and backup do.
        let segment = try #require(try LogFiles.segments(dir.url).last)
        var data = try Data(contentsOf: segment.url)
        // An append in progress: its commit mark and the first half of a record are visible, the rest not yet.
        var next: [UInt8] = []
        SegmentFormat.appendMark(acked: ends.last!.value, to: &next)
        SegmentFormat.appendRecord([UInt8](repeating: 7, count: 200), to: &next)
        data.append(contentsOf: next.prefix(next.count / 2))
        var scan = LogFiles.scan(data, segment: segment, last: true, acked: LogFiles.ackedMark(dir.url))
        // Kept: every record, and the in-flight commit's whole leading mark (a valid record, saying no more than
        // what was durable); cut: the half record after it.
        let mark = SegmentFormat.markSize
        #expect(scan.damage.isEmpty)
        #expect(scan.end == ends.last!.value + UInt64(mark))
        #expect(scan.unacknowledgedTail == next.count / 2 - mark)
        #expect(scan.kept.count == 8 + Int(ends.last!.value) + mark)
        // The same bytes with a record in the middle damaged: that is damage (a commit mark after it vouches for it).
        data[8 + Int(ends[10].value) + 30] ^= 0x5A
        scan = LogFiles.scan(data, segment: segment, last: true, acked: nil)
        #expect(scan.damage.count == 1 && scan.damage[0].kind == .corrupt)
        #expect(scan.end == ends.last!.value + UInt64(mark))
        // verify() over the live files: sound.
        let v = try LogFiles.verify(dir.url)
        #expect(v.damage.isEmpty && v.end == ends.last!.value && v.unacknowledgedTail == 0)
        try log.close()
    }
}
