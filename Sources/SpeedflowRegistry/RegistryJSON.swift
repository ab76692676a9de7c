import Foundation
import SpeedflowModel

/// A camera as JSON, the one format of the API, the registry file and `--format json` imports:
///
///     {"kvfv_id":"KV00001","name":"A-107 km 42","road":"A-107","direction":"N","km":42.3,
///      "latitude":55.75,"longitude":37.62,"speed_limit":90,
///      "speed_limits":[{"kmh":90,"from":null},{"kmh":70,"from":"2025-06-01T00:00:00Z"}],
///      "lanes":3,"time_zone":"Europe/Moscow","expected_daily_volume":24000}
///
/// Every field is written (absent ones as `null`). `speed_limit`, the limit in force now, is derived: written
/// in answers, refused in a `PUT` body, ignored in an import (which reads what an export wrote). Reading is
/// strict: unknown fields and wrong types are `invalid_field`.
public enum RegistryJSON {
    /// The fields a camera object may have, in the order they are written.
    static let fields: Set<String> = [
        "kvfv_id", "name", "road", "direction", "km", "latitude", "longitude", "speed_limits", "lanes", "time_zone",
        "expected_daily_volume",
    ]

    // MARK: Writing

    /// One camera as a JSON object; with `nowMs`, also `speed_limit`, the limit in force then.
    public static func object(_ info: CameraInfo, nowMs: Int64?) -> String {
        var out = "{\"kvfv_id\":"
        string(info.kvfvId, into: &out)
        out += ","
        properties(info, nowMs: nowMs, into: &out)
        out += "}"
        return out
    }

    /// `{"cameras":[…]}`, one camera a line.
    public static func list(_ infos: [CameraInfo], nowMs: Int64?) -> String {
        "{\"cameras\":[" + (infos.isEmpty ? "" : "\n" + infos.map { object($0, nowMs: nowMs) }.joined(separator: ",\n") + "\n") + "]}\n"
    }

    /// Every field but `kvfv_id` (GeoJSON puts them in `properties`, with the position in `geometry` instead).
    static func properties(_ info: CameraInfo, nowMs: Int64?, position: Bool = true, into out: inout String) {
        out += "\"name\":"
        string(info.name, into: &out)
        out += ",\"road\":"
        string(info.road, into: &out)
        out += ",\"direction\":"
        string(info.direction, into: &out)
        out += ",\"km\":"
        number(info.kilometre, into: &out)
        if position {
            out += ",\"latitude\":"
            number(info.latitude, into: &out)
            out += ",\"longitude\":"
            number(info.longitude, into: &out)
        }
        if let nowMs {
            out += ",\"speed_limit\":"
            out += info.limit(atMs: nowMs).map(String.init) ?? "null"
        }
        out += ",\"speed_limits\":["
        for (i, limit) in info.limits.enumerated() {
            if i > 0 { out += "," }
            out += "{\"kmh\":\(limit.kmh),\"from\":"
            string(limit.fromMs.map(Timestamp.format), into: &out)
            out += "}"
        }
        out += "],\"lanes\":"
        out += info.lanes.map(String.init) ?? "null"
        out += ",\"time_zone\":"
        string(info.timeZone, into: &out)
        out += ",\"expected_daily_volume\":"
        out += info.expectedDailyVolume.map(String.init) ?? "null"
    }

    static func number(_ v: Double?, into out: inout String) {
        guard let v, v.isFinite else { return out += "null" }
        // Shortest representation that reads back as the same Double (`1e-05` and `1e+16` are valid JSON).
        out += v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : v.description
    }

    static func string(_ s: String?, into out: inout String) {
        guard let s else { return out += "null" }
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: Reading

    /// A camera from a JSON object (a `PUT` body): validated. With `id` (the path's camera) `kvfv_id` may be
    /// left out, and if present must be the same (`kvfv_id_mismatch`).
    public static func camera(_ data: Data, id: String? = nil) throws(RegistryError) -> CameraInfo {
        guard case .object(let object) = try parse(data) else {
            throw RegistryError("malformed_json", "send one JSON object: {\"name\":…,\"speed_limits\":[{\"kmh\":90,\"from\":null}],…}")
        }
        if let id, case .string(let given)? = object["kvfv_id"], given != id {
            throw RegistryError("kvfv_id_mismatch", "the body's kvfv_id '\(given.prefix(80))' is not the camera of the path, '\(id)'")
        }
        return try camera(object, id: id, allowDerived: false).validated()
    }

    /// Cameras of `{"cameras":[…]}` (what `GET /registry` and `cameras export --format json` write; `speed_limit`
    /// is ignored), each validated; an error names the camera (`camera 3: …`).
    public static func cameras(_ data: Data) throws(RegistryError) -> [CameraInfo] {
        let value = try parse(data)
        let list: [JSONValue]
        switch value {
        case .object(let o):
            for key in o.keys where key != "cameras" && key != "format" {
                throw RegistryError("invalid_field", "unknown field '\(key)' at the top; the file is {\"cameras\":[…]}")
            }
            guard case .array(let a)? = o["cameras"] else { throw RegistryError("malformed_json", "expected {\"cameras\":[…]}") }
            list = a
        case .array(let a): list = a
        default: throw RegistryError("malformed_json", "expected {\"cameras\":[…]}")
        }
        var result: [CameraInfo] = []
        for (i, item) in list.enumerated() {
            do throws(RegistryError) {
                guard case .object(let o) = item else { throw RegistryError("malformed_json", "a camera is a JSON object") }
                result.append(try camera(o, id: nil, allowDerived: true).validated())
            } catch {
                let name = (item.object?["kvfv_id"]?.string).map { " (\($0.prefix(64)))" } ?? ""
                throw error.at("camera \(i + 1)\(name)")
            }
        }
        return result
    }

    static func parse(_ data: Data) throws(RegistryError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw RegistryError("malformed_json", "the body is not valid JSON")
        }
    }

    /// The fields of a camera object, typed; not yet validated. `extra` are further fields a caller accepts
    /// (GeoJSON's position comes from the geometry).
    static func camera(_ o: [String: JSONValue], id: String?, allowDerived: Bool, extra: Set<String> = []) throws(RegistryError) -> CameraInfo {
        for key in o.keys.sorted() where !fields.contains(key) && !extra.contains(key) {
            if key == "speed_limit" {
                if allowDerived { continue }
                throw RegistryError("invalid_field", "speed_limit is read-only (the limit in force now); send the history as speed_limits")
            }
            throw RegistryError("invalid_field", "unknown field '\(key.prefix(64))'")
        }
        var info = CameraInfo(kvfvId: id ?? "")
        if id == nil {
            guard let v = o["kvfv_id"], v != .null else { throw RegistryError("invalid_kvfv_id", "kvfv_id is missing") }
            guard case .string(let s) = v else { throw RegistryError("invalid_kvfv_id", "kvfv_id must be a string") }
            info.kvfvId = s
        } else if let v = o["kvfv_id"], v != .null, v.string == nil {
            throw RegistryError("invalid_kvfv_id", "kvfv_id must be a string")
        }
        info.name = try text(o, "name")
        info.road = try text(o, "road")
        info.direction = try text(o, "direction")
        info.timeZone = try text(o, "time_zone")
        info.kilometre = try double(o, "km")
        info.latitude = try double(o, "latitude")
        info.longitude = try double(o, "longitude")
        info.lanes = try whole(o, "lanes", reason: "invalid_lanes")
        info.expectedDailyVolume = try whole(o, "expected_daily_volume", reason: "invalid_expected_volume")
        info.limits = try limits(o["speed_limits"])
        return info
    }

    static func limits(_ value: JSONValue?) throws(RegistryError) -> [SpeedLimit] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else {
            throw RegistryError("invalid_field", "speed_limits must be a list: [{\"kmh\":90,\"from\":null},{\"kmh\":70,\"from\":\"2025-06-01T00:00:00Z\"}]")
        }
        var limits: [SpeedLimit] = []
        for item in items {
            guard case .object(let o) = item else { throw RegistryError("invalid_field", "each speed limit is an object {\"kmh\":90,\"from\":…}") }
            for key in o.keys.sorted() where key != "kmh" && key != "from" {
                throw RegistryError("invalid_field", "unknown field '\(key.prefix(64))' in a speed limit (kmh, from)")
            }
            guard let kmh = try whole(o, "kmh", reason: "invalid_speed_limit") else {
                throw RegistryError("invalid_speed_limit", "each speed limit needs kmh (whole km/h, 5–300)")
            }
            limits.append(SpeedLimit(kmh: kmh, fromMs: try time(o["from"])))
        }
        return limits
    }

    /// `from`: an RFC 3339 time, or `null` (since ever).
    static func time(_ value: JSONValue?) throws(RegistryError) -> Int64? {
        guard let value, value != .null else { return nil }
        guard case .string(let s) = value else { throw RegistryError("invalid_field", "from must be an RFC 3339 time as a string, or null") }
        guard let ms = Timestamp.parse(s) else {
            throw RegistryError("invalid_limit_period", "from must be an RFC 3339 time such as 2025-06-01T00:00:00Z, not '\(s.prefix(64))'")
        }
        return ms
    }

    static func text(_ o: [String: JSONValue], _ key: String) throws(RegistryError) -> String? {
        switch o[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw RegistryError("invalid_field", "\(key) must be a string or null")
        }
    }

    static func double(_ o: [String: JSONValue], _ key: String) throws(RegistryError) -> Double? {
        switch o[key] {
        case nil, .null?: return nil
        case .int(let v)?: return Double(v)
        case .double(let v)?: return v
        default: throw RegistryError("invalid_field", "\(key) must be a number or null")
        }
    }

    /// A whole number; a fraction is the field's own `reason` (a limit of 60.5 km/h is not a type error).
    static func whole(_ o: [String: JSONValue], _ key: String, reason: String) throws(RegistryError) -> Int? {
        switch o[key] {
        case nil, .null?: return nil
        case .int(let v)?:
            guard let i = Int(exactly: v) else { throw RegistryError(reason, "\(key) is out of range: \(v)") }
            return i
        case .double(let v)?:
            guard v == v.rounded(), let i = Int(exactly: v) else { throw RegistryError(reason, "\(key) must be a whole number, not \(v)") }
            return i
        default: throw RegistryError("invalid_field", "\(key) must be a number or null")
        }
    }
}

/// Any JSON value, decoded strictly (a number is never a bool, a string never a number).
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let v = try? c.decode(Bool.self) {
            self = .bool(v)
        } else if let v = try? c.decode(Int64.self) {
            self = .int(v)
        } else if let v = try? c.decode(Double.self) {
            self = .double(v)
        } else if let v = try? c.decode(String.self) {
            self = .string(v)
        } else if let v = try? c.decode([JSONValue].self) {
            self = .array(v)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var object: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    var number: Double? {
        switch self {
        case .int(let v): Double(v)
        case .double(let v): v
        default: nil
        }
    }
}
