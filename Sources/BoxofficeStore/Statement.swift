import PostgresNIO

/// A hot statement: its SQL and bindings come from one interpolated `query`, so it can run as a
/// named prepared statement (parsed and planned once per connection) or, behind a transaction-mode
/// pooler that cannot keep them, as an unnamed one.
protocol StoreStatement: PostgresPreparedStatement {
    /// The statement with this instance's values bound.
    var query: PostgresQuery { get }
    /// Any instance: the SQL text does not depend on the values.
    static var sample: Self { get }
}

extension StoreStatement {
    static var name: String { "boxoffice_\(String(describing: Self.self))_v1" }
    static var sql: String { sample.query.sql }
    func makeBindings() throws -> PostgresBindings { query.binds }
}

extension Store {
    /// Runs `statement` on `connection` (inside a transaction) or on a pooled one, and collects its rows.
    /// Callers bound the row count (batch sizes, single-row lookups).
    func rows<S: StoreStatement>(_ statement: S, on connection: PostgresConnection? = nil) async throws -> [S.Row] {
        var result: [S.Row] = []
        if configuration.preparedStatements {
            let sequence = if let connection {
                try await connection.execute(statement, logger: logger)
            } else {
                try await client.execute(statement, logger: logger)
            }
            for try await row in sequence { result.append(row) }
        } else {
            let sequence = if let connection {
                try await connection.query(statement.query, logger: logger)
            } else {
                try await client.query(statement.query, logger: logger)
            }
            for try await row in sequence { result.append(try statement.decodeRow(row)) }
        }
        return result
    }
}
