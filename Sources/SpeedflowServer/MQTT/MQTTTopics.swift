import SpeedflowMQTT
import SpeedflowModel

/// Speedflow's MQTT topics.
///
/// - `speedflow/v1/events/{kvfv_id}`: a camera publishes its events, the payload exactly as `POST /events` takes
///   it (a JSON object, an array, or NDJSON); `speedflow/v1/events/{kvfv_id}/gzip` (or MQTT 5 content type
///   `application/gzip`) for a gzip payload.
/// - `speedflow/v1/rejections/{kvfv_id}`: what became of a PUBLISH that had rejections, sent back (QoS 0) to the
///   connection that published it, if it subscribed.
public enum MQTTTopics {
    public static let eventsPrefix = "speedflow/v1/events/"
    public static let rejectionsPrefix = "speedflow/v1/rejections/"

    /// Where a PUBLISH goes: its camera and whether the topic says gzip; `nil` for any other topic.
    public static func events(_ topic: String) -> (kvfvId: String, gzip: Bool)? {
        guard topic.hasPrefix(eventsPrefix) else { return nil }
        var rest = topic.dropFirst(eventsPrefix.count)
        var gzip = false
        if rest.hasSuffix("/gzip") {
            gzip = true
            rest = rest.dropLast(5)
        }
        let id = String(rest)
        guard ValidationPolicy.isValidKvfvId(id) else { return nil }
        return (id, gzip)
    }

    public static func rejections(_ kvfvId: String) -> String { rejectionsPrefix + kvfvId }

    /// Whether a subscription with `filter` can receive rejections (of any camera): the only messages Speedflow
    /// sends. Other filters are refused in SUBACK.
    public static func grants(_ filter: String) -> Bool {
        guard MQTTTopic.isValidFilter(filter) else { return false }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        // A camera id where the filter names one; otherwise any id stands for what a wildcard matches.
        let probe = levels.count >= 4 && ValidationPolicy.isValidKvfvId(String(levels[3])) ? String(levels[3]) : "KV"
        return MQTTTopic.matches(filter: filter, name: rejections(probe))
    }
}
