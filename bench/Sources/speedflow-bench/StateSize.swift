import ArgumentParser
import Foundation
import SpeedflowAggregation


/// Issue #13's storage budget: what per-lane state and whole-speed counts cost per 5-minute bucket, on disk (the
/// encoded state, as SQLite and ClickHouse store it) and in memory (the struct and its arrays' heap buffers, from their
/// capacities), against the state as it was before (format 1/2: no whole counts, no lanes; its struct 47 bytes smaller).
struct StateSize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state-size",
        abstract: "Bytes per bucket state, on disk and in memory, with and without lanes and whole-speed counts (issue #13).")

    @Option(help: "States measured per case (their sizes averaged; memory measured over all of them).") var states = 2000

    func run() async throws {
        print("events/bucket  lanes  whole%  | before: disk B  | now: disk B  (×)  | heap B/state before → now (×)")
        for events in [100, 1000, 3472] {
            for lanes in [0, 1, 2, 3, 4] {
                for whole in [0.0, 0.1] {
                    var rng = SystemRandomNumberGenerator()
                    func build(_ withLanes: Bool) -> [BucketState] {
                        (0..<states).map { _ in
                            var s = BucketState()
                            let base = Double.random(in: 50...110, using: &rng)
                            for i in 0..<events {
                                let v = max(1, base + Double.random(in: -25...25, using: &rng))
                                let speed = Double.random(in: 0..<1, using: &rng) < whole ? v.rounded(.down) : (v * 10).rounded() / 10
                                s.add(speed, lane: withLanes && lanes > 0 ? 1 + i % lanes : nil)
                            }
                            return s
                        }
                    }
                    // "Before": the same passes without lanes, encoded as format 1 (no whole counts) — computed by hand,
                    // since this binary writes format 3.
                    var beforeDisk = 0, nowDisk = 0, beforeHeap = 0, nowHeap = 0
                    let plain = build(false)
                    let laned = build(true)
                    for s in plain {
                        beforeDisk += Self.legacySize(s)
                        beforeHeap += MemoryLayout<BucketState>.stride - MemoryLayout<LaneStates>.stride - 2 * 8 - 1
                            + Self.heap(s.histogram.bins) + Self.heap(s.histogram.counts)
                    }
                    for s in laned {
                        nowDisk += s.encoded().count
                        nowHeap += Self.heapBytes(s)
                    }
                    let b = Double(beforeDisk) / Double(states), n = Double(nowDisk) / Double(states)
                    let hb = Double(beforeHeap) / Double(states), hn = Double(nowHeap) / Double(states)
                    print(String(
                        format: "%13d  %5d  %5.0f%%  | %14.0f  | %11.0f (%.2f×) | %.0f → %.0f (%.2f×)",
                        events, lanes, whole * 100, b, n, n / b, hb, hn, hn / hb))
                }
            }
        }
    }

    /// Heap bytes of an array's buffer as glibc's malloc holds it: a 32-byte header and the capacity, in 16-byte
    /// granules with 8 bytes of malloc overhead (0 for an empty array, which shares one static buffer).
    static func heap<T>(_ a: [T]) -> Int {
        guard a.capacity > 0 else { return 0 }
        let bytes = 32 + a.capacity * MemoryLayout<T>.stride + 8
        return (bytes + 15) / 16 * 16
    }

    /// A state's bytes in the table: the struct inline, then its arrays' buffers (lanes: their states too).
    static func heapBytes(_ s: BucketState, inline: Bool = true) -> Int {
        var n = inline ? MemoryLayout<BucketState>.stride : 0
        n += heap(s.histogram.bins) + heap(s.histogram.counts) + heap(s.histogram.wholeBins) + heap(s.histogram.wholeCounts)
        n += heap(s.lanes.keys) + heap(s.lanes.states)
        for lane in s.lanes.states { n += heapBytes(lane, inline: false) }
        return n
    }

    static func varintSize(_ v: UInt64) -> Int {
        var n = 1, x = v
        while x >= 0x80 { x >>= 7; n += 1 }
        return n
    }

    /// The state's format-1 encoding size: version, count, six doubles, the sparse histogram.
    static func legacySize(_ s: BucketState) -> Int {
        var n = 1 + varintSize(UInt64(s.count)) + 48 + varintSize(UInt64(s.histogram.binCount))
        var previous: UInt16 = 0
        for (b, c) in zip(s.histogram.bins, s.histogram.counts) {
            n += varintSize(UInt64(b - previous)) + varintSize(UInt64(c))
            previous = b
        }
        return n
    }
}
