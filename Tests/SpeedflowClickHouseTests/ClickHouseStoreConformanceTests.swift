import Foundation
import Logging
import SpeedflowClickHouse
import SpeedflowStore
import SpeedflowTestSupport
import Testing

/// The `Store` contract (`StoreContract`, in SpeedflowTestSupport) against a ClickHouse node and the 2 × 2 cluster,
/// a database of its own per clause. Skipped (and listed as skipped) without the servers `scripts/test` starts.
@Suite("Store conformance: ClickHouse", .serialized)
struct ClickHouseStoreConformanceTests {
    @Test(
        "a single ClickHouse node keeps the Store contract",
        .enabled(if: ClickHouseTestEnvironment.single != nil, "needs SPEEDFLOW_TEST_CLICKHOUSE (scripts/test sets it)"),
        arguments: StoreContract.allCases)
    func singleNode(_ clause: StoreContract) async throws {
        try await Self.verify(clause, topology: try #require(ClickHouseTestEnvironment.single))
    }

    @Test(
        "the ClickHouse cluster (2 shards x 2 replicas) keeps the Store contract",
        .enabled(if: ClickHouseTestEnvironment.cluster != nil, "needs SPEEDFLOW_TEST_CLICKHOUSE_CLUSTER (scripts/test sets it)"),
        arguments: StoreContract.allCases)
    func cluster(_ clause: StoreContract) async throws {
        try await Self.verify(clause, topology: try #require(ClickHouseTestEnvironment.cluster))
    }

    static func verify(_ clause: StoreContract, topology: String) async throws {
        let database = ClickHouseTestEnvironment.freshDatabase()
        let logger = {
            var logger = Logger(label: "test.clickhouse.conformance")
            logger.logLevel = .warning
            return logger
        }()
        let client = ClickHouseClient(topology: try ClickHouseTopology(parsing: topology), logger: logger)
        defer { client.shutdown() }
        // Raw events, each once however often its block was sent (the table collapses on its sorting key).
        let storedEvents: @Sendable () throws -> Int = {
            try (0..<client.topology.shards.count).reduce(0) { n, shard in
                let out = try client.run(shard: shard, sql: "SELECT count() FROM \(database).events FINAL FORMAT TabSeparated")
                let text = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                return n + (try #require(Int(text), "events count: \(text)"))
            }
        }
        let subject = StoreUnderTest(name: "ClickHouse \(topology)", resets: false, prunesIdentities: false, storedEvents: storedEvents) {
            try ClickHouseStore(client: client, database: database, logger: logger)
        }
        try await clause.verify(subject)
    }
}
