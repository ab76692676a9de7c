/// Why a registry entry, file or import was refused: a stable `reason` code (the HTTP answer's `reason`) and a
/// message for people.
///
/// Reasons of entries: `invalid_kvfv_id`, `invalid_latitude`, `invalid_longitude`, `invalid_position`,
/// `invalid_speed_limit`, `invalid_limit_period`, `invalid_lanes`, `unknown_time_zone`,
/// `invalid_expected_volume`, `invalid_field`, `duplicate_kvfv_id`. Of the file: `registry_unreadable`,
/// `registry_corrupt`, `unsupported_format`, `registry_unwritable`. Of imports: `invalid_csv`, `invalid_geojson`,
/// `malformed_json` (or an entry's reason, its message naming the line or feature).
public struct RegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var message: String

    public init(_ reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(message) (reason: \(reason))" }

    /// The same error, its message prefixed with where it was found (`line 4: …`, `feature 2: …`).
    func at(_ place: String) -> RegistryError { RegistryError(reason, "\(place): \(message)") }
}
