import Foundation
import SpeedflowModel
import SpeedflowTestSupport
import Testing

/// The camera registry end to end with the real binary and curl: an admin's PUT seen by `speedflow cameras
/// export`, a CLI import seen over HTTP within the reload interval, by this server and by a second one sharing
/// the file through `--registry`.
@Suite("Camera registry with the real binary and curl", .enabled(if: SpeedflowProcess.binaryPath != nil), .serialized)
struct RegistryProcessTests {
    @Test("PUT as admin → cameras export sees it; cameras import → visible over HTTP on both nodes; import errors name the line")
    func endToEnd() async throws {
        let server = try SpeedflowProcess(extraArguments: ["--auth", "required"])
        defer { server.remove() }
        let data = server.dataDirectory.path
        let admin = try await AuthTests.token(["create", "--role", "admin", "--data-dir", data])
        let reader = try await AuthTests.token(["create", "--role", "reader", "--data-dir", data])
        try await server.start()
        let registryFile = data + "/cameras.json"
        // A second node with a data directory of its own, following the same registry and credentials files.
        let other = try SpeedflowProcess(extraArguments: ["--auth", "required", "--registry", registryFile, "--credentials", data + "/credentials.json"])
        defer { other.remove() }
        try await other.start()
        let dir = server.directory

        let body = """
            {"name":"A-107, km 42 \\"N\\"","road":"A-107","direction":"N","km":42.3,"latitude":55.75,"longitude":37.62,
             "speed_limits":[{"kmh":90,"from":null},{"kmh":70,"from":"2025-06-01T00:00:00Z"}],"lanes":3,"time_zone":"Europe/Moscow"}
            """
        var (code, text) = try await AuthTests.curl(server.url + "/kvfv/IT1/registry", token: reader, method: "PUT", body: body, in: dir)
        #expect(code == 403, "\(text)")
        (code, text) = try await AuthTests.curl(server.url + "/kvfv/IT1/registry", token: admin, method: "PUT", body: body, in: dir)
        #expect(code == 200 && AuthTests.json(text)["speed_limit"] as? Int == 70, "\(text)")

        // The CLI reads what the API wrote.
        let geojson = dir.appendingPathComponent("export.geojson").path
        _ = try await AuthTests.speedflow(["cameras", "export", "--format", "geojson", "--output", geojson, "--data-dir", data])
        let exported = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: geojson))) as? [String: Any])
        let feature = try #require((exported["features"] as? [[String: Any]])?.first)
        #expect((feature["geometry"] as? [String: Any])?["coordinates"] as? [Double] == [37.62, 55.75])
        let properties = try #require(feature["properties"] as? [String: Any])
        #expect(properties["kvfv_id"] as? String == "IT1" && properties["name"] as? String == "A-107, km 42 \"N\"" && properties["lanes"] as? Int == 3)

        // A CSV import through the CLI: both servers answer it within their reload interval (1 s).
        let csv = dir.appendingPathComponent("cameras.csv")
        try Data(
            """
            kvfv_id,name,road,speed_limit,limit_from,lanes,time_zone
            IT2,"Ring road, km 7",MKAD,100,,5,Europe/Moscow
            IT2,"Ring road, km 7",MKAD,80,2025-06-01T00:00:00Z,5,Europe/Moscow

            """.utf8
        ).write(to: csv)
        let output = try await AuthTests.speedflow(["cameras", "import", csv.path, "--data-dir", data])
        #expect(output.contains("imported 1 camera into"), "\(output)")
        for node in [server, other] {
            try await waitUntil("IT2 answered by \(node.url)", timeout: .seconds(15), interval: .milliseconds(100)) {
                let (code, text) = try await AuthTests.curl(node.url + "/kvfv/IT2/registry", token: reader, in: dir)
                let j = AuthTests.json(text)
                return code == 200 && j["name"] as? String == "Ring road, km 7" && j["speed_limit"] as? Int == 80
                    && (j["speed_limits"] as? [Any])?.count == 2
            }
        }
        (code, text) = try await AuthTests.curl(other.url + "/registry?format=csv", token: reader, in: dir)
        #expect(code == 200 && text.hasPrefix("kvfv_id,name,") && text.contains("IT1,") && text.contains("IT2,\"Ring road, km 7\",MKAD"), "\(text)")

        // A bad file changes nothing and says where the problem is.
        try Data("kvfv_id,lanes\nIT3,2\nIT4,99\n".utf8).write(to: csv)
        let r = try await offCooperativePool { try SpeedflowProcess.run(["cameras", "import", csv.path, "--data-dir", data]) }
        #expect(r.status != 0 && r.output.contains("line 3") && r.output.contains("invalid_lanes"), "\(r.output)")
        let list = try await AuthTests.speedflow(["cameras", "list", "--registry", registryFile])
        #expect(list.contains("IT1") && list.contains("IT2") && !list.contains("IT3"), "\(list)")

        // Removal through the CLI reaches the API too.
        _ = try await AuthTests.speedflow(["cameras", "remove", "IT1", "--data-dir", data])
        try await waitUntil("IT1 gone", timeout: .seconds(15), interval: .milliseconds(100)) {
            try await AuthTests.curl(server.url + "/kvfv/IT1/registry", token: reader, in: dir).0 == 404
        }
        let audit = try String(contentsOfFile: data + "/audit.log", encoding: .utf8)
        #expect(audit.contains("\"action\":\"registry_put\"") && audit.contains("\"action\":\"registry_import\"") && audit.contains("\"action\":\"registry_remove\""))
    }
}
