import Foundation
import NIOCore
import Synchronization

/// The MQTT listener's connections and sessions, shared by its event loops.
///
/// A session is what MQTT keeps for a client id between connections; for Speedflow that is only its
/// subscriptions (to rejections topics): Speedflow never sends at QoS 1 or 2, and what a client sends needs no
/// state here (a resent PUBLISH is deduplicated by the events' identities). Sessions are kept in memory: a
/// restart forgets them (clients then see session present 0 and subscribe again).
final class MQTTSessions: Sendable {
    struct Session {
        var subscriptions: [String] = []
        /// The connection using it (a token of `track`), or nil while stored.
        var owner: UInt64?
        /// While stored: when it is dropped (ms since 1970).
        var expiresAtMs: Int64 = .max
    }

    private struct State {
        var sessions: [String: Session] = [:]
        var channels: [UInt64: any Channel] = [:]
        var nextToken: UInt64 = 1
        var draining = false
    }

    private let state = Mutex(State())
    let maxStored: Int

    init(maxStored: Int) {
        self.maxStored = max(1, maxStored)
    }

    /// Counts a new connection in; `nil` when the listener is draining (the connection is to be closed).
    func track(_ channel: any Channel) -> UInt64? {
        state.withLock { s in
            guard !s.draining else { return nil }
            let token = s.nextToken
            s.nextToken += 1
            s.channels[token] = channel
            return token
        }
    }

    func untrack(_ token: UInt64) {
        _ = state.withLock { $0.channels.removeValue(forKey: token) }
    }

    var openConnections: Int { state.withLock { $0.channels.count } }

    /// The connection `token` starts (`cleanStart`) or resumes the session of `clientId`. Returns whether a
    /// session was resumed, its subscriptions, and the connection that held it until now (to be closed: a client
    /// id is connected at most once).
    func connect(clientId: String, token: UInt64, cleanStart: Bool, nowMs: Int64) -> (present: Bool, subscriptions: [String], takenOver: (any Channel)?) {
        state.withLock { s in
            var session = s.sessions[clientId]
            let takenOver = session?.owner.flatMap { $0 == token ? nil : s.channels[$0] }
            if let stored = session, stored.owner == nil, stored.expiresAtMs <= nowMs { session = nil }
            let present = !cleanStart && session != nil
            var next = present ? session! : Session()
            next.owner = token
            next.expiresAtMs = .max
            s.sessions[clientId] = next
            return (present, next.subscriptions, takenOver)
        }
    }

    /// The subscriptions of the session `token` holds, after a SUBSCRIBE or UNSUBSCRIBE.
    func update(clientId: String, token: UInt64, subscriptions: [String]) {
        state.withLock { s in
            guard s.sessions[clientId]?.owner == token else { return }
            s.sessions[clientId]?.subscriptions = subscriptions
        }
    }

    /// The connection `token` of `clientId` ended: its session is stored for `keepSeconds` (0: dropped), unless
    /// another connection has taken it over.
    func disconnect(clientId: String, token: UInt64, keepSeconds: UInt32, nowMs: Int64) {
        state.withLock { s in
            guard s.sessions[clientId]?.owner == token else { return }
            guard keepSeconds > 0 else {
                s.sessions.removeValue(forKey: clientId)
                return
            }
            s.sessions[clientId]?.owner = nil
            s.sessions[clientId]?.expiresAtMs = nowMs + Int64(keepSeconds) * 1000
            guard s.sessions.count > maxStored else { return }
            // Over the bound: drop the expired, then the stored sessions expiring first, down to 90%.
            s.sessions = s.sessions.filter { $0.value.owner != nil || $0.value.expiresAtMs > nowMs }
            let excess = s.sessions.count - maxStored * 9 / 10
            if excess > 0 {
                let victims = s.sessions.filter { $0.value.owner == nil }.sorted { $0.value.expiresAtMs < $1.value.expiresAtMs }.prefix(excess)
                for (id, _) in victims { s.sessions.removeValue(forKey: id) }
            }
        }
    }

    var storedSessions: Int { state.withLock { s in s.sessions.values.count { $0.owner == nil } } }

    /// Stops accepting connections and returns those open, to be drained.
    func drain() -> [any Channel] {
        state.withLock { s in
            s.draining = true
            return Array(s.channels.values)
        }
    }
}
