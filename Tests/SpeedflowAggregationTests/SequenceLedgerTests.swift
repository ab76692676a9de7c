import Testing

@testable import SpeedflowAggregation
import SpeedflowModel
import SpeedflowTestSupport

@Suite("SequenceLedger: received sequence numbers as runs, the gaps between them, persisted in chunks")
struct SequenceLedgerTests {
    @Test("Random streams (loss, resends, reordering, several epochs, chunk boundaries) match the naive model")
    func matchesNaiveModel() throws {
        for seed in UInt64(1)...40 {
            var rng = SeededRandom(seed: seed)
            var ledger = SequenceLedger()
            var naive = NaiveLedger()
            // Numbers around chunk boundaries too, so runs are cut and joined across chunks.
            let base = Int64.random(in: 0...3, using: &rng) * SequenceLedger.chunkSpan - Int64.random(in: 0...200, using: &rng)
            let start = max(0, base)
            for _ in 0..<Int.random(in: 1...600, using: &rng) {
                let epoch: Int64 = Int64.random(in: 0...2, using: &rng) == 0 ? 1 : 0
                let seq = start + Int64.random(in: 0...400, using: &rng)
                let time = 1_700_000_000_000 + seq * 1000 + Int64.random(in: 0...999, using: &rng)
                let inserted = ledger.insert(epoch: epoch, seq: seq, timeMs: time)
                let naiveInserted = naive.insert(epoch: epoch, seq: seq, timeMs: time)
                #expect(inserted == naiveInserted)
            }
            #expect(ledger.gaps == naive.gaps, "seed \(seed)")
            #expect(ledger.missingCount == naive.gaps.reduce(0) { $0 + $1.count }, "seed \(seed): the running missing count")
            #expect(ledger.receivedCount == Int64(naive.received.count))
                for (key, _) in naive.received { #expect(ledger.contains(epoch: key.epoch, seq: key.seq)) }
            for _ in 0..<200 {
                let key = SequenceKey(epoch: Int64.random(in: 0...2, using: &rng), seq: start + Int64.random(in: -5...420, using: &rng))
                #expect(ledger.contains(epoch: key.epoch, seq: key.seq) == (naive.received[key] != nil))
            }
        }
    }

    @Test("Rewriting only the chunks each insert touched, the stored chunks always read back as the whole ledger")
    func chunksReadBackWhole() throws {
        for seed in UInt64(100)...130 {
            var rng = SeededRandom(seed: seed)
            var ledger = SequenceLedger()
            var stored: [SequenceLedger.ChunkKey: [UInt8]] = [:]
            var dirty: Set<SequenceLedger.ChunkKey> = []
            let span = SequenceLedger.chunkSpan
            for step in 0..<800 {
                let epoch = Int64.random(in: 0...1, using: &rng)
                // Mostly near boundaries between chunks 1, 2 and 3.
                let seq = Int64.random(in: 1...3, using: &rng) * span + Int64.random(in: -150...150, using: &rng)
                if ledger.insert(epoch: epoch, seq: seq, timeMs: seq * 10) {
                    dirty.insert(SequenceLedger.ChunkKey(epoch: epoch, seq: seq))
                }
                if step % Int.random(in: 1...50, using: &rng) == 0 {
                    for key in dirty { stored[key] = ledger.chunk(key) }
                    dirty = []
                    let back = try SequenceLedger(chunks: stored.map { ($0.key, $0.value) })
                    #expect(back == ledger, "seed \(seed) step \(step)")
                }
            }
        }
    }

    @Test("The extremes: seq 0 and 2^63 - 1, a report of 2^63 - 1, chunks at both ends, without overflow")
    func extremes() throws {
        var ledger = SequenceLedger()
        for seq in [Int64.max, 0, Int64.max - 1, 1, Int64.max - 3] { ledger.insert(epoch: 0, seq: seq, timeMs: 7) }
        let again = ledger.insert(epoch: 0, seq: .max, timeMs: 8)
        #expect(!again)
        #expect(ledger.contains(epoch: 0, seq: .max) && !ledger.contains(epoch: 0, seq: .max - 2))
        #expect(ledger.gaps.map(\.count) == [Int64.max - 5, 1])
        let keys = [SequenceLedger.ChunkKey(epoch: 0, seq: 0), SequenceLedger.ChunkKey(epoch: 0, seq: .max)]
        #expect(try SequenceLedger(chunks: keys.map { ($0, ledger.chunk($0)) }) == ledger)
        #expect(throws: (any Error).self) { try SequenceLedger(chunks: [(SequenceLedger.ChunkKey(epoch: 0, chunk: .max), [1, 0])]) }
        #expect(throws: (any Error).self) { try SequenceLedger(chunks: [(SequenceLedger.ChunkKey(epoch: -1, chunk: 0), [1, 0])]) }
        var s = CameraSequence()
        _ = s.note(CameraReport(kvfvId: "A", seq: .max, timeMs: 1), arrivalMs: 2)
        #expect(s.backlog?.events == .max)
    }

    @Test("A damaged chunk does not decode")
    func damagedChunk() throws {
        var ledger = SequenceLedger()
        for s in [3, 4, 5, 9, 10, 20] as [Int64] { ledger.insert(epoch: 0, seq: s, timeMs: s) }
        let key = SequenceLedger.ChunkKey(epoch: 0, chunk: 0)
        let bytes = ledger.chunk(key)
        #expect(try SequenceLedger(chunks: [(key, bytes)]) == ledger)
        for cut in 0..<bytes.count {
            #expect(throws: (any Error).self) { try SequenceLedger(chunks: [(key, Array(bytes.prefix(cut)))]) }
        }
        var wrongVersion = bytes
        wrongVersion[0] = 9
        #expect(throws: (any Error).self) { try SequenceLedger(chunks: [(key, wrongVersion)]) }
        // A run longer than a chunk.
        var tooLong: [UInt8] = [1, 1, 0]
        tooLong.appendVarint(UInt64(SequenceLedger.chunkSpan))
        tooLong += [0, 0]
        #expect(throws: (any Error).self) { try SequenceLedger(chunks: [(key, tooLong)]) }
    }

    @Test("Backlog: reported numbers after the newest received one; completeness of windows against gaps and backlog")
    func backlogAndCompleteness() {
        var s = CameraSequence()
        #expect(s.completeness(of: [(0, 300_000)]) == nil)
        // Passes 0…9 one a minute from t=0; 4 and 5 lost so far.
        for seq in Int64(0)...9 where seq != 4 && seq != 5 { s.ledger.insert(epoch: 0, seq: seq, timeMs: seq * 60_000) }
        #expect(s.backlog == nil)
        let windows: [(fromMs: Int64, toMs: Int64)] = [(0, 180_000), (180_000, 360_000), (360_000, 540_000), (540_000, 720_000)]
        var c = s.completeness(of: windows)!
        // Passes 4 and 5 happened between 3 (t=180 s) and 6 (t=360 s): in the second window, or at 360 s exactly —
        // the third's first instant. The last window reaches past pass 9 (t=540 s): not known complete.
        #expect(c.map(\.complete) == [true, false, false, false])
        #expect(c.map(\.missing) == [0, 2, 2, 0])
        // The camera reports it recorded up to 14 (at t=14 min): five passes after 9 are still on it.
        let taken = s.note(CameraReport(kvfvId: "A", seq: 14, timeMs: 840_000), arrivalMs: 900_000)
        #expect(taken)
        #expect(s.backlog?.events == 5 && s.backlog?.sinceMs == 540_000 && s.backlog?.untilMs == 840_000)
        c = s.completeness(of: windows)!
        #expect(c.map(\.missing) == [0, 2, 2, 5])
        #expect(c.map(\.complete) == [true, false, false, false])
        // An older report does not replace a newer one.
        let older = s.note(CameraReport(kvfvId: "A", seq: 12, timeMs: 720_000), arrivalMs: 950_000)
        #expect(!older)
        // The resends arrive: all complete up to the report's time.
        for seq in Int64(4)...14 { s.ledger.insert(epoch: 0, seq: seq, timeMs: seq * 60_000) }
        #expect(s.backlog == nil)
        c = s.completeness(of: windows + [(720_000, 900_000)])!
        #expect(c.map(\.complete) == [true, true, true, true, false])
        #expect(c.map(\.missing) == [0, 0, 0, 0, 0])
        // A restarted counter (epoch 1) makes a report of epoch 0 stale; one of epoch 1 counts from its own numbers.
        s.ledger.insert(epoch: 1, seq: 0, timeMs: 1_000_000)
        let newer = s.note(CameraReport(kvfvId: "A", epoch: 1, seq: 3, timeMs: 1_200_000), arrivalMs: 1_300_000)
        #expect(newer)
        #expect(s.backlog?.events == 3 && s.backlog?.sinceMs == 1_000_000)
    }
}
