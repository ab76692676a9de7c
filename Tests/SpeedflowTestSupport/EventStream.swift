import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One Server-Sent Event as a client sees it.
public struct SSEEvent: Sendable, Equatable {
    public var id: String?
    public var event: String
    public var data: String

    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:] }
}

/// Parses an event stream (text/event-stream) as received so far: complete events, comment lines and `retry:`.
public struct SSEText {
    public var events: [SSEEvent] = []
    public var comments = 0
    public var retry: Int?

    public init(_ raw: String) {
        // Lines end in LF here (CRLF only in an HTTP head or chunk framing, read with `curl -i` or a raw socket).
        let text = raw.replacingOccurrences(of: "\r\n", with: "\n")
        // Only complete events: those followed by their blank line.
        let blocks = text.components(separatedBy: "\n\n").dropLast()
        for block in blocks {
            var event = SSEEvent(id: nil, event: "message", data: "")
            var hasData = false
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix(":") {
                    comments += 1
                } else if line.hasPrefix("id: ") {
                    event.id = String(line.dropFirst(4))
                } else if line.hasPrefix("event: ") {
                    event.event = String(line.dropFirst(7))
                } else if line.hasPrefix("data: ") {
                    event.data += (hasData ? "\n" : "") + line.dropFirst(6)
                    hasData = true
                } else if line.hasPrefix("retry: ") {
                    retry = Int(line.dropFirst(7))
                }
            }
            if hasData { events.append(event) }
        }
    }

    public func named(_ name: String) -> [SSEEvent] { events.filter { $0.event == name } }
}

/// `curl -N` reading an event stream: the client nobody here wrote. Output is collected as it arrives.
public final class CurlStream: Sendable {
    final class Output: Sendable {
        let bytes = Mutex<[UInt8]>([])
        let done = Atomic<Bool>(false)
    }

    public let process: Process
    private let output = Output()

    /// Starts `curl -N -s` on `url` (call off the cooperative pool: Process.run blocks briefly).
    public init(_ url: String, headers: [String] = [], includeHead: Bool = false) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-N", "-s", "--max-time", "120"]
        if includeHead { arguments.append("-i") }
        for h in headers { arguments += ["-H", h] }
        process.arguments = arguments + [url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let handle = pipe.fileHandleForReading
        try process.run()
        // A thread of its own reads until end of file (readabilityHandler can miss the last bytes on Linux).
        Thread.detachNewThread { [output] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                output.bytes.withLock { $0.append(contentsOf: data) }
            }
            output.done.store(true, ordering: .relaxed)
        }
    }

    public var text: String { String(decoding: output.bytes.withLock { $0 }, as: UTF8.self) }
    public var sse: SSEText { SSEText(text) }
    /// curl's output has ended (the server closed the stream, or curl was stopped).
    public var ended: Bool { output.done.load(ordering: .relaxed) && !process.isRunning }

    /// SIGKILL: the client vanishes (its socket closes with the process).
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { stop() }
}

