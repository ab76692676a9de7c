import SpeedflowEngine
import SpeedflowModel
import SpeedflowRegistry

/// How one camera of `GET /kvfv` is written: the page and the fleet stream (`/kvfv/stream`) render rows with
/// this function, so both always carry the same fields.
enum CameraRendering {
    /// One camera row as a JSON object; `registry` (or `null`) is what the node's registry holds for it, with the
    /// `speed_limit` in force at `nowMs`.
    static func row(_ c: CameraStatus, registry: CameraRegistry?, nowMs: Int64, into json: inout JSONWriter) {
        json.raw("{\"kvfv_id\":")
        json.string(c.kvfvId)
        json.raw(",\"health\":")
        json.string(c.health.rawValue)
        json.raw(",\"last_event_time\":")
        json.string(c.lastEventMs.map(Timestamp.format))
        json.raw(",\"last_arrival_time\":")
        json.string(c.lastArrivalMs.map(Timestamp.format))
        json.raw(",\"lag_seconds\":")
        json.number(Double(c.lagMs) / 1000)
        json.raw(",\"events_last_hour\":")
        json.number(c.eventsLastHour)
        json.raw(",\"events_today\":")
        json.number(c.eventsToday)
        json.raw(",\"current_window_start\":")
        json.string(Timestamp.format(c.currentWindowStartMs))
        json.raw(",\"current_count\":")
        json.number(c.current.count)
        json.raw(",\"current_avg_speed\":")
        json.number(c.current.averageSpeed)
        json.raw(",\"accepted\":")
        json.number(c.accepted)
        json.raw(",\"duplicates\":")
        json.number(c.duplicates)
        json.raw(",\"rejected\":")
        json.number(c.rejected)
        json.raw(",\"conflicting_duplicates\":")
        json.number(c.conflictingDuplicates)
        if let sequence = c.sequence {
            let latest = sequence.ledger.latestEpoch
            json.raw(",\"last_seq\":")
            json.number(latest.flatMap { sequence.ledger.newest(epoch: $0)?.seq })
            json.raw(",\"seq_epoch\":")
            json.number(latest)
            json.raw(",\"missing\":")
            json.number(sequence.ledger.missingCount)
            json.raw(",\"backlog\":")
            SequenceController.backlog(sequence, into: &json)
        } else {
            json.raw(",\"last_seq\":null,\"seq_epoch\":null,\"missing\":null,\"backlog\":null")
        }
        let info = registry?.info(c.kvfvId)
        json.raw(",\"registry\":")
        json.raw(info.map { RegistryJSON.object($0, nowMs: nowMs) } ?? "null")
        json.raw(",\"today\":{\"status\":")
        let reasons = today(c, info: info, nowMs: nowMs)
        json.string(reasons.first?.rawValue ?? "ok")
        json.raw(",\"reasons\":")
        json.strings(reasons.map(\.rawValue))
        json.raw("}}")
    }

    /// Today's health so far (the UTC day), by the daily rules (`DayHealth.Rules`) over what the fleet list has at
    /// hand: today's count against the expected volume, the camera's known-missing passes, and the live checks for a
    /// stuck sensor and a skewed clock. `GET /kvfv/{id}/health` assesses every day in full, rejections included.
    static func today(_ c: CameraStatus, info: CameraInfo?, nowMs: Int64) -> [DayHealth.Reason] {
        let rules = DayHealth.Rules()
        let elapsed = Double(nowMs.floorDivMod(86_400_000).1) / 86_400_000
        var reasons: [DayHealth.Reason] = []
        if c.eventsToday == 0 && elapsed * 86_400_000 >= Double(rules.downAfterMs) { reasons.append(.down) }
        if c.health == .stuck { reasons.append(.stuck) }
        if c.health == .clockSkew { reasons.append(.clockSkew) }
        if let expected = info?.expectedDailyVolume, c.eventsToday > 0,
            Double(c.eventsToday) < rules.insufficientShare * Double(expected) * elapsed
        {
            reasons.append(.insufficient)
        }
        if let missing = c.sequence?.ledger.missingCount, missing > rules.backlogMinimum,
            Double(missing) > rules.backlogShare * Double(max(1, c.eventsToday))
        {
            reasons.append(.backlog)
        }
        return reasons.sorted()
    }
}
