/// One vehicle pass as a camera recorded it. Small and trivially copyable: requests, backlogs and
/// the resend ring hold these, and the JSON is produced from them on demand, identically every time.
struct SimulatedEvent: Sendable {
    /// Index of the camera in the fleet (0-based).
    var camera: Int32
    /// Per-camera sequence number; the event id is derived from it.
    var sequence: Int64
    /// The instant the camera stamped (its own, possibly skewed, clock), in epoch milliseconds.
    var millis: Int64
    /// Speed in tenths of km/h, the instrument's resolution; keeps Σv exact in the oracle.
    var speedTenths: Int32
    var lane: UInt8
    /// Non-nil for a deliberately invalid event.
    var flaw: EventFlaw?
    /// The camera's pass counter (`seq`), or -1 for an unnumbered event (`--no-seq`, invalid events).
    var seq: Int64 = -1
    /// The counter's epoch (`seq_epoch`): raised when the camera's counter restarts; written only when above 0.
    var epoch: UInt16 = 0

    /// The speed exactly as the server parses it from the JSON text (`852` → `85.2`).
    var speed: Double { Double(speedTenths) / 10 }
}

/// Writes events as JSON, byte by byte: the generator must keep up with ~500k events/s on a shared core.
struct EventEncoder: Sendable {
    let cameraIds: [[UInt8]]
    let cameraOffsetMinutes: [Int16]
    let runTag: [UInt8]

    /// Cyrillic letters allowed on Russian plates, as UTF-8 (plates are the seed's `A123БВ68` style).
    private static let plateLetters: [[UInt8]] = "АВЕКМНОРСТУХ".map { Array(String($0).utf8) }

    func append(_ event: SimulatedEvent, to out: inout [UInt8]) {
        if event.flaw == .notAnObject {
            switch event.sequence % 3 {
            case 0: out.append(contentsOf: "42".utf8)
            case 1: out.append(contentsOf: "\"not an event\"".utf8)
            // Not an array: a single-event body `[…]` would be a batch of several elements.
            default: out.append(contentsOf: "true".utf8)
            }
            return
        }
        let camera = Int(event.camera)
        out.append(contentsOf: #"{"kvfv_id":""#.utf8)
        if event.flaw == .invalidKvfvId {
            out.append(contentsOf: "KV 0/../".utf8)
        }
        out.append(contentsOf: cameraIds[camera])
        out.append(contentsOf: #"","timestamp":""#.utf8)
        switch event.flaw {
        case .invalidTimestamp:
            out.append(contentsOf: "yesterday at noon".utf8)
        default:
            UTCTime.append(millis: event.millis, offsetMinutes: Int(cameraOffsetMinutes[camera]), to: &out)
        }
        out.append(UInt8(ascii: "\""))
        switch event.flaw {
        case .missingField:
            break
        case .invalidSpeed:
            out.append(contentsOf: #","vehicle_speed":"fast""#.utf8)
        default:
            out.append(contentsOf: #","vehicle_speed":"#.utf8)
            appendTenths(Int64(event.speedTenths), to: &out)
        }
        out.append(contentsOf: #","plate_number":""#.utf8)
        appendPlate(camera: camera, sequence: event.sequence, to: &out)
        out.append(contentsOf: #"","event_id":""#.utf8)
        if event.flaw == .invalidEventId {
            out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: 200))
        } else {
            appendEventId(camera: camera, sequence: event.sequence, to: &out)
        }
        out.append(contentsOf: #"","lane":"#.utf8)
        UTCTime.appendDigits(Int64(event.lane), 1, &out)
        if event.flaw == .invalidSeq {
            switch event.sequence % 3 {
            case 0: out.append(contentsOf: #","seq":-3"#.utf8)
            case 1: out.append(contentsOf: #","seq":"12""#.utf8)
            default: out.append(contentsOf: #","seq":1,"seq_epoch":40000"#.utf8)
            }
        } else if event.seq >= 0 {
            out.append(contentsOf: #","seq":"#.utf8)
            appendInteger(event.seq, to: &out)
            if event.epoch > 0 {
                out.append(contentsOf: #","seq_epoch":"#.utf8)
                appendInteger(Int64(event.epoch), to: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `KV00001-<run>-000000123`: unique per camera and run, and derived, so a resend needs no stored id.
    func appendEventId(camera: Int, sequence: Int64, to out: inout [UInt8]) {
        out.append(contentsOf: cameraIds[camera])
        out.append(UInt8(ascii: "-"))
        out.append(contentsOf: runTag)
        out.append(UInt8(ascii: "-"))
        UTCTime.appendDigits(sequence, 9, &out)
    }

    func eventId(camera: Int, sequence: Int64) -> String {
        var out: [UInt8] = []
        appendEventId(camera: camera, sequence: sequence, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func appendPlate(camera: Int, sequence: Int64, to out: inout [UInt8]) {
        var h = (UInt64(bitPattern: sequence) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(camera) &* 0xBF58_476D_1CE4_E5B9)
        h ^= h >> 29
        let letters = Self.plateLetters
        out.append(contentsOf: letters[Int(h % 12)]); h /= 12
        UTCTime.appendDigits(Int64(h % 1000), 3, &out); h /= 1000
        out.append(contentsOf: letters[Int(h % 12)]); h /= 12
        out.append(contentsOf: letters[Int(h % 12)]); h /= 12
        UTCTime.appendDigits(Int64(h % 99 + 1), 2, &out)
    }

    /// A non-negative integer in as many digits as it needs.
    private func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        var digits = 1
        var rest = value
        while rest >= 10 { rest /= 10; digits += 1 }
        UTCTime.appendDigits(value, digits, &out)
    }

    /// `852` → `85.2`, `-125` → `-12.5`, `0` → `0`.
    private func appendTenths(_ tenths: Int64, to out: inout [UInt8]) {
        var t = tenths
        if t < 0 { out.append(UInt8(ascii: "-")); t = -t }
        let whole = t / 10
        var digits = 1
        var p: Int64 = 10
        while whole >= p { digits += 1; p *= 10 }
        UTCTime.appendDigits(whole, digits, &out)
        if t % 10 != 0 {
            out.append(UInt8(ascii: "."))
            out.append(UInt8(ascii: "0") + UInt8(t % 10))
        }
    }
}
