import Foundation
import SpeedflowModel
import SpeedflowRegistry
import Testing

@Suite("Camera registry entries: validation and the limit in force")
struct CameraInfoTests {
    static let t0 = Timestamp.parse("2025-06-01T00:00:00Z")!

    static func reason(_ info: CameraInfo) -> String? {
        do throws(RegistryError) {
            _ = try info.validated()
            return nil
        } catch {
            return error.reason
        }
    }

    static func json(_ text: String, id: String? = nil) -> String? {
        do throws(RegistryError) {
            _ = try RegistryJSON.camera(Data(text.utf8), id: id)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test("a full entry is valid; empty texts count as absent")
    func valid() throws {
        let info = CameraInfo(
            kvfvId: "KV-01.a_b", name: "A-107 km 42", road: "A-107", direction: "N", kilometre: 42.3, latitude: 55.75, longitude: 37.62,
            limits: [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70, fromMs: Self.t0)], lanes: 3, timeZone: "Europe/Moscow",
            expectedDailyVolume: 24_000)
        #expect(try info.validated() == info)
        #expect(try CameraInfo(kvfvId: "A", name: "", road: "", timeZone: "").validated() == CameraInfo(kvfvId: "A"))
        // The bounds themselves are valid.
        let edges = CameraInfo(
            kvfvId: String(repeating: "x", count: 64), name: String(repeating: "é", count: 200), latitude: -90, longitude: 180,
            limits: [SpeedLimit(kmh: 5, fromMs: 0), SpeedLimit(kmh: 300, fromMs: 300_000)], lanes: 16, expectedDailyVolume: 100_000_000)
        #expect(Self.reason(edges) == nil)
        #expect(Self.reason(CameraInfo(kvfvId: "A", latitude: 90, longitude: -180, lanes: 1, expectedDailyVolume: 1)) == nil)
    }

    @Test("every reason code")
    func reasons() {
        let cases: [(CameraInfo, String)] = [
            (CameraInfo(kvfvId: ""), "invalid_kvfv_id"),
            (CameraInfo(kvfvId: "a b"), "invalid_kvfv_id"),
            (CameraInfo(kvfvId: String(repeating: "x", count: 65)), "invalid_kvfv_id"),
            (CameraInfo(kvfvId: ".."), "invalid_kvfv_id"),
            (CameraInfo(kvfvId: "A", latitude: 90.0001, longitude: 0), "invalid_latitude"),
            (CameraInfo(kvfvId: "A", latitude: .nan, longitude: 0), "invalid_latitude"),
            (CameraInfo(kvfvId: "A", latitude: -.infinity, longitude: 0), "invalid_latitude"),
            (CameraInfo(kvfvId: "A", latitude: 0, longitude: 180.5), "invalid_longitude"),
            (CameraInfo(kvfvId: "A", latitude: 0, longitude: .infinity), "invalid_longitude"),
            (CameraInfo(kvfvId: "A", latitude: 10), "invalid_position"),
            (CameraInfo(kvfvId: "A", longitude: 10), "invalid_position"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 4)]), "invalid_speed_limit"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 301)]), "invalid_speed_limit"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90), SpeedLimit(kmh: 0, fromMs: Self.t0)]), "invalid_speed_limit"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70)]), "invalid_limit_period"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0), SpeedLimit(kmh: 70, fromMs: Self.t0)]), "invalid_limit_period"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0), SpeedLimit(kmh: 70, fromMs: Self.t0 - 300_000)]), "invalid_limit_period"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0 + 60_000)]), "invalid_limit_period"),
            (CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0 + 1)]), "invalid_limit_period"),
            (CameraInfo(kvfvId: "A", lanes: 0), "invalid_lanes"),
            (CameraInfo(kvfvId: "A", lanes: 17), "invalid_lanes"),
            (CameraInfo(kvfvId: "A", timeZone: "Europe/Moskow"), "unknown_time_zone"),
            (CameraInfo(kvfvId: "A", timeZone: "Mars/Olympus"), "unknown_time_zone"),
            (CameraInfo(kvfvId: "A", expectedDailyVolume: 0), "invalid_expected_volume"),
            (CameraInfo(kvfvId: "A", expectedDailyVolume: 100_000_001), "invalid_expected_volume"),
            (CameraInfo(kvfvId: "A", name: String(repeating: "x", count: 201)), "invalid_field"),
            (CameraInfo(kvfvId: "A", road: String(repeating: "x", count: 201)), "invalid_field"),
            (CameraInfo(kvfvId: "A", direction: String(repeating: "x", count: 201)), "invalid_field"),
            (CameraInfo(kvfvId: "A", kilometre: .nan), "invalid_field"),
        ]
        for (info, reason) in cases {
            #expect(Self.reason(info) == reason, "\(info)")
        }
    }

    @Test("a limit starting mid-bucket says why it must be on a 5-minute boundary")
    func alignmentMessage() {
        #expect(throws: RegistryError.self) {
            try CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0 + 120_000)]).validated()
        }
        do throws(RegistryError) {
            _ = try CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 90, fromMs: Self.t0 + 120_000)]).validated()
        } catch {
            #expect(error.message.contains("5-minute") && error.message.contains("2025-06-01T00:02:00Z") && error.message.contains("bucket"))
        }
    }

    @Test("limit(atMs:): the last limit started at or before the time; none before the first")
    func limitInForce() {
        let t1 = Self.t0 + 86_400_000
        let history = CameraInfo(
            kvfvId: "A", limits: [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70, fromMs: Self.t0), SpeedLimit(kmh: 110, fromMs: t1)])
        #expect(history.limit(atMs: .min) == 90)
        #expect(history.limit(atMs: Self.t0 - 1) == 90)
        #expect(history.limit(atMs: Self.t0) == 70)
        #expect(history.limit(atMs: Self.t0 + 1) == 70)
        #expect(history.limit(atMs: t1 - 1) == 70)
        #expect(history.limit(atMs: t1) == 110)
        #expect(history.limit(atMs: .max) == 110)
        let later = CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 60, fromMs: Self.t0)])
        #expect(later.limit(atMs: Self.t0 - 1) == nil)
        #expect(later.limit(atMs: Self.t0) == 60)
        #expect(CameraInfo(kvfvId: "A").limit(atMs: Self.t0) == nil)
        // Before the epoch too.
        let old = CameraInfo(kvfvId: "A", limits: [SpeedLimit(kmh: 60, fromMs: -300_000)])
        #expect(old.limit(atMs: -300_001) == nil && old.limit(atMs: -300_000) == 60)
    }

    @Test("JSON: strict fields and types; kvfv_id of the body must be the path's; speed_limit is read-only")
    func jsonStrict() throws {
        let full = """
            {"kvfv_id":"KV1","name":"A, \\"north\\"\\nline 2","road":"A-107","direction":"N","km":42.3,"latitude":55.75,"longitude":37.62,
             "speed_limits":[{"kmh":90,"from":null},{"kmh":70,"from":"2025-06-01T03:00:00+03:00"}],"lanes":3,"time_zone":"Europe/Moscow",
             "expected_daily_volume":24000}
            """
        let info = try RegistryJSON.camera(Data(full.utf8), id: "KV1")
        #expect(info.name == "A, \"north\"\nline 2" && info.limits == [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70, fromMs: Self.t0)])
        // What is written reads back as the same entry.
        let written = RegistryJSON.object(info, nowMs: Self.t0)
        #expect(written.contains("\"speed_limit\":70"))
        #expect(try RegistryJSON.cameras(Data("{\"cameras\":[\(written)]}".utf8)) == [info])
        #expect(try RegistryJSON.camera(Data("{}".utf8), id: "KV1") == CameraInfo(kvfvId: "KV1"))
        #expect(try RegistryJSON.camera(Data("{\"lanes\":2.0,\"name\":null}".utf8), id: "KV1").lanes == 2)
        let cases: [(String, String)] = [
            ("{\"kvfv_id\":\"KV2\"}", "kvfv_id_mismatch"),
            ("{\"kvfv_id\":5}", "invalid_kvfv_id"),
            ("{\"speed_limit\":90}", "invalid_field"),
            ("{\"color\":\"red\"}", "invalid_field"),
            ("{\"name\":5}", "invalid_field"),
            ("{\"latitude\":\"55.7\",\"longitude\":37}", "invalid_field"),
            ("{\"lanes\":true}", "invalid_field"),
            ("{\"lanes\":\"3\"}", "invalid_field"),
            ("{\"lanes\":2.5}", "invalid_lanes"),
            ("{\"km\":\"1\"}", "invalid_field"),
            ("{\"speed_limits\":90}", "invalid_field"),
            ("{\"speed_limits\":[90]}", "invalid_field"),
            ("{\"speed_limits\":[{\"kmh\":90,\"until\":null}]}", "invalid_field"),
            ("{\"speed_limits\":[{\"kmh\":90.5}]}", "invalid_speed_limit"),
            ("{\"speed_limits\":[{\"from\":null}]}", "invalid_speed_limit"),
            ("{\"speed_limits\":[{\"kmh\":90,\"from\":\"yesterday\"}]}", "invalid_limit_period"),
            ("{\"speed_limits\":[{\"kmh\":90,\"from\":12}]}", "invalid_field"),
            ("{\"expected_daily_volume\":-1}", "invalid_expected_volume"),
            ("{\"expected_daily_volume\":1e30}", "invalid_expected_volume"),
            ("{\"time_zone\":\"Nowhere/Land\"}", "unknown_time_zone"),
            ("[1]", "malformed_json"),
            ("{\"name\":", "malformed_json"),
        ]
        for (body, reason) in cases {
            #expect(Self.json(body, id: "KV1") == reason, "\(body)")
        }
        #expect(Self.json("{\"name\":\"x\"}") == "invalid_kvfv_id")
    }
}
