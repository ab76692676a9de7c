import Foundation
import SpeedflowEngine
import Testing

@Suite("FreeSpaceGuard")
struct FreeSpaceGuardUnitTests {
    @Test("--min-free-space parses sizes, shares, both and 0; the larger of size and share is kept free")
    func thresholds() {
        #expect(FreeSpaceGuard.Threshold.parse("1GiB") == .init(bytes: 1 << 30, percent: 0))
        #expect(FreeSpaceGuard.Threshold.parse("2%") == .init(bytes: 0, percent: 2))
        #expect(FreeSpaceGuard.Threshold.parse("1GiB,2%") == .default)
        #expect(FreeSpaceGuard.Threshold.parse("16MiB") == .init(bytes: 16 << 20, percent: 0))
        #expect(FreeSpaceGuard.Threshold.parse("0")?.isOff == true)
        for bad in ["", "x", "-1", "150%", "1GiB,x"] { #expect(FreeSpaceGuard.Threshold.parse(bad) == nil, "\(bad)") }
        #expect(FreeSpaceGuard.Threshold.default.required(ofSize: 10 << 30) == 1 << 30)
        #expect(FreeSpaceGuard.Threshold.default.required(ofSize: 1000 << 30) == 20 << 30)
        #expect(FreeSpaceGuard.Threshold.default.description == "1GiB,2%")
    }

    @Test("refuses with insufficient_storage while below the threshold, and not otherwise")
    func refuses() {
        let dir = FileManager.default.temporaryDirectory.path
        let low = FreeSpaceGuard(.init(path: dir, threshold: .init(bytes: 1 << 60, percent: 0)))
        #expect(low.isRefusing)
        #expect(throws: IngestError.self) { try low.check() }
        do { try low.check() } catch { #expect(error.code == .insufficientStorage) }
        let fine = FreeSpaceGuard(.init(path: dir, threshold: .init(bytes: 1, percent: 0)))
        #expect(!fine.isRefusing)
        #expect(throws: Never.self) { try fine.check() }
    }
}
