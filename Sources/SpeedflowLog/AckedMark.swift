import CZlib
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `log/ACKED`: the log's durable high-water mark, the offset up to which appends had returned (fsync'd, so
/// acknowledged), kept in a file of its own and brought up to date every `interval` by a background thread.
///
/// Why beside the commit marks inside the segments: a mark inside a segment is lost with the bytes after it, so
/// a segment cut short (a truncated or deleted file) looks like a torn write. This file says how far the log
/// reached, so recovery can tell "never acknowledged" from "acknowledged and since lost". It is written off the
/// append path (one small write + fsync per interval, only when the log grew), so it costs ingest nothing and
/// lags by at most `interval`: the records of the last interval before a crash are covered by the commit
/// marks alone. Two slots with their own CRC, written alternately, so a torn write leaves the other readable.
final class AckedMark: Sendable {
    struct State {
        var durable: UInt64
        var written: UInt64
        var sequence: UInt64
        var closed = false
    }

    private let fd: Int32
    private let fsync: Bool
    private let state: Mutex<State>
    private let stopped = DispatchSemaphore(value: 0)
    private let wake = DispatchSemaphore(value: 0)

    static let slotSize = 24

    /// The highest valid mark in `url`, if any.
    static func read(_ url: URL) -> (sequence: UInt64, offset: UInt64)? {
        guard let data = try? Data(contentsOf: url), data.count >= 2 * slotSize else { return nil }
        return data.withUnsafeBytes { raw in
            var best: (UInt64, UInt64)?
            for at in [0, slotSize] {
                let seq = raw.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian
                let offset = raw.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self).littleEndian
                let crc = raw.loadUnaligned(fromByteOffset: at + 16, as: UInt32.self).littleEndian
                let actual = UInt32(crc32(0, raw.baseAddress!.advanced(by: at).assumingMemoryBound(to: UInt8.self), 16))
                if crc == actual, best == nil || seq > best!.0 { best = (seq, offset) }
            }
            return best
        }
    }

    init(url: URL, durable: UInt64, fsync: Bool, intervalMs: Int) throws {
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError(.io, "cannot open \(url.path): \(errnoString())") }
        self.fsync = fsync
        let previous = Self.read(url)
        state = Mutex(State(durable: durable, written: previous?.offset ?? 0, sequence: previous?.sequence ?? 0))
        try writeIfBehind()
        let thread = Thread { [self] in
            while !state.withLock({ $0.closed }) {
                _ = wake.wait(timeout: .now() + .milliseconds(max(1, intervalMs)))
                try? writeIfBehind()
            }
            stopped.signal()
        }
        thread.name = "speedflow-log-acked"
        thread.start()
    }

    /// Called after every successful append: everything before `offset` is durable.
    func advance(to offset: UInt64) {
        state.withLock { $0.durable = max($0.durable, offset) }
    }

    /// Writes the mark now if the log grew since the last write. Never lowers it: a log that ends before its
    /// mark lost acknowledged bytes, and the mark is the evidence until they are restored or quarantined.
    func writeIfBehind() throws {
        try state.withLock { s in
            guard s.durable > s.written else { return }
            var slot = [UInt8]()
            withUnsafeBytes(of: (s.sequence + 1).littleEndian) { slot.append(contentsOf: $0) }
            withUnsafeBytes(of: s.durable.littleEndian) { slot.append(contentsOf: $0) }
            let crc = slot.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, 16)) }
            withUnsafeBytes(of: crc.littleEndian) { slot.append(contentsOf: $0) }
            slot.append(contentsOf: [0, 0, 0, 0])
            try slot.withUnsafeBytes { try SegmentLog.writeAll(fd, $0, at: Int((s.sequence + 1) % 2) * Self.slotSize) }
            if fsync { guard fdatasync(fd) == 0 else { throw LogError(.io, "fdatasync of the acked mark failed: \(errnoString())") } }
            s.sequence += 1
            s.written = s.durable
        }
    }

    /// Writes the final mark and stops the thread.
    func close() {
        try? writeIfBehind()
        let first = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        if first {
            wake.signal()
            stopped.wait()
            Glibc.close(fd)
        }
    }
}
