import CZlib
import Foundation
import Logging
import Metrics
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The embedded log: append-only segment files of CRC-checked records, fsync'd before any ack.
///
/// Layout: `DIR/<20-digit base offset>.seg`; a record is `[u32 length][u32 crc32(payload)][payload]`, little
/// endian. Offsets are global byte positions, so a segment's name is the offset of its first byte.
/// Group commit is the caller's job: hand many requests' payloads to one `append` and they share one fsync.
/// On open, the last segment is scanned and a torn or corrupt tail (a crash mid-write; never acked) is
/// truncated away.
public final class SegmentLog: Log {
    public struct Configuration: Sendable {
        /// Roll to a new segment file past this size. Default: 64 MiB.
        public var segmentBytes: Int64 = 64 << 20
        /// Whether `append` fsyncs. Only tests and benchmarks of the non-durable path turn it off. Default: true.
        public var fsync: Bool = true

        public init(segmentBytes: Int64 = 64 << 20, fsync: Bool = true) {
            self.segmentBytes = segmentBytes
            self.fsync = fsync
        }
    }

    struct Segment {
        var base: UInt64
        var size: Int64
        var url: URL
    }

    struct State {
        var segments: [Segment]
        var fd: Int32
        var lockFd: Int32
        var closed = false
    }

    private let directory: URL
    private let configuration: Configuration
    private let logger: Logger
    private let state: Mutex<State>
    private let fsyncTimer = Timer(label: "speedflow_log_fsync_seconds")
    private let sizeGauge = Gauge(label: "speedflow_log_bytes")

    public init(directory: URL, configuration: Configuration = .init(), logger: Logger = Logger(label: "speedflow.log")) throws {
        self.directory = directory
        self.configuration = configuration
        self.logger = logger
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        // One process per log: a second `serve` on the same data dir would interleave writes.
        let lockFd = open(directory.appendingPathComponent("LOCK").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFd >= 0 else { throw LogError(.io, "cannot open lock file in \(directory.path): \(errnoString())") }
        guard flock(lockFd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(lockFd)
            throw LogError(.locked, "\(directory.path) is in use by another speedflow process")
        }

        do {
            self.state = Mutex(try Self.openSegments(directory, logger: logger, lockFd: lockFd))
        } catch {
            flock(lockFd, LOCK_UN)
            Glibc.close(lockFd)
            throw error
        }
        sizeGauge.record(sizeInBytes)
    }

    /// Lists the segments, truncates a torn tail off the last one and opens it for appending.
    private static func openSegments(_ directory: URL, logger: Logger, lockFd: Int32) throws -> State {
        var segments = try Self.listSegments(directory)
        if segments.isEmpty {
            let url = directory.appendingPathComponent(Self.name(0))
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw LogError(.io, "cannot create \(url.path)")
            }
            segments = [Segment(base: 0, size: 0, url: url)]
            Self.fsyncDirectory(directory)
        }
        // Recover the tail: keep the longest valid prefix of the last segment.
        var last = segments[segments.count - 1]
        let valid = try Self.validPrefix(of: last.url)
        if valid < last.size {
            logger.warning(
                "Truncating torn log tail",
                metadata: ["log.segment": "\(last.url.lastPathComponent)", "log.bytes.dropped": "\(last.size - valid)"])
            guard truncate(last.url.path, off_t(valid)) == 0 else {
                throw LogError(.io, "cannot truncate \(last.url.path): \(errnoString())")
            }
            last.size = valid
            segments[segments.count - 1] = last
        }
        let fd = open(last.url.path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw LogError(.io, "cannot open \(last.url.path): \(errnoString())") }
        return State(segments: segments, fd: fd, lockFd: lockFd)
    }

    deinit {
        try? close()
    }

    public var endOffset: LogOffset {
        state.withLock { s in
            let last = s.segments[s.segments.count - 1]
            return LogOffset(last.base + UInt64(last.size))
        }
    }

    public var startOffset: LogOffset { state.withLock { LogOffset($0.segments[0].base) } }

    public var sizeInBytes: Int64 { state.withLock { $0.segments.reduce(0) { $0 + $1.size } } }

    public func append(_ payloads: [[UInt8]]) throws -> [LogOffset] {
        try state.withLock { s in
            guard !s.closed else { throw LogError(.closed, "the log is closed") }
            var buffer = [UInt8]()
            buffer.reserveCapacity(payloads.reduce(0) { $0 + $1.count + 8 })
            var ends = [LogOffset]()
            ends.reserveCapacity(payloads.count)
            var last = s.segments[s.segments.count - 1]
            var end = last.base + UInt64(last.size)
            for p in payloads {
                let crc = p.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
                withUnsafeBytes(of: UInt32(p.count).littleEndian) { buffer.append(contentsOf: $0) }
                withUnsafeBytes(of: crc.littleEndian) { buffer.append(contentsOf: $0) }
                buffer.append(contentsOf: p)
                end += UInt64(p.count + 8)
                ends.append(LogOffset(end))
            }
            do {
                try buffer.withUnsafeBytes { try Self.writeAll(s.fd, $0) }
                if configuration.fsync {
                    let start = DispatchTime.now().uptimeNanoseconds
                    guard fdatasync(s.fd) == 0 else { throw LogError(.io, "fdatasync failed: \(errnoString())") }
                    fsyncTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
                }
            } catch {
                // Nothing of this append was acknowledged: cut it off so the next append starts on a boundary.
                _ = ftruncate(s.fd, off_t(last.size))
                throw error
            }
            last.size += Int64(buffer.count)
            s.segments[s.segments.count - 1] = last
            if last.size >= configuration.segmentBytes {
                try roll(&s)
            }
            sizeGauge.record(s.segments.reduce(0) { $0 + $1.size })
            return ends
        }
    }

    private func roll(_ s: inout State) throws {
        let last = s.segments[s.segments.count - 1]
        let base = last.base + UInt64(last.size)
        let url = directory.appendingPathComponent(Self.name(base))
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError(.io, "cannot create \(url.path): \(errnoString())") }
        Self.fsyncDirectory(directory)
        Glibc.close(s.fd)
        s.fd = fd
        s.segments.append(Segment(base: base, size: 0, url: url))
        logger.debug("Rolled log segment", metadata: ["log.segment": "\(url.lastPathComponent)"])
    }

    public func read(from offset: LogOffset, _ body: (UnsafeRawBufferPointer, LogOffset) throws -> Void) throws {
        let segments = state.withLock { $0.segments }
        guard let first = segments.lastIndex(where: { $0.base <= offset.value }) else {
            throw LogError(.badOffset, "offset \(offset) precedes the log start \(segments[0].base)")
        }
        for segment in segments[first...] {
            let data = try Data(contentsOf: segment.url, options: .uncached)
            let limit = min(Int(segment.size), data.count)
            var position = segment.base == segments[first].base ? Int(offset.value - segment.base) : 0
            guard position <= limit else { throw LogError(.badOffset, "offset \(offset) is past the end of the log") }
            try data.withUnsafeBytes { raw in
                while position + 8 <= limit {
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
                    let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self))
                    guard position + 8 + length <= limit else { break }
                    let payload = UnsafeRawBufferPointer(rebasing: raw[(position + 8)..<(position + 8 + length)])
                    let actual = UInt32(crc32(0, payload.baseAddress?.assumingMemoryBound(to: UInt8.self), uInt(length)))
                    guard actual == crc else {
                        throw LogError(.corrupt, "CRC mismatch in \(segment.url.lastPathComponent) at byte \(position)")
                    }
                    position += 8 + length
                    try body(payload, LogOffset(segment.base + UInt64(position)))
                }
            }
        }
    }

    public func removeSegments(consumedUpTo consumed: LogOffset, lastWrittenBeforeMs cutoffMs: Int64) throws -> Int {
        try state.withLock { s in
            var removed = 0
            while s.segments.count > 1 {
                let seg = s.segments[0]
                let end = seg.base + UInt64(seg.size)
                guard end <= consumed.value else { break }
                let attributes = try FileManager.default.attributesOfItem(atPath: seg.url.path)
                let modified = (attributes[.modificationDate] as? Date) ?? Date()
                guard Int64(modified.timeIntervalSince1970 * 1000) < cutoffMs else { break }
                try FileManager.default.removeItem(at: seg.url)
                s.segments.removeFirst()
                removed += 1
                logger.info("Removed log segment past retention", metadata: ["log.segment": "\(seg.url.lastPathComponent)"])
            }
            if removed > 0 { sizeGauge.record(s.segments.reduce(0) { $0 + $1.size }) }
            return removed
        }
    }

    public func close() throws {
        try state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            let rc = configuration.fsync ? fdatasync(s.fd) : 0
            Glibc.close(s.fd)
            flock(s.lockFd, LOCK_UN)
            Glibc.close(s.lockFd)
            guard rc == 0 else { throw LogError(.io, "fdatasync on close failed: \(errnoString())") }
        }
    }

    // MARK: - Files

    static func name(_ base: UInt64) -> String {
        let digits = String(base)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    static func listSegments(_ directory: URL) throws -> [Segment] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        return try names.compactMap { name -> Segment? in
            guard name.hasSuffix(".seg"), let base = UInt64(name.dropLast(4)) else { return nil }
            let url = directory.appendingPathComponent(name)
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0
            return Segment(base: base, size: size, url: url)
        }.sorted { $0.base < $1.base }
    }

    /// Length of the longest prefix of whole records with valid CRCs.
    static func validPrefix(of url: URL) throws -> Int64 {
        let data = try Data(contentsOf: url, options: .uncached)
        return data.withUnsafeBytes { raw -> Int64 in
            var position = 0
            while position + 8 <= raw.count {
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
                let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self))
                guard position + 8 + length <= raw.count else { break }
                let payload = raw.baseAddress!.advanced(by: position + 8).assumingMemoryBound(to: UInt8.self)
                guard UInt32(crc32(0, payload, uInt(length))) == crc else { break }
                position += 8 + length
            }
            return Int64(position)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError(.io, "write failed: \(errnoString())")
            }
            offset += n
        }
    }

    static func fsyncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            Glibc.close(fd)
        }
    }
}

func errnoString() -> String { String(cString: strerror(errno)) }
