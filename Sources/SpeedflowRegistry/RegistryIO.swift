import Foundation
import SpeedflowModel

/// Bulk import and export of the registry: JSON (as `GET /registry`), CSV (one row per limit period) and
/// GeoJSON (a FeatureCollection of points). Exporting and importing again gives the same registry. An import
/// is all or nothing: the first problem is an error naming its line (CSV) or feature (GeoJSON).
public enum RegistryIO {
    public enum Format: String, Sendable, CaseIterable {
        case json, csv, geojson

        /// `cameras.csv` → csv, `.geojson` → geojson, else json.
        public static func guess(path: String) -> Format {
            switch (path as NSString).pathExtension.lowercased() {
            case "csv": .csv
            case "geojson": .geojson
            default: .json
            }
        }

        public var contentType: String {
            switch self {
            case .json: "application/json"
            case .csv: "text/csv; charset=utf-8"
            case .geojson: "application/geo+json"
            }
        }
    }

    /// `cameras` in `format`; `nowMs` (JSON, GeoJSON) adds each camera's `speed_limit` in force then.
    public static func export(_ cameras: [CameraInfo], format: Format, nowMs: Int64?) -> String {
        switch format {
        case .json: RegistryJSON.list(cameras, nowMs: nowMs)
        case .csv: csv(cameras)
        case .geojson: geoJSON(cameras, nowMs: nowMs)
        }
    }

    /// The cameras in `data`, each validated, no id twice.
    public static func `import`(_ data: Data, format: Format) throws(RegistryError) -> [CameraInfo] {
        let cameras: [CameraInfo]
        switch format {
        case .json: cameras = try RegistryJSON.cameras(data)
        case .csv: cameras = try csv(data)
        case .geojson: cameras = try geoJSON(data)
        }
        if format == .json { try RegistryFile.checkUnique(cameras) }
        return cameras
    }

    // MARK: CSV

    public static let csvColumns = [
        "kvfv_id", "name", "road", "direction", "km", "latitude", "longitude", "speed_limit", "limit_from", "lanes", "time_zone",
        "expected_daily_volume",
    ]

    /// One row per limit period (a camera without limits: one row with `speed_limit` empty).
    static func csv(_ cameras: [CameraInfo]) -> String {
        var out = CSV.record(csvColumns)
        for c in cameras {
            func number(_ v: Double?) -> String {
                var s = ""
                RegistryJSON.number(v, into: &s)
                return v == nil ? "" : s
            }
            let rest = [
                c.lanes.map(String.init) ?? "", c.timeZone ?? "", c.expectedDailyVolume.map(String.init) ?? "",
            ]
            let head = [c.kvfvId, c.name ?? "", c.road ?? "", c.direction ?? "", number(c.kilometre), number(c.latitude), number(c.longitude)]
            let periods: [SpeedLimit?] = c.limits.isEmpty ? [nil] : c.limits.map { $0 }
            for limit in periods {
                out += CSV.record(head + [limit.map { String($0.kmh) } ?? "", limit?.fromMs.map(Timestamp.format) ?? ""] + rest)
            }
        }
        return out
    }

    static func csv(_ data: Data) throws(RegistryError) -> [CameraInfo] {
        guard let text = String(data: data, encoding: .utf8) else { throw RegistryError("invalid_csv", "the file is not UTF-8 text") }
        let records = try CSV.parse(text)
        guard let header = records.first else { throw RegistryError("invalid_csv", "the file is empty; the first line names the columns: \(csvColumns.joined(separator: ","))") }
        let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for name in names where !csvColumns.contains(name) {
            throw RegistryError("invalid_csv", "line \(header.line): unknown column '\(name.prefix(64))'; the columns are \(csvColumns.joined(separator: ","))")
        }
        guard names.contains("kvfv_id") else { throw RegistryError("invalid_csv", "line \(header.line): no kvfv_id column") }
        if let twice = names.first(where: { n in names.count(where: { $0 == n }) > 1 }) {
            throw RegistryError("invalid_csv", "line \(header.line): column \(twice) appears twice")
        }
        /// Each camera with the line of its first row and whether a row had no limit.
        var cameras: [String: (info: CameraInfo, line: Int, limitless: Bool)] = [:]
        var order: [String] = []
        for record in records.dropFirst() {
            do throws(RegistryError) {
                guard record.fields.count == names.count else {
                    throw RegistryError("invalid_csv", "\(record.fields.count) fields where the header has \(names.count)")
                }
                let row = Dictionary(uniqueKeysWithValues: zip(names, record.fields))
                let (info, limit) = try csvRow(row)
                if var seen = cameras[info.kvfvId] {
                    var other = seen.info
                    other.limits = []
                    if let field = differing(info, other) {
                        throw RegistryError(
                            "invalid_csv", "camera \(info.kvfvId): \(field) differs from line \(seen.line); rows of one camera may differ only in speed_limit and limit_from")
                    }
                    guard let limit, !seen.limitless else {
                        throw RegistryError("invalid_csv", "camera \(info.kvfvId) is on several rows (its limit history), so each of them needs a speed_limit")
                    }
                    seen.info.limits.append(limit)
                    cameras[info.kvfvId] = seen
                } else {
                    var first = info
                    first.limits = limit.map { [$0] } ?? []
                    cameras[info.kvfvId] = (first, record.line, limit == nil)
                    order.append(info.kvfvId)
                }
            } catch {
                throw error.at("line \(record.line)")
            }
        }
        var result: [CameraInfo] = []
        for id in order {
            var info = cameras[id]!.info
            let line = cameras[id]!.line
            // Rows of a camera's history may come in any order.
            info.limits.sort { ($0.fromMs ?? .min) < ($1.fromMs ?? .min) }
            do throws(RegistryError) {
                result.append(try info.validated())
            } catch {
                throw error.at("line \(line) (camera \(id))")
            }
        }
        return result
    }

    /// One CSV row: the camera's fields (limits empty) and the row's limit period, if any.
    static func csvRow(_ row: [String: String]) throws(RegistryError) -> (CameraInfo, SpeedLimit?) {
        func text(_ key: String) -> String? {
            guard let v = row[key], !v.isEmpty else { return nil }
            return v
        }
        func double(_ key: String) throws(RegistryError) -> Double? {
            guard let v = text(key) else { return nil }
            guard let d = Double(v.trimmingCharacters(in: .whitespaces)) else { throw RegistryError("invalid_field", "\(key) '\(v.prefix(64))' is not a number") }
            return d
        }
        func whole(_ key: String, _ reason: String) throws(RegistryError) -> Int? {
            guard let v = text(key) else { return nil }
            guard let i = Int(v.trimmingCharacters(in: .whitespaces)) else {
                throw RegistryError(Double(v) == nil ? "invalid_field" : reason, "\(key) must be a whole number, not '\(v.prefix(64))'")
            }
            return i
        }
        let info = CameraInfo(
            kvfvId: row["kvfv_id"] ?? "", name: text("name"), road: text("road"), direction: text("direction"), kilometre: try double("km"),
            latitude: try double("latitude"), longitude: try double("longitude"), lanes: try whole("lanes", "invalid_lanes"),
            timeZone: text("time_zone"), expectedDailyVolume: try whole("expected_daily_volume", "invalid_expected_volume"))
        let kmh = try whole("speed_limit", "invalid_speed_limit")
        var from: Int64?
        if let v = text("limit_from") {
            guard let ms = Timestamp.parse(v) else {
                throw RegistryError("invalid_limit_period", "limit_from must be an RFC 3339 time such as 2025-06-01T00:00:00Z, not '\(v.prefix(64))'")
            }
            from = ms
        }
        if kmh == nil, from != nil { throw RegistryError("invalid_speed_limit", "limit_from without a speed_limit") }
        return (info, kmh.map { SpeedLimit(kmh: $0, fromMs: from) })
    }

    /// The first field other than the limits in which `a` and `b` differ.
    static func differing(_ a: CameraInfo, _ b: CameraInfo) -> String? {
        if a.name != b.name { return "name" }
        if a.road != b.road { return "road" }
        if a.direction != b.direction { return "direction" }
        if a.kilometre != b.kilometre { return "km" }
        if a.latitude != b.latitude { return "latitude" }
        if a.longitude != b.longitude { return "longitude" }
        if a.lanes != b.lanes { return "lanes" }
        if a.timeZone != b.timeZone { return "time_zone" }
        if a.expectedDailyVolume != b.expectedDailyVolume { return "expected_daily_volume" }
        return nil
    }

    // MARK: GeoJSON

    /// A FeatureCollection: a camera with a position is a Point (`[longitude, latitude]`), one without has a
    /// `null` geometry; the other fields, `kvfv_id` first, are the feature's `properties`.
    static func geoJSON(_ cameras: [CameraInfo], nowMs: Int64?) -> String {
        var out = "{\"type\":\"FeatureCollection\",\"features\":["
        for (i, c) in cameras.enumerated() {
            out += i == 0 ? "\n" : ",\n"
            out += "{\"type\":\"Feature\",\"geometry\":"
            if let lat = c.latitude, let lon = c.longitude {
                out += "{\"type\":\"Point\",\"coordinates\":["
                RegistryJSON.number(lon, into: &out)
                out += ","
                RegistryJSON.number(lat, into: &out)
                out += "]}"
            } else {
                out += "null"
            }
            out += ",\"properties\":{\"kvfv_id\":"
            RegistryJSON.string(c.kvfvId, into: &out)
            out += ","
            RegistryJSON.properties(c, nowMs: nowMs, position: false, into: &out)
            out += "}}"
        }
        out += cameras.isEmpty ? "]}\n" : "\n]}\n"
        return out
    }

    static func geoJSON(_ data: Data) throws(RegistryError) -> [CameraInfo] {
        guard case .object(let top) = try RegistryJSON.parse(data), top["type"]?.string == "FeatureCollection",
            case .array(let features)? = top["features"]
        else {
            throw RegistryError("invalid_geojson", "expected a GeoJSON FeatureCollection: {\"type\":\"FeatureCollection\",\"features\":[…]}")
        }
        var result: [CameraInfo] = []
        var seen: [String: Int] = [:]
        for (i, feature) in features.enumerated() {
            do throws(RegistryError) {
                let info = try geoJSONFeature(feature)
                if let first = seen[info.kvfvId] {
                    throw RegistryError("duplicate_kvfv_id", "camera \(info.kvfvId) is also feature \(first)")
                }
                seen[info.kvfvId] = i + 1
                result.append(info)
            } catch {
                let name = (feature.object?["properties"]?.object?["kvfv_id"]?.string).map { " (\($0.prefix(64)))" } ?? ""
                throw error.at("feature \(i + 1)\(name)")
            }
        }
        return result
    }

    static func geoJSONFeature(_ feature: JSONValue) throws(RegistryError) -> CameraInfo {
        guard case .object(let f) = feature, f["type"]?.string == "Feature" else {
            throw RegistryError("invalid_geojson", "not a GeoJSON Feature ({\"type\":\"Feature\",\"geometry\":…,\"properties\":{…}})")
        }
        for key in f.keys.sorted() where !["type", "geometry", "properties", "id", "bbox"].contains(key) {
            throw RegistryError("invalid_geojson", "unknown member '\(key.prefix(64))' of a Feature")
        }
        guard case .object(var properties)? = f["properties"] else {
            throw RegistryError("invalid_geojson", "a feature needs properties with at least kvfv_id")
        }
        for key in ["latitude", "longitude"] where properties[key] != nil {
            throw RegistryError("invalid_field", "\(key) is not a property: the position is the geometry, a Point [longitude, latitude]")
        }
        switch f["geometry"] {
        case nil, .null?: break
        case .object(let g)?:
            guard g["type"]?.string == "Point", case .array(let coordinates)? = g["coordinates"] else {
                throw RegistryError("invalid_geojson", "a camera's geometry is a Point (or null): {\"type\":\"Point\",\"coordinates\":[longitude, latitude]}")
            }
            let numbers = coordinates.compactMap(\.number)
            guard numbers.count == coordinates.count, (2...3).contains(numbers.count) else {
                throw RegistryError("invalid_geojson", "a Point's coordinates are [longitude, latitude] (an altitude may follow)")
            }
            properties["longitude"] = .double(numbers[0])
            properties["latitude"] = .double(numbers[1])
        default:
            throw RegistryError("invalid_geojson", "geometry must be a Point or null")
        }
        return try RegistryJSON.camera(properties, id: nil, allowDerived: true).validated()
    }
}
