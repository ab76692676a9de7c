/// What makes two events "the same": a stable 64-bit hash of `event_id`, scoped by camera.
///
/// Identity is `(kvfv_id, event_id)`; dedup state is already kept per camera (and per bucket), so only the
/// `event_id` is hashed. Without an `event_id`, the content `(timestamp, lane, plate, speed)` is hashed:
/// two genuinely distinct passes with identical content would then count once (documented caveat).
///
/// The hash must be stable across processes and versions (it is persisted), so Swift's seeded `Hasher`
/// is out; this is FNV-1a 64 followed by the MurmurHash3 finaliser for avalanche. At ≤ 10⁴ events per
/// camera-bucket the chance of any collision is below 10⁻¹¹ per bucket.
public enum EventIdentity {
    public static func hash(of event: CameraEvent) -> UInt64 {
        var h = FNV1a()
        if let id = event.eventId {
            h.add(byte: 0x65)  // "e": keyed
            h.add(id)
        } else {
            addContent(of: event, to: &h)
        }
        return h.finalized
    }

    /// A hash of what the camera measured, `(timestamp, lane, plate, speed)`, whatever its keys: two copies of one
    /// sequence number with different content are a camera bug (`conflicting_duplicates`).
    public static func contentHash(of event: CameraEvent) -> UInt64 {
        var h = FNV1a()
        addContent(of: event, to: &h)
        return h.finalized
    }

    private static func addContent(of event: CameraEvent, to h: inout FNV1a) {
        h.add(byte: 0x63)  // "c": content
        h.add(UInt64(bitPattern: event.timestampMs))
        h.add(UInt64(bitPattern: Int64(event.lane ?? Int(Int32.min))))
        h.add(event.plate ?? "")
        h.add(byte: 0)
        h.add(event.speed.bitPattern)
    }
}

struct FNV1a {
    private var state: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(byte: UInt8) {
        state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    mutating func add(_ string: String) {
        var s = string
        s.withUTF8 { for b in $0 { add(byte: b) } }
    }

    mutating func add(_ value: UInt64) {
        var v = value
        for _ in 0..<8 {
            add(byte: UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }

    var finalized: UInt64 {
        var k = state
        k ^= k >> 33
        k &*= 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k &*= 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }
}
