import Logging
import PostgresNIO

/// Told about every lease of a pooled connection the Store takes: the pool's saturation as operators see
/// it (`boxoffice_db_connections_in_use`, `boxoffice_db_lease_wait_seconds`, see `DatabasePoolMetrics`).
///
/// PostgresNIO 1.x keeps its pool's own observability hooks internal, so the Store counts at the one
/// door every statement of the product goes through (``Store/leased(_:)``): a lease is asked for, then
/// granted (after a wait) or abandoned (the caller was cancelled, timed out, or the pool failed), and a
/// granted one is returned. Calls are synchronous and cheap (atomics): they run on every statement.
public protocol ConnectionLeaseObserver: Sendable {
    /// A task asked the pool for a connection.
    func leaseRequested()
    /// The connection was handed over after `waited` (queueing behind busy connections, and opening one
    /// when the pool had none idle).
    func leaseGranted(waited: Duration)
    /// The task stopped waiting without a connection after `waited`: cancelled (a request's deadline), or
    /// the pool could not connect.
    func leaseAbandoned(waited: Duration)
    /// A granted connection went back to the pool.
    func leaseReturned()
}

extension Store {
    /// Leases a pooled connection for `body`'s lifetime, telling ``leaseObserver`` about it. Every
    /// statement of the product goes through here (single statements through ``fetch(_:)`` or
    /// ``rows(_:on:sendBefore:)``, transactions through ``transaction(snapshot:_:)``, LISTEN through
    /// ``listen(on:onNotification:)``), so the observer sees the whole pool.
    func leased<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        guard let observer = leaseObserver else { return try await client.withConnection(body) }
        let asked = ContinuousClock.now
        observer.leaseRequested()
        var granted = false
        do {
            return try await client.withConnection { connection in
                granted = true
                observer.leaseGranted(waited: .now - asked)
                defer { observer.leaseReturned() }
                return try await body(connection)
            }
        } catch {
            if !granted { observer.leaseAbandoned(waited: .now - asked) }
            throw error
        }
    }

    /// Runs one statement on a pooled connection and returns all its rows (callers bound the count:
    /// single-row lookups, per-event lists with a LIMIT, or one small row per event). Unlike `PostgresClient.query`, whose rows stream
    /// after the call returns, the connection is back in the pool when this returns.
    func fetch(_ query: PostgresQuery) async throws -> [PostgresRow] {
        let logger = self.logger
        return try await leased { try await $0.rows(query, logger: logger) }
    }
}

extension PostgresConnection {
    /// Runs `query` and collects its rows (callers bound the count).
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in try await self.query(query, logger: logger) { rows.append(row) }
        return rows
    }
}
