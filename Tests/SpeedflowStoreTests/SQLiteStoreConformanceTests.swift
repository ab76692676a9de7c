import Foundation
import SpeedflowStore
import SpeedflowTestSupport
import Testing

/// The `Store` contract (`StoreContract`, in SpeedflowTestSupport) against SQLite, a fresh file per clause.
@Suite("Store conformance: SQLite")
struct SQLiteStoreConformanceTests {
    @Test("SQLiteStore keeps the Store contract", arguments: StoreContract.allCases)
    func sqlite(_ clause: StoreContract) async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.sqlite").path
        try await clause.verify(StoreUnderTest(name: "SQLite", resets: true, prunesIdentities: true) { try SQLiteStore(path: path) })
    }
}
