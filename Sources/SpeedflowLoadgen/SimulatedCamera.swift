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

    // Numbering (`LoadgenConfiguration.sequenced`).
    /// The pass counter's epoch and next number.
    var epoch: UInt16 = 0
    var nextSeq: Int64 = 0
    /// Numbers reserved below the live ones for the history an outage flush carries (passes recorded before the
    /// run): next and end (exclusive).
    var historyNext: Int64 = 0
    var historyEnd: Int64 = 0
    /// When the counter restarts (an offset from the start of the run).
    var restartAt: Duration?
    /// The newest pass recorded in the current epoch, delivered or not: what a status report says.
    var newest: (epoch: UInt16, seq: Int64, millis: Int64)?
    /// The last report sent and acknowledged, as (epoch, seq).
    var reported: (epoch: UInt16, seq: Int64)?
    /// When the next periodic report is due (offset from the start of the run); nil: none planned.
    var nextStatusAt: Duration?
    /// A report is due before anything else (the camera just came back).
    var statusNow = false
    /// What the camera did with its numbers: the sequence oracle.
    var record = SequenceRecord()

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
        camera.oracle.graceMs = configuration.lateGrace.milliseconds
        camera.oracle.toleranceMs = configuration.clockTolerance.milliseconds
        if configuration.sequenced {
            // A random start below 2^40, different per run (the run tag), so reruns never collide on numbers.
            var h = rng.next() ^ Self.hash(configuration.runTag)
            h ^= h >> 31
            h &*= 0x94D0_49BB_1331_11EB
            h ^= h >> 29
            let start = Int64(h & ((1 << 40) - 1))
            // The history an outage flushes was recorded before the run: its numbers come before the live ones.
            camera.historyNext = start
            camera.historyEnd = camera.outage == nil ? start : start + Int64(configuration.backlogEvents)
            camera.nextSeq = camera.historyEnd
            if rng.chance(configuration.counterRestartShare) {
                let window = configuration.duration.map { $0 * 0.8 } ?? .seconds(5)
                camera.restartAt = .milliseconds(Int64(rng.unit() * Double(window.milliseconds)))
            }
            if configuration.statusInterval > .zero {
                camera.nextStatusAt = .milliseconds(Int64(rng.unit() * Double(configuration.statusInterval.milliseconds)))
            }
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

    /// FNV-1a of a string: mixes the run tag into the cameras' counter starts.
    static func hash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// Passes lost for good since the worker last collected them (for the report).
    var lostForGood = 0

    /// Numbers a valid pass (if the fleet numbers them) from the reserved history range or the live counter, and
    /// decides whether the link loses it for good.
    /// - Returns: false if the pass is lost: it must never be sent.
    mutating func number(_ event: inout SimulatedEvent, camera: inout SimulatedCamera, history: Bool = false) -> Bool {
        guard event.flaw == nil else { return true }
        let lost = rng.chance(configuration.lossShare)
        if lost { lostForGood += 1 }
        guard configuration.sequenced else { return !lost }
        if history && camera.historyNext < camera.historyEnd {
            event.seq = camera.historyNext
            event.epoch = 0
            camera.historyNext += 1
        } else {
            event.seq = camera.nextSeq
            event.epoch = camera.epoch
            camera.nextSeq += 1
            camera.newest = (camera.epoch, event.seq, event.millis)
        }
        camera.record.note(epoch: Int64(event.epoch), seq: event.seq, timeMs: event.millis, fate: lost ? .lost : .sent)
        return !lost
    }

    /// Passes the camera records at the end of the run and still holds (recorded, reported, never sent).
    mutating func recordPending(camera: inout SimulatedCamera, count: Int, nowMillis: Int64) {
        for _ in 0..<count {
            let lane = UInt8(1 + rng.below(Int(camera.lanes)))
            let millis = nowMillis + camera.skewMillis - Int64(rng.unit() * 300)
            var event = SimulatedEvent(
                camera: camera.index, sequence: camera.nextSequence, millis: millis,
                speedTenths: speedTenths(camera: camera, millis: millis, lane: lane), lane: lane, flaw: nil)
            camera.nextSequence += 1
            event.seq = camera.nextSeq
            event.epoch = camera.epoch
            camera.nextSeq += 1
            camera.newest = (camera.epoch, event.seq, event.millis)
            camera.record.note(epoch: Int64(event.epoch), seq: event.seq, timeMs: event.millis, fate: .pending)
        }
    }

    /// A new event with the next sequence number of the camera; maybe deliberately invalid.
    mutating func makeEvent(camera: inout SimulatedCamera, millis: Int64, nowMillis: Int64) -> SimulatedEvent {
        let lane = UInt8(1 + rng.below(Int(camera.lanes)))
        var event = SimulatedEvent(
            camera: camera.index, sequence: camera.nextSequence, millis: millis,
            speedTenths: speedTenths(camera: camera, millis: millis, lane: lane), lane: lane, flaw: nil)
        camera.nextSequence += 1
        if rng.chance(configuration.invalidShare) {
            let flaws = configuration.sequenced ? EventFlaw.allCases : EventFlaw.allCases.filter { $0 != .invalidSeq }
            let flaw = flaws[flawCursor % flaws.count]
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
    /// dense at rush hour) plus what it recorded while offline. Time-ordered, as a camera flushes; passes lost
    /// for good are left out. Numbered history takes the numbers reserved for it, offline passes the live counter.
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
        times.sort()
        let offlineSpan = Double(Swift.max(0, nowMillis - offlineSince))
        let offlineCount = Swift.min(20_000, Int(offlineSpan / 1000 * liveRatePerCamera))
        var offline: [Int64] = []
        offline.reserveCapacity(offlineCount)
        for _ in 0..<offlineCount {
            offline.append(offlineSince + Int64(rng.unit() * offlineSpan))
        }
        offline.sort()
        var out: [SimulatedEvent] = []
        out.reserveCapacity(times.count + offline.count)
        for (list, history) in [(times, true), (offline, false)] {
            for t in list {
                var event = makeEvent(camera: &camera, millis: t + camera.skewMillis, nowMillis: nowMillis)
                if number(&event, camera: &camera, history: history) { out.append(event) }
            }
        }
        return out
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
