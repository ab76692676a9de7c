import Foundation
import Logging
import PostgresNIO

/// The SQL a table needs before a source can read it (`speedflow source postgres install-trigger`).
///
/// - poll / notify: an `xid8` column holding the inserting transaction (the commit-safe position) and an index
///   on `(xid, id)` for the ordered read. Existing rows get the id of the `ALTER`'s own transaction, which has
///   ended by the time anyone reads them. No table rewrite (the default is not volatile).
/// - notify: also a statement-level trigger that `NOTIFY`s the channel after each INSERT statement.
/// - logical: the replication slot (wal2json); only rows committed after it exist in its stream.
public enum SourceSetupSQL {
    public static func statements(for c: PostgresSourceConfiguration) -> [String] {
        let table = c.qualifiedTable
        let xid = SQL.identifier(c.xidColumn)
        let id = SQL.identifier(c.idColumn)
        switch c.mode {
        case .poll:
            return positionColumn(table, xid, id, c)
        case .notify:
            let function = SQL.identifier(c.schemaName) + "." + SQL.identifier("speedflow_notify_\(c.tableName)")
            return positionColumn(table, xid, id, c) + [
                """
                CREATE OR REPLACE FUNCTION \(function)() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  PERFORM pg_notify(\(SQL.literal(c.channel)), '');
                  RETURN NULL;
                END $$
                """,
                """
                CREATE OR REPLACE TRIGGER \(SQL.identifier("speedflow_notify_\(c.tableName)")) \
                AFTER INSERT ON \(table) FOR EACH STATEMENT EXECUTE FUNCTION \(function)()
                """,
            ]
        case .logical:
            return [
                """
                SELECT pg_create_logical_replication_slot(\(SQL.literal(c.slotName)), 'wal2json') \
                WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = \(SQL.literal(c.slotName)))
                """
            ]
        }
    }

    static func positionColumn(_ table: String, _ xid: String, _ id: String, _ c: PostgresSourceConfiguration) -> [String] {
        [
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS \(xid) xid8 NOT NULL DEFAULT pg_current_xact_id()",
            "CREATE INDEX IF NOT EXISTS \(SQL.identifier("\(c.tableName)_speedflow_position")) ON \(table) (\(xid), \(id))",
        ]
    }

    /// The statements as a script (each ends with `;`).
    public static func script(for c: PostgresSourceConfiguration) -> String {
        statements(for: c).map { $0 + ";\n" }.joined()
    }

    /// Runs the statements, one by one, on a fresh connection.
    public static func apply(_ c: PostgresSourceConfiguration, logger: Logger) async throws {
        let dsn = try PostgresDSN(c.dsn)
        var pg = PostgresConnection.Configuration(
            host: dsn.host, port: dsn.port, username: dsn.user, password: dsn.password, database: dsn.database, tls: try dsn.tls())
        pg.options.additionalStartupParameters = [("application_name", "speedflow-setup")]
        let connection = try await PostgresConnection.connect(configuration: pg, id: 1, logger: logger)
        do {
            for statement in statements(for: c) {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
