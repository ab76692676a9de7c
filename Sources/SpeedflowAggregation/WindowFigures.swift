/// From a camera's 5-minute buckets to the figures of each window a query asks for: which lanes (`LaneGroup`)
/// and, with a speed-limit history, how many passes were over the limit in force (`Compliance`).
///
/// Everything here is computed from mergeable bucket state at query time: no limit and no registered lane count
/// is baked into what is stored, so editing a camera's limit history or lane count revises past windows exactly.

/// Which passes of a camera a window sums.
public enum LaneGroup: Sendable, Hashable {
    /// Every pass.
    case camera
    /// Lane 1…16.
    case lane(UInt8)
    /// The passes without a known lane: no lane, lane 0, above 16, or above the camera's registered lane count.
    case unknown(registeredLanes: Int?)

    /// The group's passes of one bucket.
    public func passes(of state: BucketState) -> BucketState {
        switch self {
        case .camera:
            return state
        case .lane(let key):
            return state.lane(key)
        case .unknown(let registered):
            let known = UInt8(clamping: registered ?? 0)
            var merged = BucketState()
            for key in state.laneKeys where key == 0 || key > known { merged.merge(state.lane(key)) }
            return merged
        }
    }
}

/// Passes over the speed limit in force at their time (`v > limit`), and by more than 10 and 20 km/h.
///
/// Limits are whole km/h and change only on bucket boundaries, so each bucket has one limit and its passes over
/// it are exact from the histogram and its whole counts (`SpeedHistogram.count(above:)`).
public struct Compliance: Sendable, Hashable {
    /// How far over the limit each of `over` counts: `v > limit + margin`.
    public static let margins = [0, 10, 20]

    /// The limit in force throughout the window; `nil` when it changed within the window.
    public private(set) var limit: Int?
    /// Whether the window saw more than one limit.
    public private(set) var limitChanged = false
    /// Passes in buckets with a limit in force: what the shares are of.
    public private(set) var checked: Int64 = 0
    /// Passes over the limit by more than each of `margins`; `nil` where a bucket written before whole speeds were
    /// kept leaves it undecidable (`speedflow rebuild` recounts such buckets from the log).
    public private(set) var over: [Int64?] = Compliance.margins.map { _ in 0 }

    public init() {}

    /// Takes in one bucket's passes under `limit` (`nil`: none in force then).
    public mutating func add(_ state: BucketState, limit bucketLimit: Int?) {
        guard let bucketLimit else { return }
        noteLimit(bucketLimit)
        guard state.count > 0 else { return }
        checked += state.count
        for (i, margin) in Self.margins.enumerated() {
            if let n = over[i], let m = state.histogram.count(above: bucketLimit + margin) {
                over[i] = n + m
            } else {
                over[i] = nil
            }
        }
    }

    mutating func noteLimit(_ bucketLimit: Int) {
        if checked == 0 && limit == nil && !limitChanged {
            limit = bucketLimit
        } else if limit != bucketLimit {
            limit = nil
            limitChanged = true
        }
    }

    /// `over[i] / checked`; `nil` without checked passes or when unknown.
    public func share(_ i: Int) -> Double? {
        guard checked > 0, let n = over[i] else { return nil }
        return Double(n) / Double(checked)
    }
}

/// One window's figures: the merged state, and its compliance when a limit was in force in it.
public struct WindowFigures: Sendable {
    public var state: BucketState
    public var compliance: Compliance?

    public init(state: BucketState = BucketState(), compliance: Compliance? = nil) {
        self.state = state
        self.compliance = compliance
    }

    /// Folds a camera's buckets, ascending by bucket number, into each window (ascending, non-overlapping) for
    /// `group`; with `limitAt` (the limit in force at a bucket's start, ms), compliance too.
    public static func fold(
        _ buckets: [(bucket: Int64, state: BucketState)], into windows: [Window], group: LaneGroup = .camera,
        limitAt: ((Int64) -> Int?)? = nil
    ) -> [WindowFigures] {
        var result = [WindowFigures](repeating: WindowFigures(), count: windows.count)
        if let limitAt {
            // The limit of every bucket of the window, occupied or not: a window says which limit it was under.
            for (w, window) in windows.enumerated() {
                var c = Compliance()
                var any = false
                for b in window.buckets {
                    if let l = limitAt(Bucket.start(ofIndex: b)) {
                        c.noteLimit(l)
                        any = true
                    }
                }
                if any { result[w].compliance = c }
            }
        }
        var w = 0
        for (bucket, stored) in buckets {
            while w < windows.count && bucket >= windows[w].buckets.upperBound { w += 1 }
            guard w < windows.count else { break }
            guard windows[w].buckets.contains(bucket) else { continue }
            let state = group == .camera ? stored : group.passes(of: stored)
            guard state.count > 0 else { continue }
            // A window's figures only: merging every lane of every bucket would be wasted work.
            result[w].state.mergeFigures(state)
            if let limitAt, result[w].compliance != nil {
                result[w].compliance!.add(state, limit: limitAt(Bucket.start(ofIndex: bucket)))
            }
        }
        return result
    }
}
