import PostgresNIO

/// A hot statement: its SQL and bindings come from one interpolated `query`, so it can run as a
/// named prepared statement (parsed and planned once per connection) or, behind a transaction-mode
/// pooler that cannot keep them, as an unnamed one.
protocol StoreStatement: PostgresPreparedStatement {
    /// The statement with this instance's values bound.
    var query: PostgresQuery { get }
    /// Any instance: the SQL text does not depend on the values.
    static var sample: Self { get }
    /// Run unnamed, so PostgreSQL plans it for the values at hand each time, never from a generic plan
    /// cached on this connection. For statements that look up an array of keys (`= ANY($1)`): a
    /// generic plan made while the table was nearly empty seq-scans it once it holds a million rows.
    static var plansPerExecution: Bool { get }
}

extension StoreStatement {
    static var name: String { "boxoffice_\(String(describing: Self.self))_v1" }
    static var sql: String { sample.query.sql }
    static var plansPerExecution: Bool { false }
    func makeBindings() throws -> PostgresBindings { query.binds }
}

extension Store {
    /// Runs `statement` on `connection` (inside a transaction) or on a pooled one, and collects its rows.
    /// Callers bound the row count (batch sizes, single-row lookups).
    ///
    /// `sendBefore` is a deadline checked once a pooled connection is leased, just before the
    /// statement is sent: a caller that gave up waiting (its client was answered 503) must not have
    /// its write run later, when the database comes back and the lease is finally granted.
    func rows<S: StoreStatement>(
        _ statement: S, on connection: PostgresConnection? = nil, sendBefore: ContinuousClock.Instant? = nil
    ) async throws -> [S.Row] where S.Row: Sendable {
        guard let connection else {
            return try await leased { connection in
                if let sendBefore, ContinuousClock.now >= sendBefore { throw StoreError.deadlinePassed }
                return try await self.rows(statement, on: connection)
            }
        }
        let prepared = configuration.preparedStatements && !S.plansPerExecution
        let logger = self.logger
        do {
            return try await runBounded(on: connection) {
                var result: [S.Row] = []
                if prepared {
                    for try await row in try await connection.execute(statement, logger: logger) { result.append(row) }
                } else {
                    for try await row in try await connection.query(statement.query, logger: logger) { result.append(try statement.decodeRow(row)) }
                }
                return result
            }
        } catch {
            // PostgresNIO (1.33) remembers a failed preparation for the life of the connection and fails
            // every later execution of that statement on it with the same error, without asking the
            // server again. Parsing an INSERT takes its table lock, so one lock timeout would poison the
            // connection for good. Closing it is the only reset; the pool opens a fresh one.
            if prepared, !connection.isClosed { try? await connection.close() }
            throw error
        }
    }
}
