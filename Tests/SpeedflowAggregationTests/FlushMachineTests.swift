import SpeedflowAggregation
import SpeedflowTestSupport
import Testing

/// The flush protocol, driven as sequences of events — the races that `FlushRaceTests` provokes with threads,
/// here as explicit interleavings. Snapshots are plain numbers (their log offsets).
@Suite("Flush protocol: one flush at a time, failed deltas retried verbatim, nothing after letting go")
struct FlushMachineTests {
    /// 88f8809: an aggregator's apply thread and its ticker both saw a flush due and both started one; the later,
    /// emptier snapshot landed its log-offset marker while the earlier one's deltas were in flight, and a crash
    /// lost those deltas behind the marker. With "due?" and "claim" one step, the ticker gets `.none`.
    @Test("the 88f8809 interleaving: apply thread and ticker both find a flush due; only one starts")
    func appliesAndTickerRace() {
        var m = FlushMachine<Int>(policy: .appendDeltas, intervalMs: 250)
        #expect(m.tick(nowMs: 1_000) == .flush)  // the apply thread claims
        #expect(m.tick(nowMs: 1_000) == .none)  // the ticker, same instant
        #expect(m.tick(nowMs: 5_000) == .none)  // the ticker, long past the interval: still one running
        #expect(m.flushNow() == .wait)  // a synchronous flush waits for it
        #expect(m.commits(fresh: 10) == [10])
        #expect(m.flushEnded(succeeded: true) == .evict)
        #expect(m.tick(nowMs: 5_000) == .flush)  // now the next one may start
    }

    @Test("a flush is due only once the interval has passed since the last one started")
    func interval() {
        var m = FlushMachine<Int>(policy: .overwrite, intervalMs: 1_000)
        #expect(m.tick(nowMs: 1_000) == .flush)
        _ = m.flushEnded(succeeded: true)
        #expect(m.tick(nowMs: 1_999) == .none)
        #expect(m.tick(nowMs: 2_000) == .flush)
    }

    /// Many callers, random interleavings of their steps: whoever holds a claim commits its snapshot; at no
    /// point do two claims overlap, and the offsets reach the store in the order they were cut.
    @Test("random interleavings never overlap two flushes, and offsets land in order", arguments: 0..<200)
    func randomInterleavings(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var m = FlushMachine<Int>(policy: .appendDeltas, intervalMs: 0)
        var offset = 0
        var owner: Int?  // which caller holds the claim
        var pending: [Int] = []  // what the owner is committing
        var landed: [Int] = []
        for _ in 0..<500 {
            let caller = Int.random(in: 0..<3, using: &rng)
            if owner == caller {
                // The owner finishes: each commit succeeds or fails (a ClickHouse shard down).
                var ok = true
                for (i, s) in pending.enumerated() {
                    if Int.random(in: 0..<4, using: &rng) == 0 {
                        #expect(m.commitFailed(remaining: Array(pending[i...])) == .retryVerbatim)
                        ok = false
                        break
                    }
                    landed.append(s)
                }
                _ = m.flushEnded(succeeded: ok)
                owner = nil
            } else {
                offset += Int.random(in: 0...3, using: &rng)
                let claim = Bool.random(using: &rng) ? m.tick(nowMs: Int64(offset)) : m.flushNow()
                if owner != nil {
                    #expect(claim != .flush, "a second flush claimed while one runs")
                } else if claim == .flush {
                    owner = caller
                    pending = m.commits(fresh: offset)
                }
            }
        }
        #expect(landed == landed.sorted(), "offsets landed out of order: \(landed)")
    }

    @Test("append-deltas: a failed commit is retried verbatim, first, until it lands")
    func deltasRetryVerbatim() {
        var m = FlushMachine<Int>(policy: .appendDeltas, intervalMs: 0)
        #expect(m.tick(nowMs: 0) == .flush)
        #expect(m.commits(fresh: 1) == [1])
        #expect(m.commitFailed(remaining: [1]) == .retryVerbatim)
        #expect(m.flushEnded(succeeded: false) == .none)  // nothing evicted: 1's buckets are not in the store
        #expect(m.tick(nowMs: 1) == .flush)
        #expect(m.commits(fresh: 2) == [1, 2])  // 1 again, as it was, before 2
        // 1 lands, 2 fails: only 2 is retried.
        #expect(m.commitFailed(remaining: [2]) == .retryVerbatim)
        _ = m.flushEnded(succeeded: false)
        #expect(m.flushNow() == .flush)
        #expect(m.commits(fresh: 3) == [2, 3])
        #expect(m.flushEnded(succeeded: true) == .evict)
        #expect(m.tick(nowMs: 2) == .flush)
        #expect(m.commits(fresh: 4) == [4])
    }

    @Test("overwrite: a failed commit's buckets are marked dirty again, nothing is queued")
    func overwriteMarksDirty() {
        var m = FlushMachine<Int>(policy: .overwrite, intervalMs: 0)
        #expect(m.tick(nowMs: 0) == .flush)
        #expect(m.commits(fresh: 1) == [1])
        #expect(m.commitFailed(remaining: [1]) == .markDirty(1))
        _ = m.flushEnded(succeeded: false)
        #expect(m.tick(nowMs: 1) == .flush)
        #expect(m.commits(fresh: 2) == [2])
    }

    /// A partition revoked while a background flush is in flight: the final flush waits for it, carries its
    /// failed deltas, and after it nothing is ever committed again — no timer flush, no retry.
    @Test("relinquish: waits for the flush in flight, flushes once more, then never again")
    func relinquish() {
        var m = FlushMachine<Int>(policy: .appendDeltas, intervalMs: 0)
        #expect(m.tick(nowMs: 0) == .flush)  // background flush of 1 in flight
        m.relinquish()
        #expect(m.tick(nowMs: 1) == .none)
        #expect(m.flushNow() == .wait)
        #expect(m.commitFailed(remaining: [1]) == .retryVerbatim)  // the in-flight one fails
        _ = m.flushEnded(succeeded: false)
        #expect(m.flushNow() == .flush)  // the final flush
        #expect(m.commits(fresh: 2) == [1, 2])
        #expect(m.commitFailed(remaining: [1, 2]) == .retryVerbatim)
        _ = m.flushEnded(succeeded: false)
        #expect(m.retryQueue.isEmpty)  // dropped: the next owner replays from the store's position
        #expect(m.flushNow() == .none)
        #expect(m.tick(nowMs: 10_000) == .none)
    }
}

extension FlushMachine.Failure: Equatable where S: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.markDirty(let x), .markDirty(let y)): x == y
        case (.retryVerbatim, .retryVerbatim): true
        default: false
        }
    }
}
