/// One camera of the fleet with its link state: owned by exactly one worker, so it needs no locking,
/// and sends in order like a real camera with one uplink.
struct SimulatedCamera: Sendable {
    enum LinkState: Sendable {
        case online
        /// Cut off since this wall-clock instant; live events pile up in the camera.
        case offline(sinceMillis: Int64)
    }

    let index: Int32
    /// Free-flow speed of the road section, km/h.
    let baseSpeed: Double
    let lanes: UInt8
    /// How far the camera clock is off from true time.
    let skewMillis: Int64
    var nextSequence: Int64 = 1
    /// Planned outage, as offsets from the start of the run.
    var outage: (start: Duration, end: Duration)?
    var link: LinkState = .online
    /// Events waiting to be flushed after an outage, in flush order.
    var backlog: [SimulatedEvent] = []
    var backlogCursor = 0
    /// The last acknowledged valid events, the pool that "resent single events" come from. Bounded.
    var recentAcked: [SimulatedEvent] = []
    var recentNext = 0
    var oracle = WindowOracle()

    static let recentCapacity = 32

    var hasBacklog: Bool { backlogCursor < backlog.count }

    mutating func rememberAcked(_ event: SimulatedEvent) {
        if recentAcked.count < Self.recentCapacity {
            recentAcked.append(event)
        } else {
            recentAcked[recentNext] = event
            recentNext = (recentNext + 1) % Self.recentCapacity
        }
    }
}

/// Makes the traffic of cameras: speeds by daily profile and lane, timestamps, flaws, backlogs.
struct TrafficGenerator: Sendable {
    var rng: FastRandom
    let configuration: LoadgenConfiguration
    /// Cycles through every rejection reason so each one is exercised, not only the likely ones.
    private var flawCursor: Int
    /// Moscow time drives the daily profile of every camera (roads in the seeds are Russian).
    private let profileOffsetMillis: Int64 = 3 * 3_600_000

    init(seed: UInt64, configuration: LoadgenConfiguration) {
        self.rng = FastRandom(seed: seed)
        self.configuration = configuration
        // Workers start at different reasons, so short runs still cover all of them evenly.
        self.flawCursor = rng.below(EventFlaw.allCases.count)
    }

    /// A camera with its road, lanes, clock skew and (maybe) an outage planned within the run.
    static func makeCamera(index: Int, configuration: LoadgenConfiguration, rng: inout FastRandom) -> SimulatedCamera {
        let roadLimits: [Double] = [60, 70, 90, 90, 110, 110, 130]
        let base = roadLimits[rng.below(roadLimits.count)] * (0.95 + 0.15 * rng.unit())
        let skewRange = Double(configuration.maxClockSkew.milliseconds)
        var camera = SimulatedCamera(
            index: Int32(index), baseSpeed: base, lanes: UInt8(1 + rng.below(4)),
            skewMillis: Int64((rng.unit() * 2 - 1) * skewRange))
        if rng.chance(configuration.outageShare) {
            // Start within the first half of the run (or the first 5 s of a count-limited run).
            let window = configuration.duration.map { $0 / 2 } ?? .seconds(5)
            let start = Duration.milliseconds(Int64(rng.unit() * Double(window.milliseconds)))
            camera.outage = (start, start + configuration.outageDuration)
        }
        return camera
    }

    /// Speed in tenths of km/h for a pass at this instant and lane: profile × lane × noise, rare speeders.
    mutating func speedTenths(camera: SimulatedCamera, millis: Int64, lane: UInt8) -> Int32 {
        let profile = TrafficProfile.interpolate(TrafficProfile.speedFactor, localMillis: millis + profileOffsetMillis)
        // Lane 1 is the rightmost (trucks); each lane to the left is faster.
        let laneFactor = 0.9 + 0.06 * Double(lane - 1)
        var v = camera.baseSpeed * profile * laneFactor * (1 + 0.12 * rng.normal())
        if rng.chance(0.002) { v *= 1.5 }
        let tenths = (v * 10).rounded()
        return Int32(Swift.min(Swift.max(tenths, 30), 2500))
    }

    /// A new event with the next sequence number of the camera; maybe deliberately invalid.
    mutating func makeEvent(camera: inout SimulatedCamera, millis: Int64, nowMillis: Int64) -> SimulatedEvent {
        let lane = UInt8(1 + rng.below(Int(camera.lanes)))
        var event = SimulatedEvent(
            camera: camera.index, sequence: camera.nextSequence, millis: millis,
            speedTenths: speedTenths(camera: camera, millis: millis, lane: lane), lane: lane, flaw: nil)
        camera.nextSequence += 1
        if rng.chance(configuration.invalidShare) {
            let flaw = EventFlaw.allCases[flawCursor % EventFlaw.allCases.count]
            flawCursor += 1
            event.flaw = flaw
            switch flaw {
            case .speedOutOfRange:
                event.speedTenths = [0, -125, 3500][Int(event.sequence % 3)]
            case .inFuture:
                // True time, not the camera clock: an hour ahead is far beyond any allowed skew.
                event.millis = nowMillis + 3_600_000
            case .tooLate:
                event.millis = nowMillis - 8 * 86_400_000
            default:
                break
            }
        }
        return event
    }

    /// A live pass stamped by the camera's (skewed) clock, a little before it is sent.
    mutating func makeLiveEvent(camera: inout SimulatedCamera, nowMillis: Int64, spreadMillis: Int64) -> SimulatedEvent {
        let lag = Int64(rng.unit() * Double(spreadMillis))
        return makeEvent(camera: &camera, millis: nowMillis + camera.skewMillis - lag, nowMillis: nowMillis)
    }

    /// The backlog flushed when a camera comes back: hours of history before the cut (sparse at night,
    /// dense at rush hour) plus what it recorded while offline. Time-ordered, as a camera flushes.
    mutating func makeBacklog(camera: inout SimulatedCamera, offlineSince: Int64, nowMillis: Int64, liveRatePerCamera: Double) -> [SimulatedEvent] {
        let historyStart = offlineSince - configuration.backlogAge.milliseconds
        var times: [Int64] = []
        times.reserveCapacity(configuration.backlogEvents)
        let historySpan = Double(configuration.backlogAge.milliseconds)
        while times.count < configuration.backlogEvents, historySpan > 0 {
            let t = historyStart + Int64(rng.unit() * historySpan)
            if rng.unit() < TrafficProfile.interpolate(TrafficProfile.intensity, localMillis: t + profileOffsetMillis) {
                times.append(t)
            }
        }
        let offlineSpan = Double(Swift.max(0, nowMillis - offlineSince))
        let offlineCount = Swift.min(20_000, Int(offlineSpan / 1000 * liveRatePerCamera))
        for _ in 0..<offlineCount {
            times.append(offlineSince + Int64(rng.unit() * offlineSpan))
        }
        times.sort()
        return times.map { makeEvent(camera: &camera, millis: $0 + camera.skewMillis, nowMillis: nowMillis) }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }

    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
