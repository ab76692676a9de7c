import Foundation
import SpeedflowAggregation
import SpeedflowModel

/// Request bodies with a known mix of accepted and rejected elements, and the naive tally of the rejections
/// they must produce, per camera, 5-minute bucket of arrival time and reason.
public struct RejectionOracle: Sendable {
    public var counts: [String: [Int64: [RejectionReason: Int64]]] = [:]

    public init() {}

    /// One NDJSON body of `elements` elements from `cameras`, at arrival time `arrivalMs`: valid events, events
    /// in the future, too late, with impossible speeds, and some naming no valid camera (counted by reason only);
    /// `allRejected` makes every element a rejection. Returns the body and the tallies it must produce.
    public static func body(
        seed: UInt64, arrivalMs: Int64, cameras: [String], elements: Int, allRejected: Bool = false
    ) -> (body: String, tallies: [String: [RejectionReason: Int64]]) {
        var rng = SeededRandom(seed: seed)
        var lines: [String] = []
        var tallies: [String: [RejectionReason: Int64]] = [:]
        for i in 0..<elements {
            let camera = cameras[Int(rng.next() % UInt64(cameras.count))]
            let kind = allRejected ? 1 + Int(rng.next() % 4) : Int(rng.next() % 6)
            var ts = arrivalMs - Int64(rng.next() % 600_000)
            var speed = "\(40 + Int(rng.next() % 100)).5"
            var id = camera
            switch kind {
            case 1:
                ts = arrivalMs + 3_600_000
                tallies[camera, default: [:]][.inFuture, default: 0] += 1
            case 2:
                ts = arrivalMs - 8 * 86_400_000
                tallies[camera, default: [:]][.tooLate, default: 0] += 1
            case 3:
                speed = rng.next() % 2 == 0 ? "-5" : "900"
                tallies[camera, default: [:]][.speedOutOfRange, default: 0] += 1
            case 4:
                id = "not a camera!"  // invalid_kvfv_id: names no camera, so no tally
            default:
                break
            }
            lines.append(
                #"{"kvfv_id":"\#(id)","timestamp":"\#(Timestamp.format(ts))","vehicle_speed":\#(speed),"event_id":"s\#(seed)-\#(i)"}"#)
        }
        return (lines.joined(separator: "\n"), tallies)
    }

    /// Adds what one request's tallies must add, in the bucket of its arrival time.
    public mutating func add(_ tallies: [String: [RejectionReason: Int64]], arrivalMs: Int64) {
        let bucket = Bucket.index(ofTimestamp: arrivalMs)
        for (camera, reasons) in tallies {
            counts[camera, default: [:]][bucket, default: [:]].merge(reasons, uniquingKeysWith: +)
        }
    }

    /// Summed over the buckets in `range`, per camera.
    public func byCamera(_ range: Range<Int64>) -> [String: [RejectionReason: Int64]] {
        var result: [String: [RejectionReason: Int64]] = [:]
        for (camera, buckets) in counts {
            for (bucket, reasons) in buckets where range.contains(bucket) {
                result[camera, default: [:]].merge(reasons, uniquingKeysWith: +)
            }
        }
        return result
    }
}
