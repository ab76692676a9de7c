import Foundation
import SpeedflowAuth
import SpeedflowTestSupport
import Testing

@Suite("Credentials: tokens, grants, the file and its audit log")
struct CredentialTests {
    @Test("a token authenticates as its credential; a wrong secret, a malformed or another id's token does not")
    func tokens() throws {
        let dir = temporaryDirectory().path
        let path = dir + "/credentials.json"
        let (camera, token) = try CredentialAdmin.create(at: path, role: .camera, kvfv: ["KV00001", "KV9*"], name: "A-107 km 42", actor: "test")
        let store = try CredentialStore(path: path)
        let principal = try #require(store.authenticate(token))
        #expect(principal.credentialId == camera.id && principal.role == .camera)
        #expect(principal.mayWrite("KV00001") && principal.mayWrite("KV9") && principal.mayWrite("KV95"))
        #expect(!principal.mayWrite("KV00002") && !principal.mayWrite("KV0000") && !principal.mayWrite("XKV9"))
        // The same id with another secret, a truncated token, no prefix.
        let other = Token.generate().token
        let forged = "sft_\(camera.id)_" + other.split(separator: "_").last!
        #expect(store.authenticate(forged) == nil)
        #expect(store.authenticate(String(token.dropLast())) == nil)
        #expect(store.authenticate(String(token.dropFirst(4))) == nil)
        #expect(store.authenticate("") == nil)
        #expect(store.authenticate(other) == nil)
        // Nothing of the token is stored.
        let file = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!file.contains(String(token.split(separator: "_").last!)))
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("tokens are 256 random bits: no two alike, ids of 16 hex digits")
    func randomness() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let (token, id, _) = Token.generate()
            #expect(id.count == 16 && seen.insert(token).inserted)
            #expect(token.count == 4 + 16 + 1 + 43)
        }
    }

    @Test("grants: exact ids and prefixes; anything else is refused at creation")
    func grants() throws {
        #expect(KvfvGrants(["*"])?.covers("anything") == true)
        #expect(KvfvGrants(["A*", "B"])?.covers("B1") == false)
        for bad in ["", "**", "A*B", "a b", String(repeating: "x", count: 65), "é"] {
            #expect(KvfvGrants([bad]) == nil, "\(bad)")
        }
        let path = temporaryDirectory().path + "/credentials.json"
        #expect(throws: CredentialError.self) { try CredentialAdmin.create(at: path, role: .camera, kvfv: [], name: nil, actor: "t") }
        #expect(throws: CredentialError.self) { try CredentialAdmin.create(at: path, role: .reader, kvfv: ["A"], name: nil, actor: "t") }
        #expect(throws: CredentialError.self) { try CredentialAdmin.create(at: path, role: .camera, kvfv: ["a/b"], name: nil, actor: "t") }
        #expect(try CredentialAdmin.list(at: path).isEmpty)
    }

    @Test("revocation: the store refuses the token once it reloads the changed file; the audit log records both actions")
    func revocation() throws {
        let path = temporaryDirectory().path + "/credentials.json"
        let (reader, token) = try CredentialAdmin.create(at: path, role: .reader, kvfv: [], name: nil, actor: "cli:alice")
        let store = try CredentialStore(path: path)
        #expect(store.authenticate(token)?.role == .reader)
        #expect(try store.reloadIfChanged() == false)
        _ = try CredentialAdmin.revoke(at: path, id: reader.id, actor: "credential:0123456789abcdef")
        #expect(store.authenticate(token) != nil)  // not reloaded yet
        #expect(try store.reloadIfChanged() == true)
        #expect(store.authenticate(token) == nil && store.principal(id: reader.id) == nil)
        #expect(try CredentialAdmin.list(at: path).first?.revokedBy == "credential:0123456789abcdef")
        #expect(throws: CredentialError.self) { try CredentialAdmin.revoke(at: path, id: "ffffffffffffffff", actor: "t") }
        let audit = try AuditLog.entries(forCredentials: path)
        #expect(audit.map { $0["action"] } == ["create", "revoke"])
        #expect(audit.map { $0["actor"] } == ["cli:alice", "credential:0123456789abcdef"])
        #expect(audit.allSatisfy { $0["credential"] == reader.id && $0["time"] != nil })
    }

    @Test("a corrupt credentials file is an error and the previous set stays in force")
    func corruptFile() throws {
        let path = temporaryDirectory().path + "/credentials.json"
        let (_, token) = try CredentialAdmin.create(at: path, role: .admin, kvfv: [], name: nil, actor: "t")
        let store = try CredentialStore(path: path)
        try Data("{\"format\":1,\"credentials\":[{".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: CredentialError.self) { try store.reloadIfChanged() }
        #expect(store.authenticate(token)?.role == .admin)
        #expect(throws: CredentialError.self) { try CredentialStore(path: path) }
    }

    @Test("concurrent creators (CLI and admin API) lose no credential")
    func concurrentCreation() async throws {
        let path = temporaryDirectory().path + "/credentials.json"
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask { _ = try? CredentialAdmin.create(at: path, role: .camera, kvfv: ["C\(i)"], name: nil, actor: "t") }
            }
        }
        #expect(try CredentialAdmin.list(at: path).count == 20)
        #expect(try AuditLog.entries(forCredentials: path).count == 20)
    }
}
