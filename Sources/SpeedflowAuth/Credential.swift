import Foundation

/// What a credential may do.
///
/// - `camera`: write events for the cameras its grants cover (`POST /events`), nothing else.
/// - `reader`: every query, `/kvfv`, `/stats`, `/metrics` and the dashboard; no writes.
/// - `admin`: everything, including writes for any camera and managing credentials.
public enum Role: String, Sendable, Codable, CaseIterable {
    case camera, reader, admin

    public var canRead: Bool { self != .camera }
}

/// The cameras a camera credential may write for: exact ids (`KV00001`) and id prefixes (`KV0*`, a trailing
/// `*`; `*` alone covers every camera).
public struct KvfvGrants: Sendable, Hashable, Codable, CustomStringConvertible {
    public private(set) var patterns: [String]
    private var exact: Set<String>
    private var prefixes: [String]

    /// `nil` when a pattern is not a camera id (1–64 of `[A-Za-z0-9._-]`) with an optional trailing `*`.
    public init?(_ patterns: [String]) {
        var exact = Set<String>()
        var prefixes: [String] = []
        for p in patterns {
            guard Self.isValid(p) else { return nil }
            if p.hasSuffix("*") { prefixes.append(String(p.dropLast())) } else { exact.insert(p) }
        }
        self.patterns = patterns
        self.exact = exact
        self.prefixes = prefixes
    }

    public static func isValid(_ pattern: String) -> Bool {
        let body = pattern.hasSuffix("*") ? pattern.dropLast() : Substring(pattern)
        if body.isEmpty { return pattern == "*" }
        return body.utf8.count <= 64 && !body.contains("*")
            && body.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
            }
    }

    public func covers(_ kvfvId: String) -> Bool {
        exact.contains(kvfvId) || prefixes.contains { kvfvId.hasPrefix($0) }
    }

    public var description: String { patterns.joined(separator: ",") }

    public init(from decoder: any Decoder) throws {
        let patterns = try decoder.singleValueContainer().decode([String].self)
        guard let grants = KvfvGrants(patterns) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "invalid kvfv pattern in \(patterns)"))
        }
        self = grants
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(patterns)
    }
}

/// Who made a request: the credential it presented (a token, a dashboard session, or a client certificate).
public struct Principal: Sendable, Hashable {
    /// The credential's public id (`token list`), recorded as the writer of what it sends.
    public var credentialId: String
    public var role: Role
    /// For `camera`: the cameras it may write for. Ignored for `admin` (every camera) and `reader` (none).
    public var grants: KvfvGrants
    /// This credential's own rate limits (nil: the node's defaults).
    public var requestsPerSecond: Double?
    public var eventsPerSecond: Double?

    public init(credentialId: String, role: Role, grants: KvfvGrants, requestsPerSecond: Double? = nil, eventsPerSecond: Double? = nil) {
        self.credentialId = credentialId
        self.role = role
        self.grants = grants
        self.requestsPerSecond = requestsPerSecond
        self.eventsPerSecond = eventsPerSecond
    }

    /// Whether this principal may write events for `kvfvId`.
    public func mayWrite(_ kvfvId: String) -> Bool {
        switch role {
        case .admin: true
        case .camera: grants.covers(kvfvId)
        case .reader: false
        }
    }

    public var mayWriteAny: Bool { role != .reader }
}

/// One credential as kept in the credentials file: never the token itself, only its SHA-256.
public struct CredentialRecord: Sendable, Codable, Hashable {
    /// Public id: the middle part of the token, shown by `token list`, in audit lines and attribution.
    public var id: String
    public var role: Role
    /// Cameras a `camera` credential may write for (empty for the other roles).
    public var kvfv: KvfvGrants
    /// A label for people (e.g. the camera's site).
    public var name: String?
    public var createdAt: String
    public var createdBy: String
    public var revokedAt: String?
    public var revokedBy: String?
    /// Hex SHA-256 of the token's secret part.
    public var secretSHA256: String
    /// Rate limits of this credential (nil: the node's defaults, `--requests-per-second`, `--events-per-second`).
    public var requestsPerSecond: Double?
    public var eventsPerSecond: Double?

    public var isRevoked: Bool { revokedAt != nil }

    enum CodingKeys: String, CodingKey {
        case id, role, kvfv, name
        case createdAt = "created_at", createdBy = "created_by", revokedAt = "revoked_at", revokedBy = "revoked_by"
        case secretSHA256 = "secret_sha256"
        case requestsPerSecond = "requests_per_second", eventsPerSecond = "events_per_second"
    }

    public var principal: Principal {
        Principal(credentialId: id, role: role, grants: kvfv, requestsPerSecond: requestsPerSecond, eventsPerSecond: eventsPerSecond)
    }
}

/// A stable reason code and a message for people.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(_ reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}
