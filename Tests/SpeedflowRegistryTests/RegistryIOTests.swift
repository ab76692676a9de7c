import Foundation
import SpeedflowModel
import SpeedflowRegistry
import Testing

@Suite("Camera registry import and export: CSV, GeoJSON, JSON")
struct RegistryIOTests {
    static let t0 = Timestamp.parse("2025-06-01T00:00:00Z")!

    /// Names that need quoting (commas, quotes, line breaks, spaces at the ends), positions, histories, bare ids.
    static let cameras: [CameraInfo] = [
        CameraInfo(
            kvfvId: "KV00001", name: "A-107, km 42 \"north\"\r\nsecond line", road: "A-107", direction: "N", kilometre: 42.3,
            latitude: 55.751244, longitude: 37.618423,
            limits: [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70, fromMs: t0), SpeedLimit(kmh: 110, fromMs: t0 + 7 * 86_400_000)], lanes: 3,
            timeZone: "Europe/Moscow", expectedDailyVolume: 24_000),
        CameraInfo(kvfvId: "KV00002", name: " padded ", limits: [SpeedLimit(kmh: 60, fromMs: t0)], timeZone: "America/Los_Angeles"),
        CameraInfo(kvfvId: "KV00003", kilometre: -0.5, latitude: -33.8688, longitude: 151.2093, lanes: 1),
        CameraInfo(kvfvId: "Z.9_x-1"),
        CameraInfo(kvfvId: "U1", name: "Ульяновское ш., 7 км — «центр»", expectedDailyVolume: 1),
    ]

    static func reason(_ text: String, _ format: RegistryIO.Format) -> RegistryError? {
        do throws(RegistryError) {
            _ = try RegistryIO.import(Data(text.utf8), format: format)
            return nil
        } catch {
            return error
        }
    }

    @Test("export then import gives the same registry, in every format", arguments: RegistryIO.Format.allCases)
    func roundTrip(format: RegistryIO.Format) throws {
        let text = RegistryIO.export(Self.cameras, format: format, nowMs: Self.t0)
        let back = try RegistryIO.import(Data(text.utf8), format: format)
        #expect(back == Self.cameras)
        // And again: the export of the import is the same text.
        #expect(RegistryIO.export(back, format: format, nowMs: Self.t0) == text)
    }

    @Test("CSV: one row per limit period, RFC 4180 quoting")
    func csvShape() throws {
        let text = RegistryIO.export(Self.cameras, format: .csv, nowMs: nil)
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines[0] == "kvfv_id,name,road,direction,km,latitude,longitude,speed_limit,limit_from,lanes,time_zone,expected_daily_volume")
        // KV00001's three periods: three rows, the name quoted with its quotes doubled and its line break kept.
        #expect(text.components(separatedBy: "\"A-107, km 42 \"\"north\"\"\r\nsecond line\"").count == 4)
        #expect(text.contains(",90,,3,Europe/Moscow,24000\r\n"))
        #expect(text.contains(",70,2025-06-01T00:00:00Z,3,"))
        #expect(text.contains("KV00002,\" padded \",,,,,,60,2025-06-01T00:00:00Z,,America/Los_Angeles,\r\n"))
        #expect(text.contains("Z.9_x-1,,,,,,,,,,,\r\n"))
    }

    @Test("CSV written by hand: any column order and subset, LF line ends, a BOM, a history in any row order")
    func csvByHand() throws {
        let text = "\u{FEFF}speed_limit,kvfv_id,limit_from,name\n110,C1,2025-06-08T00:00:00Z,\"x,y\"\n90,C1,,\"x,y\"\n\n70,C1,2025-06-01T00:00:00Z,\"x,y\"\n,C2,,\"say \"\"hi\"\"\"\n"
        let cameras = try RegistryIO.import(Data(text.utf8), format: .csv)
        #expect(cameras.map(\.kvfvId) == ["C1", "C2"])
        #expect(cameras[0].limits == [SpeedLimit(kmh: 90), SpeedLimit(kmh: 70, fromMs: Self.t0), SpeedLimit(kmh: 110, fromMs: Self.t0 + 7 * 86_400_000)])
        #expect(cameras[0].name == "x,y" && cameras[1].name == "say \"hi\"" && cameras[1].limits.isEmpty)
    }

    @Test("CSV errors name the line (of the record, also after quoted line breaks)")
    func csvErrors() throws {
        let header = "kvfv_id,name,speed_limit,limit_from,lanes,latitude,longitude\n"
        let cases: [(String, String, String)] = [
            (header + "A,\"two\nlines\",90,,3,,\nB,x,90,,17,,\n", "invalid_lanes", "line 4"),
            (header + "A,a,90,,3,,\nA,b,70,2025-06-01T00:00:00Z,3,,\n", "invalid_csv", "line 3"),
            (header + "A,a,90,,3,,\nA,a,,,3,,\n", "invalid_csv", "line 3"),
            (header + "A,a,90,,3,,\nA,a,70,,3,,\n", "invalid_limit_period", "line 2"),
            (header + "A,a,90,2025-06-01T00:01:00Z,3,,\n", "invalid_limit_period", "line 2"),
            (header + "A,a,90,not a time,3,,\n", "invalid_limit_period", "line 2"),
            (header + "A,a,900,,3,,\n", "invalid_speed_limit", "line 2"),
            (header + "A,a,90.5,,3,,\n", "invalid_speed_limit", "line 2"),
            (header + "A,a,fast,,3,,\n", "invalid_field", "line 2"),
            (header + "A,a,90,,3,55,\n", "invalid_position", "line 2"),
            (header + "A,a,90,,3,95,10\n", "invalid_latitude", "line 2"),
            (header + "A,a,90,,3\n", "invalid_csv", "line 2"),
            (header + "A,\"open,90,,3,,\n", "invalid_csv", "line 2"),
            (header + "A,a\"b,90,,3,,\n", "invalid_csv", "line 2"),
            (header + "bad id,a,90,,3,,\n", "invalid_kvfv_id", "line 2"),
            ("kvfv_id,colour\nA,red\n", "invalid_csv", "line 1"),
            ("name\nA\n", "invalid_csv", "line 1"),
            ("", "invalid_csv", "empty"),
        ]
        for (text, reason, place) in cases {
            let error = try #require(Self.reason(text, .csv), "\(text)")
            #expect(error.reason == reason, "\(text): \(error)")
            #expect(error.message.contains(place), "\(text): \(error)")
        }
    }

    @Test("GeoJSON: points are [longitude, latitude]; errors name the feature")
    func geoJSON() throws {
        let text = RegistryIO.export(Self.cameras, format: .geojson, nowMs: Self.t0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "FeatureCollection")
        let features = try #require(object["features"] as? [[String: Any]])
        let first = try #require(features.first)
        let geometry = try #require(first["geometry"] as? [String: Any])
        #expect(geometry["type"] as? String == "Point")
        #expect(geometry["coordinates"] as? [Double] == [37.618423, 55.751244])
        let properties = try #require(first["properties"] as? [String: Any])
        #expect(properties["kvfv_id"] as? String == "KV00001" && properties["speed_limit"] as? Int == 70 && properties["latitude"] == nil)
        #expect(features[1]["geometry"] is NSNull)

        let feature = { (props: String, geometry: String) in
            "{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\",\"geometry\":null,\"properties\":{\"kvfv_id\":\"OK\"}},{\"type\":\"Feature\",\"geometry\":\(geometry),\"properties\":{\(props)}}]}"
        }
        #expect(try RegistryIO.import(Data(feature("\"kvfv_id\":\"B\"", "{\"type\":\"Point\",\"coordinates\":[10,20,150]}").utf8), format: .geojson)[1]
            == CameraInfo(kvfvId: "B", latitude: 20, longitude: 10))
        let cases: [(String, String)] = [
            (feature("\"kvfv_id\":\"B\"", "{\"type\":\"Point\",\"coordinates\":[10,95]}"), "invalid_latitude"),
            (feature("\"kvfv_id\":\"B\"", "{\"type\":\"Point\",\"coordinates\":[10]}"), "invalid_geojson"),
            (feature("\"kvfv_id\":\"B\"", "{\"type\":\"LineString\",\"coordinates\":[[10,20],[11,21]]}"), "invalid_geojson"),
            (feature("\"kvfv_id\":\"B\",\"latitude\":1", "null"), "invalid_field"),
            (feature("\"kvfv_id\":\"B\",\"colour\":\"red\"", "null"), "invalid_field"),
            (feature("\"kvfv_id\":\"B\",\"lanes\":0", "null"), "invalid_lanes"),
            (feature("\"kvfv_id\":\"OK\"", "null"), "duplicate_kvfv_id"),
            (feature("\"name\":\"no id\"", "null"), "invalid_kvfv_id"),
        ]
        for (text, reason) in cases {
            let error = try #require(Self.reason(text, .geojson), "\(text)")
            #expect(error.reason == reason && error.message.hasPrefix("feature 2"), "\(text): \(error)")
        }
        #expect(Self.reason("{\"type\":\"Feature\"}", .geojson)?.reason == "invalid_geojson")
    }

    @Test("JSON import: errors name the camera; an id twice is refused")
    func jsonImport() throws {
        let error = try #require(Self.reason("{\"cameras\":[{\"kvfv_id\":\"A\"},{\"kvfv_id\":\"B\",\"lanes\":99}]}", .json))
        #expect(error.reason == "invalid_lanes" && error.message.hasPrefix("camera 2 (B)"))
        #expect(Self.reason("{\"cameras\":[{\"kvfv_id\":\"A\"},{\"kvfv_id\":\"A\"}]}", .json)?.reason == "duplicate_kvfv_id")
        #expect(Self.reason("{\"cameras\":[],\"extra\":1}", .json)?.reason == "invalid_field")
    }
}
