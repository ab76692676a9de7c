import Foundation
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// systemd's service notifications (sd_notify(3)) without libsystemd: one datagram of `KEY=VALUE` lines per
/// notification, sent to the unix socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace).
///
/// Why: with `Type=notify` a unit stays "activating" until `READY=1`, so `systemctl start` returns, and units
/// ordered after Speedflow start, only once it answers on its port (for `serve`, after the log has replayed);
/// with `WatchdogSec=` systemd restarts a process whose `WATCHDOG=1` stops coming; `STOPPING=1` tells it the
/// stop it asked for has begun. Outside systemd (no `NOTIFY_SOCKET`) there is no notifier and nothing is sent.
public struct SystemdNotifier: Sendable {
    /// The socket as the environment gave it: `/run/systemd/notify`, or `@name` for an abstract socket.
    public let socket: String
    /// Half of `WATCHDOG_USEC`, the ping interval sd_watchdog_enabled(3) recommends; `nil` without a watchdog
    /// (or when `WATCHDOG_PID` names another process).
    public let watchdogInterval: Duration?

    public init(socket: String, watchdogInterval: Duration? = nil) {
        self.socket = socket
        self.watchdogInterval = watchdogInterval
    }

    /// The notifier systemd asked for in `environment`, or `nil` when the process was not started with
    /// `Type=notify` (no `NOTIFY_SOCKET`, or a kind of socket this does not speak, such as `vsock:`).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()
    ) -> SystemdNotifier? {
        guard let socket = environment["NOTIFY_SOCKET"], socket.hasPrefix("/") || socket.hasPrefix("@") else { return nil }
        var interval: Duration?
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
            environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == pid }) ?? true
        {
            interval = .microseconds(usec / 2)
        }
        return SystemdNotifier(socket: socket, watchdogInterval: interval)
    }

    /// Sends `state` (one or more `KEY=VALUE` lines, e.g. `"READY=1\nSTATUS=Listening"`) as one datagram.
    /// Best effort, as sd_notify is: returns false when it could not be sent, and never throws or blocks.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // An abstract socket is named by a leading NUL instead of '@', and its name is not NUL-terminated.
        let abstract = socket.hasPrefix("@")
        var name = Array(socket.utf8)
        if abstract { name[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard name.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path.copyBytes(from: name)
            if !abstract { path[name.count] = 0 }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count + (abstract ? 0 : 1))
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddr, length) }
            }
        }
        return sent == bytes.count
    }

    /// `READY=1` with a status line `systemctl status` shows.
    public func ready(status: String) {
        notify("READY=1\nSTATUS=\(status)")
    }

    /// While the log replays before `READY=1`: the start timeout moves `by` past now at each sign of progress,
    /// so a long replay that keeps progressing is not killed by `TimeoutStartSec=` while a stuck one still is.
    public func replaying(status: String, extendBy: Duration = .seconds(60)) {
        let usec = extendBy.components.seconds * 1_000_000 + extendBy.components.attoseconds / 1_000_000_000_000
        notify("EXTEND_TIMEOUT_USEC=\(usec)\nSTATUS=\(status)")
    }

    /// Pings the watchdog every `watchdogInterval` until cancelled (returns at once without a watchdog). The
    /// pings come from the cooperative pool, so they stop when it is starved or deadlocked.
    public func runWatchdog() async {
        guard let interval = watchdogInterval else { return }
        while !Task.isCancelled {
            notify("WATCHDOG=1")
            try? await Task.sleep(for: interval)
        }
    }

    /// Services a role runs under systemd: listed last in its `ServiceGroup`, so on SIGTERM it is the first told,
    /// and `STOPPING=1` goes out before intake stops and the engine drains. The watchdog pings run beside the
    /// group (`runWatchdog`), through the drain, until the role returns.
    public struct StoppingService: Service {
        public let notifier: SystemdNotifier

        public init(notifier: SystemdNotifier) { self.notifier = notifier }

        public func run() async throws {
            // Suspends until graceful shutdown; a cancellation (another service failed) ends the process too.
            try? await gracefulShutdown()
            notifier.notify("STOPPING=1\nSTATUS=Stopping: finishing what is in flight")
        }
    }
}

extension Roles {
    /// Runs `group` with systemd told what happens: `READY=1` comes from the role's `onServerRunning` (once it
    /// listens); here the watchdog pings run for as long as the group does, and `STOPPING=1` is sent first on
    /// SIGTERM (the group must list `stoppingService(o)` last).
    static func runNotifying(_ group: ServiceGroup, _ o: Observability) async throws {
        guard let systemd = o.systemd, systemd.watchdogInterval != nil else { return try await group.run() }
        let watchdog = Task { await systemd.runWatchdog() }
        defer { watchdog.cancel() }
        try await group.run()
    }

    /// `SystemdNotifier.StoppingService` when running under systemd, else nothing: append to a group's services.
    static func stoppingService(_ o: Observability) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        o.systemd.map { [.init(service: SystemdNotifier.StoppingService(notifier: $0))] } ?? []
    }
}
