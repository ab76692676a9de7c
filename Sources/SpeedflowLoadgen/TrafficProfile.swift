/// The shape of a day on a highway: rush hours are dense and slow, nights sparse and fast.
enum TrafficProfile {
    /// Relative traffic intensity by local hour (max 1).
    static let intensity: [Double] = [
        0.12, 0.08, 0.06, 0.05, 0.07, 0.18, 0.45, 0.90, 1.00, 0.85, 0.65, 0.60,
        0.62, 0.62, 0.64, 0.70, 0.82, 0.98, 1.00, 0.85, 0.60, 0.42, 0.30, 0.20,
    ]
    /// Speed factor by local hour relative to the camera's free-flow base speed.
    static let speedFactor: [Double] = [
        1.10, 1.12, 1.12, 1.12, 1.10, 1.05, 0.95, 0.78, 0.72, 0.82, 0.95, 0.97,
        0.96, 0.96, 0.95, 0.92, 0.85, 0.74, 0.72, 0.84, 0.95, 1.00, 1.04, 1.08,
    ]

    /// Linear interpolation within the hour so speeds do not jump at hh:00.
    static func interpolate(_ table: [Double], localMillis: Int64) -> Double {
        let dayMillis: Int64 = 86_400_000
        let t = Double(((localMillis % dayMillis) + dayMillis) % dayMillis) / 3_600_000
        let h = Int(t)
        let frac = t - Double(h)
        return table[h] * (1 - frac) + table[(h + 1) % 24] * frac
    }
}
