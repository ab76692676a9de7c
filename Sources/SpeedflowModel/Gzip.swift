import CZlib

/// Why a gzip body was refused.
public struct GzipError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Extensible: new codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// Not a valid gzip stream: bad header, corrupt data, a CRC or length mismatch, a truncated member, or bytes
        /// after the last member that do not start another one.
        public static let invalid = Code(name: "invalid")
        /// The decompressed data would exceed the caller's limit.
        public static let tooLarge = Code(name: "tooLarge")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// gzip (RFC 1952) decompression on zlib, strict about what a body may hold.
public enum Gzip {
    /// Decompresses every member of a gzip stream, in order (RFC 1952 §2.2: a gzip file is a series of members;
    /// `cat a.gz b.gz` is valid and means the concatenation).
    ///
    /// zlib checks each member's CRC-32 and length trailer. Anything after a member that does not begin another
    /// member (garbage, zero padding) is `.invalid`, as is a member cut short or empty input: a body that is not
    /// exactly a gzip stream is refused whole rather than partly read. Output beyond `limit` bytes is `.tooLarge`.
    ///
    /// Memory: the output buffer is reserved once at `limit + 1` bytes (at most 4 GiB + 1) and never zero-filled
    /// or regrown, so only the bytes actually produced become resident: a request's decompression costs its output
    /// size, with no transient copy while a buffer doubles.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws(GzipError) -> [UInt8] {
        guard input.count > 0, let inputBase = input.baseAddress else {
            throw GzipError(.invalid, "the body is empty, not a gzip stream")
        }
        let capacity = Swift.min(Swift.max(limit, 0), 1 << 32) + 1
        var failure: GzipError?
        let output = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            switch inflateMembers(input: inputBase, count: input.count, output: buffer.baseAddress!, capacity: capacity) {
            case .success(let produced):
                initialized = produced
            case .failure(let error):
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        guard output.count <= limit else { throw GzipError(.tooLarge, "the decompressed body exceeds \(limit) bytes") }
        return output
    }

    /// Inflates every member into `output`; `capacity` bytes filled before the end means too large.
    private static func inflateMembers(
        input: UnsafeRawPointer, count: Int, output: UnsafeMutablePointer<UInt8>, capacity: Int
    ) -> Result<Int, GzipError> {
        var stream = z_stream()
        // 16 + MAX_WBITS: gzip wrapper only (no zlib or raw deflate), largest window.
        let initStatus = inflateInit2_(&stream, 16 + MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { return .failure(GzipError(.invalid, "zlib could not start (\(initStatus))")) }
        defer { inflateEnd(&stream) }
        let tooLarge = GzipError(.tooLarge, "the decompressed body exceeds \(capacity - 1) bytes")
        var produced = 0
        var consumed = 0
        var members = 0
        while true {
            // One member: inflate until its end.
            members += 1
            var status: Int32 = Z_OK
            repeat {
                guard produced < capacity else { return .failure(tooLarge) }
                let chunkIn = Swift.min(count - consumed, Int(UInt32.max))
                let chunkOut = Swift.min(capacity - produced, Int(UInt32.max))
                stream.next_in = UnsafeMutablePointer(mutating: (input + consumed).assumingMemoryBound(to: Bytef.self))
                stream.avail_in = uInt(chunkIn)
                stream.next_out = output + produced
                stream.avail_out = uInt(chunkOut)
                status = inflate(&stream, Z_NO_FLUSH)
                consumed += chunkIn - Int(stream.avail_in)
                produced += chunkOut - Int(stream.avail_out)
                switch status {
                case Z_OK, Z_STREAM_END:
                    break
                case Z_BUF_ERROR:
                    // No progress possible: output full (too large, checked above) or input ended mid-member.
                    if produced < capacity { return .failure(GzipError(.invalid, "gzip member \(members) is truncated")) }
                default:
                    let detail = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    return .failure(GzipError(.invalid, "gzip member \(members): \(detail)"))
                }
                if status == Z_OK && consumed == count && produced < capacity {
                    // zlib has all input and room for output but did not reach the member's end.
                    return .failure(GzipError(.invalid, "gzip member \(members) is truncated"))
                }
            } while status != Z_STREAM_END
            if consumed == count { return .success(produced) }
            // More bytes: they must start another member (ID1 ID2 = 1f 8b), else they are trailing garbage.
            let rest = count - consumed
            guard rest >= 2, input.load(fromByteOffset: consumed, as: UInt8.self) == 0x1F,
                input.load(fromByteOffset: consumed + 1, as: UInt8.self) == 0x8B
            else {
                return .failure(GzipError(.invalid, "\(rest) bytes after gzip member \(members) are not another gzip member"))
            }
            guard inflateReset(&stream) == Z_OK else { return .failure(GzipError(.invalid, "zlib could not reset")) }
        }
    }

    /// Compresses `input` into one gzip member (for tests and tools; the server never compresses).
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = Z_DEFAULT_COMPRESSION) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(
            &stream, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { preconditionFailure("deflateInit2 failed") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        let status = output.withUnsafeMutableBytes { out in
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            return deflate(&stream, Z_FINISH)
        }
        precondition(status == Z_STREAM_END, "deflate did not finish (\(status))")
        output.removeSubrange(Int(stream.total_out)...)
        return output
    }
}
