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
/// Layout: `DIR/<20-digit base offset>.log` in `SegmentFormat` 2: `[magic][length][crc][payload]` records,
/// every group commit led by a commit mark that says how far the log was already acknowledged. Offsets are global positions over record bytes,
/// so a segment's name is the offset of its first record byte and segments must be contiguous.
/// Group commit is the caller's job: hand many requests' payloads to one `append` and they share one fsync.
///
/// What opening does with what it finds, and why:
/// - a bad record at or after the highest commit mark of the last segment is a torn write (never acked): the
///   tail is copied to `quarantine/` and truncated;
/// - a bad record before it, a record running past its segment's end, or bytes missing between segments is
///   damage to acknowledged data: nothing is cut, it is listed in `damage` and `read` refuses to cross it.
///   The owner of the offsets (the engine, which knows what its store already counted) decides: damage the
///   store has counted is quarantined (`quarantine`: the bytes copied aside, a padding record in their place
///   so later offsets stay valid), anything else stops the process with a clear error.
public final class SegmentLog: Log {
    public struct Configuration: Sendable {
        /// Roll to a new segment file past this size. Default: 64 MiB.
        public var segmentBytes: Int64 = 64 << 20
        /// Whether `append` fsyncs. Only tests and benchmarks of the non-durable path turn it off. Default: true.
        public var fsync: Bool = true
        /// How often `log/ACKED` (the durable high-water mark, see `AckedMark`) is brought up to date. Default: 100 ms.
        public var ackedMarkIntervalMs: Int = 100

        public init(segmentBytes: Int64 = 64 << 20, fsync: Bool = true, ackedMarkIntervalMs: Int = 100) {
            self.segmentBytes = segmentBytes
            self.fsync = fsync
            self.ackedMarkIntervalMs = ackedMarkIntervalMs
        }
    }

    struct Segment {
        var base: UInt64
        /// Record bytes (the file's size less its header).
        var size: Int64
        var url: URL
        var format: SegmentFormat

        var end: UInt64 { base + UInt64(size) }
        /// File position of global offset `offset` (which must lie in this segment).
        func position(of offset: UInt64) -> Int { format.headerSize + Int(offset - base) }
    }

    struct State {
        var segments: [Segment]
        var fd: Int32
        var lockFd: Int32
        var damage: [LogDamage]
        var closed = false
    }

    private let directory: URL
    private let configuration: Configuration
    private let logger: Logger
    private let state: Mutex<State>
    private let ackedMark: AckedMark
    private let fsyncTimer = Timer(label: "speedflow_log_fsync_seconds")
    private let sizeGauge = Gauge(label: "speedflow_log_bytes")
    private let quarantinedGauge = Gauge(label: "speedflow_log_quarantined_bytes")

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
            let state = try Self.openSegments(directory, configuration: configuration, logger: logger, lockFd: lockFd)
            self.state = Mutex(state)
            ackedMark = try AckedMark(
                url: directory.appendingPathComponent("ACKED"), durable: state.segments[state.segments.count - 1].end,
                fsync: configuration.fsync, intervalMs: configuration.ackedMarkIntervalMs)
        } catch {
            flock(lockFd, LOCK_UN)
            Glibc.close(lockFd)
            throw error
        }
        sizeGauge.record(sizeInBytes)
        quarantinedGauge.record(Int64(quarantined.reduce(0) { $0 + $1.range.count }))
        for d in damage {
            logger.error("Log damage found", metadata: ["log.damage": "\(d)"])
        }
    }

    /// Lists the segments, checks they are contiguous, recovers the last one's tail and opens it for appending.
    private static func openSegments(
        _ directory: URL, configuration: Configuration, logger: Logger, lockFd: Int32
    ) throws -> State {
        var segments = try Self.listSegments(directory)
        var damage: [LogDamage] = []
        let ackedFile = AckedMark.read(directory.appendingPathComponent("ACKED"))?.offset
        for i in segments.indices.dropLast() where segments[i].size < 0 { segments[i].size = 0 }
        if segments.isEmpty {
            segments = [try createSegment(directory, base: 0)]
        }
        for i in segments.indices.dropLast() {
            let (a, b) = (segments[i], segments[i + 1])
            if a.end > b.base {
                throw LogError(
                    .corrupt,
                    "log segments \(a.url.lastPathComponent) and \(b.url.lastPathComponent) overlap (the first ends at offset \(a.end)); restore the log directory from a backup")
            }
            if a.end < b.base {
                damage.append(LogDamage(kind: .missing, range: a.end..<b.base, segment: a.url.lastPathComponent))
            }
        }

        var last = segments[segments.count - 1]
        if last.format == .v2 && last.size < 0 {
            // Created but its magic never fully written (a crash right after a roll): start it again.
            try Data(SegmentFormat.header()).write(to: last.url)
            last.size = 0
        }
        let data = try Data(contentsOf: last.url, options: .uncached)
        var acked = last.base
        let tailStart: Int = data.withUnsafeBytes { raw in
            let h = last.format.headerSize
            let scan = last.format.scanAll(raw, from: h, limit: raw.count)
            // Earlier segments are durable (a roll follows a completed append). Format 1 has no marks: every bad
            // tail looks torn there (the old rule; a copy is kept).
            acked = max(scan.acked ?? last.base, last.base, ackedFile ?? 0)
            let ackedPosition = h + Int(min(acked - last.base, UInt64(raw.count - h)))
            for region in scan.invalid {
                guard region.lowerBound < ackedPosition else { return region.lowerBound }  // torn: never acked
                damage.append(
                    LogDamage(
                        kind: .corrupt,
                        range: (last.base + UInt64(region.lowerBound - h))..<(last.base + UInt64(region.upperBound - h)),
                        segment: last.url.lastPathComponent))
            }
            return raw.count
        }
        if tailStart < data.count {
            let dropped = data.count - tailStart
            let copy = try keepCopy(directory, of: data[tailStart...], name: "tail-\(last.url.lastPathComponent)-\(tailStart)-\(Int(Date().timeIntervalSince1970)).bin")
            logger.warning(
                "Truncating unacknowledged log tail (a write cut by a crash); a copy is kept",
                metadata: [
                    "log.segment": "\(last.url.lastPathComponent)", "log.bytes.dropped": "\(dropped)",
                    "log.acknowledged.offset": "\(acked)", "log.copy": "\(copy.path)",
                ])
            guard truncate(last.url.path, off_t(tailStart)) == 0 else {
                throw LogError(.io, "cannot truncate \(last.url.path): \(errnoString())")
            }
        }
        last.size = Int64(tailStart - last.format.headerSize)
        segments[segments.count - 1] = last
        if let ackedFile, ackedFile > last.end {
            // Acknowledged bytes past what the files hold: the log was cut short (a truncated or deleted segment).
            // A damaged region reaching the end of the file is the same loss: one range.
            if let i = damage.indices.last, damage[i].range.upperBound == last.end {
                damage[i].range = damage[i].range.lowerBound..<ackedFile
            } else {
                damage.append(LogDamage(kind: .missing, range: last.end..<ackedFile, segment: last.url.lastPathComponent))
            }
        }

        var state = State(segments: segments, fd: -1, lockFd: lockFd, damage: damage)
        if last.format == .v1 {
            // A log written before format 2: new records go to a format-2 segment, so they carry the acked mark.
            try roll(&state, directory: directory, logger: logger)
            logger.notice("Log upgraded: new records go to a format-2 segment", metadata: ["log.offset": "\(last.end)"])
        } else {
            let fd = open(last.url.path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw LogError(.io, "cannot open \(last.url.path): \(errnoString())") }
            state.fd = fd
        }
        return state
    }

    deinit {
        try? close()
    }

    public var endOffset: LogOffset {
        state.withLock { LogOffset($0.segments[$0.segments.count - 1].end) }
    }

    public var startOffset: LogOffset { state.withLock { LogOffset($0.segments[0].base) } }

    public var sizeInBytes: Int64 { state.withLock { $0.segments.reduce(0) { $0 + $1.size } } }

    /// Damage to acknowledged data found when the log was opened and not quarantined yet (see `verify` for a
    /// scan of every segment).
    public var damage: [LogDamage] { state.withLock { $0.damage } }

    public func append(_ payloads: [[UInt8]]) throws -> [LogOffset] {
        try state.withLock { s in
            guard !s.closed else { throw LogError(.closed, "the log is closed") }
            guard !payloads.isEmpty else { return [] }
            var buffer = [UInt8]()
            buffer.reserveCapacity(SegmentFormat.markSize + payloads.reduce(0) { $0 + $1.count + 12 })
            var ends = [LogOffset]()
            ends.reserveCapacity(payloads.count)
            var last = s.segments[s.segments.count - 1]
            // Everything before this commit is durable (the previous append returned): say so, in this commit's
            // own write and fsync, so a later recovery can tell damage from a torn write.
            SegmentFormat.appendMark(acked: last.end, to: &buffer)
            var end = last.end + UInt64(SegmentFormat.markSize)
            for p in payloads {
                SegmentFormat.appendRecord(p, to: &buffer)
                end += UInt64(p.count + 12)
                ends.append(LogOffset(end))
            }
            let position = last.position(of: last.end)
            do {
                try buffer.withUnsafeBytes { try Self.writeAll(s.fd, $0, at: position) }
                if configuration.fsync {
                    let start = DispatchTime.now().uptimeNanoseconds
                    guard fdatasync(s.fd) == 0 else { throw LogError(.io, "fdatasync failed: \(errnoString())") }
                    fsyncTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
                }
            } catch {
                // Nothing of this append was acknowledged: cut it off so the next append starts on a boundary.
                _ = ftruncate(s.fd, off_t(position))
                throw error
            }
            last.size += Int64(buffer.count)
            s.segments[s.segments.count - 1] = last
            ackedMark.advance(to: last.end)
            if last.size >= configuration.segmentBytes {
                try Self.roll(&s, directory: directory, logger: logger)
            }
            sizeGauge.record(s.segments.reduce(0) { $0 + $1.size })
            return ends
        }
    }

    /// Starts a new format-2 segment at the current end; everything before it is durable, which its header says.
    private static func roll(_ s: inout State, directory: URL, logger: Logger) throws {
        let segment = try createSegment(directory, base: s.segments[s.segments.count - 1].end)
        let fd = open(segment.url.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LogError(.io, "cannot open \(segment.url.path): \(errnoString())") }
        if s.fd >= 0 { Glibc.close(s.fd) }
        s.fd = fd
        s.segments.append(segment)
        logger.debug("Rolled log segment", metadata: ["log.segment": "\(segment.url.lastPathComponent)"])
    }

    /// Creates `<base>.log` with the format-2 magic, durable (file and directory) before it is used.
    private static func createSegment(_ directory: URL, base: UInt64) throws -> Segment {
        let url = directory.appendingPathComponent(Self.name(base))
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError(.io, "cannot create \(url.path): \(errnoString())") }
        defer { Glibc.close(fd) }
        let bytes = SegmentFormat.header()
        try bytes.withUnsafeBytes { try writeAll(fd, $0, at: 0) }
        guard fsync(fd) == 0 else { throw LogError(.io, "fsync of \(url.path) failed: \(errnoString())") }
        Self.fsyncDirectory(directory)
        return Segment(base: base, size: Int64(bytes.count - SegmentFormat.headerSize), url: url, format: .v2)
    }

    public func read(from offset: LogOffset, _ body: (UnsafeRawBufferPointer, LogOffset) throws -> Void) throws {
        let segments = state.withLock { $0.segments }
        guard let first = segments.lastIndex(where: { $0.base <= offset.value }) else {
            throw LogError(.badOffset, "offset \(offset) precedes the log start \(segments[0].base)")
        }
        guard offset.value <= segments[first].end else { throw LogError(.badOffset, "offset \(offset) is past the end of the log") }
        var expected = offset.value
        for segment in segments[first...] {
            if segment.base > expected {
                throw LogError(
                    .corrupt,
                    "log bytes \(expected)..<\(segment.base) are missing before \(segment.url.lastPathComponent) (a deleted or truncated segment)")
            }
            let data = try Data(contentsOf: segment.url, options: .uncached)
            let limit = segment.format.headerSize + Int(segment.size)
            guard data.count >= limit else {
                throw LogError(.corrupt, "\(segment.url.lastPathComponent) is shorter than the log's records in it (truncated)")
            }
            var position = segment.position(of: max(expected, segment.base))
            try data.withUnsafeBytes { raw in
                while true {
                    switch segment.format.scan(raw, at: position, limit: limit) {
                    case .record(let payload, let next):
                        position = next
                        try body(UnsafeRawBufferPointer(rebasing: raw[payload]), LogOffset(segment.base + UInt64(next - segment.format.headerSize)))
                    case .padding(let next), .mark(_, let next):
                        position = next
                    case .end:
                        return
                    case .invalid:
                        let at = segment.base + UInt64(position - segment.format.headerSize)
                        throw LogError(
                            .corrupt,
                            "damaged record in \(segment.url.lastPathComponent) at byte \(position) (log offset \(at)); `speedflow log check` lists the damage, `speedflow log quarantine` sets it aside")
                    }
                }
            }
            expected = segment.end
        }
    }

    /// Scans every segment in full and returns every damaged or missing range (what `speedflow log check`
    /// reports). Costs a read of the whole log.
    public func verify() throws -> [LogDamage] {
        // Damage found at open that reaches past the log's end (acknowledged bytes cut away) is not in any file
        // to scan: it replaces the scan's view of the same bytes.
        let (segments, pastEnd) = state.withLock { s in
            (s.segments, s.damage.filter { $0.range.upperBound > s.segments[s.segments.count - 1].end })
        }
        var found: [LogDamage] = []
        for (i, segment) in segments.enumerated() {
            if i > 0, segments[i - 1].end < segment.base {
                found.append(LogDamage(kind: .missing, range: segments[i - 1].end..<segment.base, segment: segments[i - 1].url.lastPathComponent))
            }
            let data = try Data(contentsOf: segment.url, options: .uncached)
            let limit = min(data.count, segment.format.headerSize + Int(segment.size))
            let h = segment.format.headerSize
            let invalid = data.withUnsafeBytes { segment.format.scanAll($0, from: h, limit: limit).invalid }
            for r in invalid {
                found.append(
                    LogDamage(
                        kind: .corrupt, range: (segment.base + UInt64(r.lowerBound - h))..<(segment.base + UInt64(r.upperBound - h)),
                        segment: segment.url.lastPathComponent))
            }
            if data.count < segment.format.headerSize + Int(segment.size) {
                let have = segment.base + UInt64(max(0, data.count - segment.format.headerSize))
                found.append(LogDamage(kind: .missing, range: have..<segment.end, segment: segment.url.lastPathComponent))
            }
        }
        return found.filter { f in !pastEnd.contains { $0.range.overlaps(f.range) } } + pastEnd
    }

    /// Sets damaged or missing bytes aside: damaged bytes are copied to `quarantine/<from>-<to>.damaged` and
    /// overwritten with padding; a missing range gets a padding stand-in (`<from>-<to>.missing` records it).
    /// Offsets after the range stay valid; readers skip it. Also takes a range past the end of the log (the
    /// store counted events the log no longer has), so new records land after it.
    public func quarantine(_ d: LogDamage) throws {
        try state.withLock { s in
            guard !s.closed else { throw LogError(.closed, "the log is closed") }
            let length = UInt64(d.range.count)
            let lastIndex = s.segments.count - 1
            if let i = s.segments.firstIndex(where: { $0.base <= d.range.lowerBound && d.range.lowerBound < $0.end }) {
                // Damaged bytes inside a segment (possibly up to its end).
                let segment = s.segments[i]
                guard segment.format == .v2 else {
                    throw LogError(.corrupt, "\(segment.url.lastPathComponent) is a format-1 segment: its damage cannot be set aside in place; restore it from a backup")
                }
                let upper = min(d.range.upperBound, segment.end)
                let from = segment.position(of: d.range.lowerBound)
                let handle = try FileHandle(forReadingFrom: segment.url)
                try handle.seek(toOffset: UInt64(from))
                let bytes = try handle.read(upToCount: Int(upper - d.range.lowerBound)) ?? Data()
                try handle.close()
                _ = try Self.keepCopy(directory, of: bytes, name: Self.quarantineName(d.range.lowerBound..<upper, .corrupt))
                // The padding covers the whole range; past the segment's end (bytes cut away, or too few left for a
                // record header) it extends the last segment.
                var total = UInt64(d.range.count)
                if total < 12 { total = 12 }
                guard d.range.lowerBound + total <= segment.end || i == lastIndex else {
                    throw LogError(.corrupt, "damage \(d) cannot be set aside: it runs into the next segment")
                }
                let fd = i == lastIndex ? s.fd : open(segment.url.path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { throw LogError(.io, "cannot open \(segment.url.path): \(errnoString())") }
                defer { if fd != s.fd { Glibc.close(fd) } }
                try Self.writePadding(fd, at: from, total: total)
                guard fdatasync(fd) == 0 else { throw LogError(.io, "fdatasync failed: \(errnoString())") }
                if d.range.lowerBound + total > segment.end {
                    s.segments[i].size += Int64(d.range.lowerBound + total - segment.end)
                    ackedMark.advance(to: s.segments[i].end)
                }
            } else if d.range.lowerBound == s.segments[lastIndex].end {
                // Missing at the end of the log: a padding record from here to the range's end.
                guard length >= 12 else { throw LogError(.corrupt, "cannot pad \(length) bytes (fewer than a record header)") }
                let segment = s.segments[lastIndex]
                _ = try Self.keepCopy(directory, of: Data(), name: Self.quarantineName(d.range, .missing))
                try Self.writePadding(s.fd, at: segment.position(of: segment.end), total: length)
                guard fdatasync(s.fd) == 0 else { throw LogError(.io, "fdatasync failed: \(errnoString())") }
                s.segments[lastIndex].size += Int64(length)
                ackedMark.advance(to: s.segments[lastIndex].end)
            } else if let i = s.segments.firstIndex(where: { $0.end == d.range.lowerBound }), i < lastIndex,
                s.segments[i + 1].base == d.range.upperBound
            {
                // A hole between two segments: a stand-in segment of padding (sparse) fills it.
                guard length >= 12 else { throw LogError(.corrupt, "cannot pad \(length) bytes (fewer than a record header)") }
                _ = try Self.keepCopy(directory, of: Data(), name: Self.quarantineName(d.range, .missing))
                var segment = try Self.createSegment(directory, base: d.range.lowerBound)
                let fd = open(segment.url.path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else { throw LogError(.io, "cannot open \(segment.url.path): \(errnoString())") }
                defer { Glibc.close(fd) }
                try Self.writePadding(fd, at: SegmentFormat.headerSize, total: length)
                guard fsync(fd) == 0 else { throw LogError(.io, "fsync failed: \(errnoString())") }
                segment.size = Int64(length)
                s.segments.insert(segment, at: i + 1)
            } else {
                throw LogError(.badOffset, "\(d) is neither inside a segment, between two, nor at the end of the log")
            }
            s.damage.removeAll { $0.range.overlaps(d.range) }
            logger.warning("Log range quarantined", metadata: ["log.damage": "\(d)"])
        }
        quarantinedGauge.record(Int64(quarantined.reduce(0) { $0 + $1.range.count }))
    }

    /// Ranges set aside so far (from `quarantine/`): events in them are in no replay or rebuild.
    public var quarantined: [LogDamage] { Self.quarantined(in: directory) }

    /// The ranges `quarantine/` records for the log in `directory`.
    static func quarantined(in directory: URL) -> [LogDamage] {
        let dir = directory.appendingPathComponent("quarantine")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.compactMap { name -> LogDamage? in
            let kind: LogDamage.Kind
            if name.hasSuffix(".damaged") { kind = .corrupt } else if name.hasSuffix(".missing") { kind = .missing } else { return nil }
            let parts = name.split(separator: ".")[0].split(separator: "-")
            guard parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a < b else { return nil }
            return LogDamage(kind: kind, range: a..<b, segment: "")
        }.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    static func quarantineName(_ range: Range<UInt64>, _ kind: LogDamage.Kind) -> String {
        "\(digits(range.lowerBound))-\(digits(range.upperBound)).\(kind == .corrupt ? "damaged" : "missing")"
    }

    /// Writes `bytes` to `quarantine/name` (fsync'd, directory too) and returns its URL.
    static func keepCopy(_ directory: URL, of bytes: Data, name: String) throws -> URL {
        let dir = directory.appendingPathComponent("quarantine", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogError(.io, "cannot create \(url.path): \(errnoString())") }
        defer { Glibc.close(fd) }
        try bytes.withUnsafeBytes { try writeAll(fd, $0, at: 0) }
        guard fsync(fd) == 0 else { throw LogError(.io, "fsync of \(url.path) failed: \(errnoString())") }
        fsyncDirectory(dir)
        fsyncDirectory(directory)
        return url
    }

    /// Padding records covering `total` bytes from file position `at` (several when longer than one can say);
    /// the bytes between their headers are left as they are (zeros past the old end: a sparse extension).
    static func writePadding(_ fd: Int32, at: Int, total: UInt64) throws {
        var remaining = total
        var position = at
        while remaining > 0 {
            var chunk = min(remaining, SegmentFormat.maxPadding)
            if (1..<12).contains(remaining - chunk) { chunk -= 12 }  // leave room for the next header
            try SegmentFormat.paddingHeader(total: chunk).withUnsafeBytes { try writeAll(fd, $0, at: position) }
            position += Int(chunk)
            remaining -= chunk
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LogError(.io, "fstat failed: \(errnoString())") }
        if Int(st.st_size) < position {
            guard ftruncate(fd, off_t(position)) == 0 else { throw LogError(.io, "ftruncate failed: \(errnoString())") }
        }
    }

    public func reconcile(countedUpTo checkpoint: UInt64) throws {
        // How far the log is known to have reached: its end, or further where log/ACKED says acknowledged bytes
        // were cut away (those are damage below, handled like any other).
        let end = damage.map(\.range.upperBound).reduce(endOffset.value, max)
        if checkpoint > end {
            throw LogError(
                .behindStore,
                """
                the store has counted the log up to offset \(checkpoint) but the log ends at offset \(end): \(checkpoint - end) \
                bytes of acknowledged log are missing (a truncated or deleted segment, or a store from another data \
                directory). New records would land below the store's checkpoint and never be counted, so speedflow \
                will not start. Recovery: restore the log directory from the backup that matches the store; or, if the \
                store is right (it already counts those events), run `speedflow log quarantine --data-dir DIR`, which \
                records the missing range as set aside and lets new records follow it.
                """)
        }
        for d in damage where d.range.upperBound <= checkpoint {
            // Counted already: the store holds these events; only the raw copy is damaged, and it is kept aside.
            try quarantine(d)
        }
        let uncounted = damage
        guard uncounted.isEmpty else {
            throw LogError(
                .corrupt,
                """
                acknowledged log records the store has not counted yet are damaged: \
                \(uncounted.map(\.description).joined(separator: "; ")) (the store has counted up to offset \(checkpoint)). \
                Their events cannot be counted, so speedflow will not start rather than answer without them. \
                Recovery: restore the segment from a backup and start again; or accept losing the damaged records with \
                `speedflow log quarantine --data-dir DIR` (copies them to log/quarantine/, replay continues after them).
                """)
        }
    }

    public func removeSegments(consumedUpTo consumed: LogOffset, lastWrittenBeforeMs cutoffMs: Int64) throws -> Int {
        try state.withLock { s in
            var removed = 0
            while s.segments.count > 1 {
                let seg = s.segments[0]
                guard seg.end <= consumed.value else { break }
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
            ackedMark.close()
            s.closed = true
            let rc = configuration.fsync ? fdatasync(s.fd) : 0
            Glibc.close(s.fd)
            flock(s.lockFd, LOCK_UN)
            Glibc.close(s.lockFd)
            guard rc == 0 else { throw LogError(.io, "fdatasync on close failed: \(errnoString())") }
        }
    }

    // MARK: - Files

    /// `<20-digit base>.log` (format 2). Format-1 segments were `.seg`: a different name, so a binary from
    /// before format 2 never mistakes a format-2 segment for a torn format-1 one (it would cut it away).
    static func name(_ base: UInt64) -> String { digits(base) + ".log" }

    static func digits(_ value: UInt64) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func listSegments(_ directory: URL) throws -> [Segment] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        return try names.compactMap { name -> Segment? in
            guard name.hasSuffix(".seg") || name.hasSuffix(".log"), let base = UInt64(name.dropLast(4)) else { return nil }
            let url = directory.appendingPathComponent(name)
            let handle = try FileHandle(forReadingFrom: url)
            defer { try? handle.close() }
            let prefix = try handle.read(upToCount: SegmentFormat.headerSize) ?? Data()
            let size = Int64(try handle.seekToEnd())
            // An empty `.log` is a format-2 segment whose header was never written (size -1 marks it).
            let format = prefix.withUnsafeBytes { SegmentFormat.detect($0) } ?? (name.hasSuffix(".seg") ? .v1 : .v2)
            if format == .v2 && size < Int64(SegmentFormat.headerSize) {
                return Segment(base: base, size: -1, url: url, format: .v2)
            }
            return Segment(base: base, size: size - Int64(format.headerSize), url: url, format: format)
        }.sorted { ($0.base, $0.format == .v1 ? 0 : 1) < ($1.base, $1.format == .v1 ? 0 : 1) }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError(.io, "write failed: \(errnoString())")
            }
            done += n
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
