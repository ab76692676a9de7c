import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client socket for tests that play slow, idle or hostile clients. Use it only inside
/// `HTTPHardeningTests.blocking` (never on the two cooperative threads, which serve the in-process server).
final class RawSocket: @unchecked Sendable {
    // @unchecked: the descriptor is used by one thread at a time (each test hands a socket to one blocking body).
    let fd: Int32
    var received: [UInt8] = []
    private(set) var closedByServer = false

    /// Connects to 127.0.0.1:`port`; `nil` when the connection could not be made. `receiveBuffer`: a small
    /// `SO_RCVBUF` (set before connecting, so the window is small from the start) for a client that stops reading.
    init?(port: Int, receiveBuffer: Int32? = nil) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    var text: String { String(decoding: received, as: UTF8.self) }

    /// Sends all of `bytes` (or as much as the server takes within `timeout` seconds); `false` when the
    /// connection is gone or the send timed out. Never raises SIGPIPE.
    @discardableResult
    func send(_ bytes: [UInt8], timeout: Double = 5) -> Bool {
        var t = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String, timeout: Double = 5) -> Bool { send(Array(text.utf8), timeout: timeout) }

    /// Reads what has arrived within `seconds` (without blocking longer); returns `true` once the server has
    /// closed the connection (end of stream or reset).
    @discardableResult
    func poll(seconds: Double) -> Bool {
        guard !closedByServer else { return true }
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let wait = max(0, Int32(deadline.timeIntervalSinceNow * 1000))
            guard Glibc.poll(&p, 1, wait) > 0 else { return false }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                received.append(contentsOf: buffer[..<n])
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                closedByServer = true
                return true
            }
        } while Date() < deadline
        return false
    }

    /// Reads until the server closes the connection or `limit` seconds pass; `true` when it closed.
    func waitForClose(limit: Double) -> Bool { poll(seconds: limit) || closedByServer }

    /// Reads until `marker` has arrived (e.g. the end of an answer) or `limit` seconds pass.
    func waitFor(_ marker: String, limit: Double) -> Bool {
        let deadline = Date().addingTimeInterval(limit)
        while !text.contains(marker) {
            guard Date() < deadline, !closedByServer else { return text.contains(marker) }
            poll(seconds: min(0.2, max(0.01, deadline.timeIntervalSinceNow)))
        }
        return true
    }

    /// One `GET path` on this (keep-alive) connection; the status code of the answer, or `nil`.
    func get(_ path: String, limit: Double = 10) -> Int? {
        received = []
        guard send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n") else { return nil }
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline {
            poll(seconds: 0.05)
            if let answer = Self.completeAnswer(received) { return answer }
            if closedByServer { return nil }
        }
        return nil
    }

    /// The status of a complete HTTP/1.1 answer with a `Content-Length` body in `bytes`, or `nil` if incomplete.
    static func completeAnswer(_ bytes: [UInt8]) -> Int? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<headEnd.lowerBound]
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        guard text.utf8.count - text.utf8.distance(from: text.startIndex, to: headEnd.upperBound) >= length else { return nil }
        return head.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}

/// Sockets of this process whose local port is `port` and that are not listening: on an in-process server, the
/// connections it still holds a descriptor for (from /proc/net/tcp and /proc/self/fd).
func heldServerSockets(port: Int) -> Int {
    var inodes = Set<String>()
    if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
        for fd in fds {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)"),
                target.hasPrefix("socket:[")
            {
                inodes.insert(String(target.dropFirst(8).dropLast()))
            }
        }
    }
    var held = 0
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // Read to the end: procfs reports size 0, and String(contentsOfFile:) stops after the first page.
        guard let data = FileHandle(forReadingAtPath: table)?.readDataToEndOfFile() else { continue }
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count > 9, let local = f[1].split(separator: ":").last, Int(local, radix: 16) == port else { continue }
            if f[3] != "0A" && inodes.contains(String(f[9])) { held += 1 }  // 0A: LISTEN
        }
    }
    return held
}
