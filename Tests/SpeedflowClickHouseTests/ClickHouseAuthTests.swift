import Foundation
import Logging
import SpeedflowClickHouse
import SpeedflowStore
import Testing

/// A ClickHouse user with a password (`speedflow_auth`, made by `scripts/clickhouse`): the store works through
/// it, a wrong password is a clear error, and credentials in a URL are refused.
@Suite("ClickHouse user and password", .enabled(if: ClickHouseTestEnvironment.single != nil))
struct ClickHouseAuthTests {
    @Test("a store opens and commits as a password user; a wrong password fails with ClickHouse's reason; URLs with credentials are refused")
    func userAndPassword() throws {
        let url = try #require(ClickHouseTestEnvironment.single)
        let topology = try ClickHouseTopology(parsing: url)
        var logger = Logger(label: "test.clickhouse.auth")
        logger.logLevel = .warning
        let good = ClickHouseClient(topology: topology, credentials: ClickHouseCredentials(user: "speedflow_auth", password: "sf-test-password"), logger: logger)
        defer { good.shutdown() }
        let user = String(decoding: try good.run(shard: 0, sql: "SELECT user FROM system.processes WHERE position(query, 'probe-7351') > 0"), as: UTF8.self)
        #expect(user.trimmingCharacters(in: .whitespacesAndNewlines) == "speedflow_auth")
        let database = ClickHouseTestEnvironment.freshDatabase()
        let store = try ClickHouseStore(client: good, database: database, logger: logger)
        #expect(try store.logOffset() == 0)

        let bad = ClickHouseClient(topology: topology, credentials: ClickHouseCredentials(user: "speedflow_auth", password: "x9-not-it"), logger: logger)
        defer { bad.shutdown() }
        do {
            _ = try bad.run(shard: 0, sql: "SELECT 1")
            Issue.record("a wrong password was accepted")
        } catch let error as ClickHouseError {
            #expect(error.kind == .server)
            #expect(error.message.contains("password") || error.message.contains("Authentication"), "\(error.message)")
            #expect(!error.message.contains("x9-not-it"), "the password must not appear in errors: \(error.message)")
        }
        #expect(throws: ClickHouseError.self) { try ClickHouseTopology(parsing: "http://speedflow_auth:sf-test-password@127.0.0.1:8123") }
        _ = try? good.run(shard: 0, sql: "DROP DATABASE IF EXISTS \(database)")
    }
}
