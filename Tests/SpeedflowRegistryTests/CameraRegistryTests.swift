import Foundation
import SpeedflowModel
import SpeedflowRegistry
import SpeedflowTestSupport
import Testing

@Suite("Camera registry: the file, reloads, writers on several nodes")
struct CameraRegistryTests {
    static func path() -> String { temporaryDirectory("speedflow-registry").path + "/cameras.json" }

    @Test("an absent file is an empty registry; puts are validated, stored, sorted and survive a reopen")
    func basics() throws {
        let path = Self.path()
        let registry = try CameraRegistry(path: path)
        #expect(registry.all().isEmpty && registry.info("A") == nil)
        let revision = registry.revision
        try registry.put(CameraInfo(kvfvId: "B", name: "second", limits: [SpeedLimit(kmh: 90)], lanes: 2))
        try registry.put(CameraInfo(kvfvId: "A", name: "first", latitude: 1.5, longitude: -2.25, timeZone: "Europe/Moscow"))
        #expect(registry.revision > revision)
        #expect(registry.all().map(\.kvfvId) == ["A", "B"])
        #expect(throws: RegistryError.self) { try registry.put(CameraInfo(kvfvId: "C", lanes: 40)) }
        #expect(registry.info("C") == nil)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o644)
        let reopened = try CameraRegistry(path: path)
        #expect(reopened.all() == registry.all())
        // Replacing keeps one entry; removing twice is false the second time.
        try registry.put(CameraInfo(kvfvId: "B", name: "renamed"))
        #expect(registry.info("B") == CameraInfo(kvfvId: "B", name: "renamed"))
        #expect(try registry.remove("B") == true)
        #expect(try registry.remove("B") == false)
        #expect(registry.all().map(\.kvfvId) == ["A"])
    }

    @Test("bulk puts are all or nothing")
    func bulk() throws {
        let registry = try CameraRegistry(path: Self.path())
        try registry.put(CameraInfo(kvfvId: "KEEP", name: "kept"))
        #expect(throws: RegistryError.self) {
            try registry.put([CameraInfo(kvfvId: "N1"), CameraInfo(kvfvId: "N2", expectedDailyVolume: 0), CameraInfo(kvfvId: "N3")])
        }
        #expect(throws: RegistryError.self) { try registry.put([CameraInfo(kvfvId: "N1"), CameraInfo(kvfvId: "N1")]) }
        #expect(registry.all().map(\.kvfvId) == ["KEEP"])
        #expect(try CameraRegistry(path: registry.path).all().map(\.kvfvId) == ["KEEP"])
        try registry.put([CameraInfo(kvfvId: "N1"), CameraInfo(kvfvId: "KEEP")])
        #expect(registry.all() == [CameraInfo(kvfvId: "KEEP"), CameraInfo(kvfvId: "N1")])
        try registry.replaceAll([CameraInfo(kvfvId: "ONLY")])
        #expect(registry.all().map(\.kvfvId) == ["ONLY"])
    }

    @Test("a change by another writer is picked up by reloadIfChanged, and only then")
    func reload() throws {
        let path = Self.path()
        let node = try CameraRegistry(path: path)
        let cli = try CameraRegistry(path: path)
        #expect(try node.reloadIfChanged() == false)
        try cli.put(CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90)]))
        #expect(node.info("A") == nil)
        let revision = node.revision
        #expect(try node.reloadIfChanged() == true)
        #expect(node.info("A")?.limit(atMs: 0) == 90 && node.revision > revision)
        #expect(try node.reloadIfChanged() == false)
        // A hand edit of the file (another process writing it in place).
        var text = try String(contentsOfFile: path, encoding: .utf8)
        // (A different size: an in-place write within one clock tick could leave the same modification time.)
        text = text.replacingOccurrences(of: "\"kmh\":90", with: "\"kmh\":100")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(try node.reloadIfChanged() == true)
        #expect(node.info("A")?.limit(atMs: 0) == 100)
        // The file removed: an empty registry.
        try FileManager.default.removeItem(atPath: path)
        #expect(try node.reloadIfChanged() == true)
        #expect(node.all().isEmpty)
    }

    @Test("a damaged file is an error and the previous registry stays in force")
    func damaged() throws {
        let path = Self.path()
        let registry = try CameraRegistry(path: path)
        try registry.put(CameraInfo(kvfvId: "A", lanes: 2))
        for (text, reason) in [
            ("{\"format\":1,\"cameras\":[{", "registry_corrupt"),
            ("{\"format\":2,\"cameras\":[]}", "unsupported_format"),
            ("{\"format\":1,\"cameras\":[{\"kvfv_id\":\"A\",\"lanes\":99}]}", "registry_corrupt"),
            ("{\"format\":1,\"cameras\":[{\"kvfv_id\":\"A\"},{\"kvfv_id\":\"A\"}]}", "registry_corrupt"),
        ] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            do throws(RegistryError) {
                try registry.reloadIfChanged()
                Issue.record("no error for \(text)")
            } catch {
                #expect(error.reason == reason, "\(text): \(error)")
            }
            #expect(registry.info("A")?.lanes == 2)
            #expect(throws: RegistryError.self) { try CameraRegistry(path: path) }
            // A write refuses to overwrite what it cannot read.
            #expect(throws: RegistryError.self) { try registry.put(CameraInfo(kvfvId: "B")) }
        }
    }

    @Test("concurrent puts through two registries on one file lose nothing (the lock)")
    func concurrentWriters() async throws {
        let path = Self.path()
        let a = try CameraRegistry(path: path)
        let b = try CameraRegistry(path: path)
        let perWriter = 40
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (name, registry) in [("A", a), ("B", b)] {
                group.addTask {
                    for i in 0..<perWriter { try registry.put(CameraInfo(kvfvId: "\(name)\(i)", lanes: i % 16 + 1)) }
                }
                group.addTask {
                    for i in 0..<perWriter / 2 { try registry.put([CameraInfo(kvfvId: "\(name)bulk\(i)"), CameraInfo(kvfvId: "\(name)bulk\(i)x")]) }
                }
            }
            try await group.waitForAll()
        }
        let expected = 2 * perWriter * 2
        #expect(try CameraRegistry(path: path).count == expected)
        try a.reloadIfChanged()
        try b.reloadIfChanged()
        #expect(a.count == expected && b.all() == a.all())
    }

    @Test("the file is readable JSON, one camera a line, without derived fields")
    func fileShape() throws {
        let path = Self.path()
        let registry = try CameraRegistry(path: path)
        try registry.put([CameraInfo(kvfvId: "B", limits: [SpeedLimit(kmh: 90)]), CameraInfo(kvfvId: "A")])
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.first == "{\"format\":1,\"cameras\":[")
        #expect(lines.count == 4 && lines[1].hasPrefix("{\"kvfv_id\":\"A\"") && lines[2].hasPrefix("{\"kvfv_id\":\"B\""))
        #expect(!text.contains("\"speed_limit\":"))
    }
}
