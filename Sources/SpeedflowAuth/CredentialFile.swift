import Foundation
import SpeedflowFiles

#if canImport(Glibc)
import Glibc
#endif

/// The credentials file: JSON, `{"format":1,"credentials":[…]}`, mode 0600, replaced atomically (write a
/// temporary file, fsync, rename, fsync the directory) under an exclusive `flock` on `<file>.lock` (`SharedFile`),
/// so the CLI and a running server's admin API can both change it. Revoked credentials stay listed (attribution
/// needs their ids). Nodes reload it when it changes (`CredentialStore`).
public enum CredentialFile {
    public static let format = 1
    /// `<data dir>/credentials.json` for `serve`.
    public static let defaultName = "credentials.json"

    struct Contents: Codable {
        var format: Int
        var credentials: [CredentialRecord]
    }

    /// The records in `path`; an absent file holds none.
    public static func load(_ path: String) throws(CredentialError) -> [CredentialRecord] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw CredentialError("credentials_unreadable", "cannot read the credentials file \(path): \(error.localizedDescription)")
        }
        let contents: Contents
        do {
            contents = try JSONDecoder().decode(Contents.self, from: data)
        } catch {
            throw CredentialError("credentials_corrupt", "the credentials file \(path) is not valid: \(error)")
        }
        guard contents.format == format else {
            throw CredentialError(
                "unsupported_format", "the credentials file \(path) has format \(contents.format); this binary reads format \(format)")
        }
        return contents.credentials
    }

    static func save(_ records: [CredentialRecord], to path: String) throws(CredentialError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(Contents(format: format, credentials: records))
        } catch {
            throw CredentialError("credentials_unwritable", "cannot encode credentials: \(error)")
        }
        try SharedFile.replace(path, with: data, mode: 0o600, failure: unwritable)
    }

    /// Runs `body` holding the file's exclusive lock.
    static func withLock<T>(_ path: String, _ body: () throws(CredentialError) -> T) throws(CredentialError) -> T {
        try SharedFile.withLock(path, mode: 0o600, directoryPermissions: 0o700, failure: unwritable, body)
    }

    static func unwritable(_ message: String) -> CredentialError { CredentialError("credentials_unwritable", message) }
}

/// Append-only audit trail of credential changes: one JSON object per line, fsync'd before the change is
/// reported done. Lives next to the credentials file (`audit.log`).
public enum AuditLog {
    public static func path(forCredentials credentials: String) -> String {
        let directory = (credentials as NSString).deletingLastPathComponent
        return (directory.isEmpty ? "." : directory) + "/audit.log"
    }

    /// Appends `entry` to the audit log next to `file`: other administrator actions (camera registry changes)
    /// are recorded beside the credentials' in the data directory's `audit.log`.
    public static func append(_ entry: [String: String], nextTo file: String) throws(CredentialError) {
        try append(entry, credentials: file)
    }

    static func append(_ entry: [String: String], credentials: String) throws(CredentialError) {
        let path = path(forCredentials: credentials)
        var line: Data
        do {
            line = try JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys])
        } catch {
            throw CredentialError("audit_unwritable", "cannot encode an audit line: \(error)")
        }
        line.append(0x0A)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CredentialError("audit_unwritable", "cannot open the audit log \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(fd) == 0 else {
            throw CredentialError("audit_unwritable", "cannot append to the audit log \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Every line of the audit log, parsed (for `token audit` and tests).
    public static func entries(forCredentials credentials: String) throws -> [[String: String]] {
        let path = path(forCredentials: credentials)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]) ?? [:]
        }
    }
}

/// Creating, listing and revoking credentials: the one implementation behind `speedflow token …` and the admin
/// API. Every change is written to the credentials file and the audit log (time, actor, action) before it
/// returns.
public enum CredentialAdmin {
    public static func timestamp(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    /// A new credential; the token is returned once and never stored.
    public static func create(
        at path: String, role: Role, kvfv: [String], name: String?, limits: RateLimits = RateLimits(), actor: String
    ) throws(CredentialError) -> (record: CredentialRecord, token: String) {
        try limits.validate()
        guard let grants = KvfvGrants(kvfv) else {
            throw CredentialError(
                "invalid_kvfv_pattern",
                "each camera must be an id of 1–64 characters [A-Za-z0-9._-], optionally ending in * (a prefix); got \(kvfv)")
        }
        switch role {
        case .camera where kvfv.isEmpty:
            throw CredentialError("missing_kvfv", "a camera credential needs at least one camera (--kvfv ID or PREFIX*)")
        case .reader where !kvfv.isEmpty, .admin where !kvfv.isEmpty:
            throw CredentialError("unexpected_kvfv", "only camera credentials are bound to cameras; \(role.rawValue) covers \(role == .admin ? "all" : "none")")
        default: break
        }
        if let name, name.unicodeScalars.count > 200 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw CredentialError("invalid_name", "a name is at most 200 Unicode scalars (code points), without control characters")
        }
        let (token, id, hash) = Token.generate()
        let record = CredentialRecord(
            id: id, role: role, kvfv: grants, name: name, createdAt: timestamp(), createdBy: actor, revokedAt: nil,
            revokedBy: nil, secretSHA256: hash, requestsPerSecond: limits.requestsPerSecond, eventsPerSecond: limits.eventsPerSecond)
        try CredentialFile.withLock(path) { () throws(CredentialError) in
            var records = try CredentialFile.load(path)
            records.append(record)
            try CredentialFile.save(records, to: path)
            var entry = ["time": record.createdAt, "actor": actor, "action": "create", "credential": id, "role": role.rawValue]
            if !kvfv.isEmpty { entry["kvfv"] = grants.description }
            if let name { entry["name"] = name }
            entry.merge(limits.auditFields) { _, new in new }
            try AuditLog.append(entry, credentials: path)
        }
        return (record, token)
    }

    /// Sets (or with nil fields clears) a credential's own rate limits; audited as `limits`.
    public static func setLimits(at path: String, id: String, limits: RateLimits, actor: String) throws(CredentialError) -> CredentialRecord {
        try limits.validate()
        return try CredentialFile.withLock(path) { () throws(CredentialError) -> CredentialRecord in
            var records = try CredentialFile.load(path)
            guard let i = records.firstIndex(where: { $0.id == id }) else {
                throw CredentialError("unknown_credential", "no credential has the id \(id)")
            }
            records[i].requestsPerSecond = limits.requestsPerSecond
            records[i].eventsPerSecond = limits.eventsPerSecond
            try CredentialFile.save(records, to: path)
            var entry = ["time": timestamp(), "actor": actor, "action": "limits", "credential": id, "role": records[i].role.rawValue]
            entry.merge(limits.auditFields) { _, new in new }
            try AuditLog.append(entry, credentials: path)
            return records[i]
        }
    }

    public static func list(at path: String) throws(CredentialError) -> [CredentialRecord] {
        try CredentialFile.load(path)
    }

    /// Revokes `id`: every node refuses its token once it has reloaded the file. Revoking twice is not an error
    /// (the first revocation's time is kept).
    public static func revoke(at path: String, id: String, actor: String) throws(CredentialError) -> CredentialRecord {
        try CredentialFile.withLock(path) { () throws(CredentialError) -> CredentialRecord in
            var records = try CredentialFile.load(path)
            guard let i = records.firstIndex(where: { $0.id == id }) else {
                throw CredentialError("unknown_credential", "no credential has the id \(id)")
            }
            guard !records[i].isRevoked else { return records[i] }
            records[i].revokedAt = timestamp()
            records[i].revokedBy = actor
            try CredentialFile.save(records, to: path)
            try AuditLog.append(
                ["time": records[i].revokedAt!, "actor": actor, "action": "revoke", "credential": id, "role": records[i].role.rawValue],
                credentials: path)
            return records[i]
        }
    }
}

/// A credential's own rate limits (nil: the node's defaults).
public struct RateLimits: Sendable, Hashable {
    public var requestsPerSecond: Double?
    public var eventsPerSecond: Double?

    public init(requestsPerSecond: Double? = nil, eventsPerSecond: Double? = nil) {
        self.requestsPerSecond = requestsPerSecond
        self.eventsPerSecond = eventsPerSecond
    }

    func validate() throws(CredentialError) {
        for v in [requestsPerSecond, eventsPerSecond].compactMap({ $0 }) where !(v > 0 && v.isFinite) {
            throw CredentialError("invalid_limit", "a rate limit must be a positive number per second, not \(v)")
        }
    }

    var auditFields: [String: String] {
        var f: [String: String] = [:]
        if let r = requestsPerSecond { f["requests_per_second"] = String(r) }
        if let e = eventsPerSecond { f["events_per_second"] = String(e) }
        return f
    }
}
