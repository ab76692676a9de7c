import Foundation
import SpeedflowModel

/// A speed limit and the moment it took effect.
public struct SpeedLimit: Sendable, Hashable, Codable {
    /// Whole km/h, 5…300.
    public var kmh: Int
    /// When this limit took effect (ms since the epoch, on a 5-minute boundary); `nil`: since ever. Only the
    /// first limit of a camera may be `nil`.
    public var fromMs: Int64?

    public init(kmh: Int, fromMs: Int64? = nil) {
        self.kmh = kmh
        self.fromMs = fromMs
    }
}

/// What the registry knows of one camera. Every field but the id is optional: a camera may be registered with
/// only a name, or only a limit.
public struct CameraInfo: Sendable, Hashable {
    public var kvfvId: String
    public var name: String?
    public var road: String?
    public var direction: String?
    /// Kilometre marker along `road`.
    public var kilometre: Double?
    /// WGS 84 degrees; both or neither.
    public var latitude: Double?
    public var longitude: Double?
    /// The limit's history, sorted by `fromMs` ascending; may be empty.
    public var limits: [SpeedLimit]
    /// 1…16.
    public var lanes: Int?
    /// An IANA identifier (`Europe/Moscow`): the camera's local days.
    public var timeZone: String?
    /// Vehicles a healthy camera sees on an ordinary day, 1…100,000,000.
    public var expectedDailyVolume: Int?

    public init(
        kvfvId: String, name: String? = nil, road: String? = nil, direction: String? = nil, kilometre: Double? = nil,
        latitude: Double? = nil, longitude: Double? = nil, limits: [SpeedLimit] = [], lanes: Int? = nil, timeZone: String? = nil,
        expectedDailyVolume: Int? = nil
    ) {
        self.kvfvId = kvfvId
        self.name = name
        self.road = road
        self.direction = direction
        self.kilometre = kilometre
        self.latitude = latitude
        self.longitude = longitude
        self.limits = limits
        self.lanes = lanes
        self.timeZone = timeZone
        self.expectedDailyVolume = expectedDailyVolume
    }

    /// The limit in force at `atMs`: the last one that took effect at or before it (a limit without `fromMs`
    /// took effect at minus infinity); `nil` before the first, or without limits.
    public func limit(atMs: Int64) -> Int? {
        // Histories are a handful of entries: a backwards scan beats a binary search here.
        for limit in limits.reversed() where (limit.fromMs ?? .min) <= atMs { return limit.kmh }
        return nil
    }

    /// Limits take effect on bucket boundaries: aggregation keeps 5-minute buckets, and a limit changing inside one
    /// could not be applied exactly to its vehicles.
    public static let limitAlignmentMs: Int64 = 300_000
    public static let speedLimitRange = 5...300
    public static let lanesRange = 1...16
    public static let expectedVolumeRange = 1...100_000_000
    /// Longest name, road or direction, in Unicode scalars.
    public static let maxTextLength = 200

    /// This entry if every field is valid, with empty texts as absent (CSV cannot tell them apart); else the
    /// first problem found.
    public func validated() throws(RegistryError) -> CameraInfo {
        guard ValidationPolicy.isValidKvfvId(kvfvId) else {
            throw RegistryError("invalid_kvfv_id", "kvfv_id must be 1–64 characters of [A-Za-z0-9._-], not '\(kvfvId.prefix(80))'")
        }
        var info = self
        let texts: [(String, WritableKeyPath<CameraInfo, String?>)] = [("name", \.name), ("road", \.road), ("direction", \.direction)]
        for (field, path) in texts {
            guard let text = info[keyPath: path] else { continue }
            if text.isEmpty {
                info[keyPath: path] = nil
            } else if text.unicodeScalars.count > Self.maxTextLength {
                throw RegistryError("invalid_field", "\(field) is at most \(Self.maxTextLength) characters (Unicode scalars), not \(text.unicodeScalars.count)")
            }
        }
        if let timeZone = info.timeZone, timeZone.isEmpty { info.timeZone = nil }
        if let km = kilometre, !km.isFinite { throw RegistryError("invalid_field", "km must be a finite number") }
        if let latitude, !(latitude.isFinite && (-90...90).contains(latitude)) {
            throw RegistryError("invalid_latitude", "latitude must be between -90 and 90 degrees, not \(latitude)")
        }
        if let longitude, !(longitude.isFinite && (-180...180).contains(longitude)) {
            throw RegistryError("invalid_longitude", "longitude must be between -180 and 180 degrees, not \(longitude)")
        }
        if (latitude == nil) != (longitude == nil) {
            throw RegistryError("invalid_position", "a position needs both latitude and longitude, or neither")
        }
        for limit in limits where !Self.speedLimitRange.contains(limit.kmh) {
            throw RegistryError("invalid_speed_limit", "a speed limit is a whole number of km/h from 5 to 300, not \(limit.kmh)")
        }
        var previous: Int64?
        for (i, limit) in limits.enumerated() {
            guard let from = limit.fromMs else {
                if i == 0 { continue }
                throw RegistryError("invalid_limit_period", "only the first speed limit may have no start (from: null); limit \(i + 1) has none")
            }
            if from.floorDivMod(Self.limitAlignmentMs).1 != 0 {
                throw RegistryError(
                    "invalid_limit_period",
                    "a speed limit must take effect on a 5-minute boundary of UTC (e.g. 08:00:00Z, 08:05:00Z), not \(Timestamp.format(from)): statistics are kept per 5-minute bucket, so a limit changing inside a bucket could not be applied exactly"
                )
            }
            if let previous, from <= previous {
                throw RegistryError(
                    "invalid_limit_period",
                    "speed limits must be listed by start time, each starting after the one before; \(Timestamp.format(from)) does not follow \(Timestamp.format(previous))")
            }
            previous = from
        }
        if let lanes, !Self.lanesRange.contains(lanes) {
            throw RegistryError("invalid_lanes", "lanes must be from 1 to 16, not \(lanes)")
        }
        if let timeZone = info.timeZone, TimeZone(identifier: timeZone) == nil || timeZone.utf8.count > 64 {
            throw RegistryError("unknown_time_zone", "time_zone must be an IANA time zone such as Europe/Moscow, not '\(timeZone.prefix(80))'")
        }
        if let volume = expectedDailyVolume, !Self.expectedVolumeRange.contains(volume) {
            throw RegistryError("invalid_expected_volume", "expected_daily_volume must be from 1 to 100000000 vehicles a day, not \(volume)")
        }
        return info
    }
}
