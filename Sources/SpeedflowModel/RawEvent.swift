import Foundation

/// One batch element as it arrived, decoded leniently so that each problem becomes a reason code
/// instead of failing the whole batch.
public struct RawEvent: Decodable, Sendable {
    /// A field as found in the JSON: absent, `null`, of the wrong type, or a value.
    public enum Field<Value: Sendable>: Sendable {
        case absent, null, wrongType
        case value(Value)
    }

    public var isObject = true
    public var kvfvId: Field<String> = .absent
    public var timestamp: Field<String> = .absent
    public var speed: Field<Double> = .absent
    public var eventId: Field<String> = .absent
    public var lane: Field<Int> = .absent
    public var plate: Field<String> = .absent
    public var seq: Field<Int> = .absent
    public var seqEpoch: Field<Int> = .absent
    /// Unknown fields re-encoded as a JSON object, kept for the raw archive.
    public var extra: String?

    public init() {}

    public init(from decoder: any Decoder) throws {
        guard let c = try? decoder.container(keyedBy: Key.self) else {
            isObject = false
            return
        }
        var extras: [String: JSONValue] = [:]
        for key in c.allKeys {
            switch key.stringValue {
            case "kvfv_id": kvfvId = Self.field(c, key)
            case "timestamp": timestamp = Self.field(c, key)
            case "vehicle_speed": speed = Self.field(c, key)
            case "event_id": eventId = Self.field(c, key)
            case "lane": lane = Self.field(c, key)
            case "plate_number": plate = Self.field(c, key)
            case "seq": seq = Self.field(c, key)
            case "seq_epoch": seqEpoch = Self.field(c, key)
            default: extras[key.stringValue] = (try? c.decode(JSONValue.self, forKey: key)) ?? .null
            }
        }
        if !extras.isEmpty {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            extra = (try? encoder.encode(extras)).map { String(decoding: $0, as: UTF8.self) }
        }
    }

    private static func field<T: Decodable & Sendable>(_ c: KeyedDecodingContainer<Key>, _ key: Key) -> Field<T> {
        if (try? c.decodeNil(forKey: key)) == true { return .null }
        if let v = try? c.decode(T.self, forKey: key) { return .value(v) }
        return .wrongType
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// Any JSON value; used to carry unknown fields through to the archive unchanged.
public indirect enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    /// Integers stay exact (a Double would round past 2^53).
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}
