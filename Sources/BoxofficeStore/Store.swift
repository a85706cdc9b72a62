import BoxofficeConcurrency
import BoxofficeCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The one door to PostgreSQL: every SQL statement of Boxoffice lives in this target.
///
/// Owns the `PostgresClient` pool; run it (``run()``) before the first query, e.g. as the first
/// service of a `ServiceGroup`.
public final class Store: Sendable {
    /// The pool. Package access: the product's SQL goes through the Store's methods; tests and the
    /// benchmark (same package) use it for statements of their own.
    package let client: PostgresClient
    public let configuration: DatabaseConfiguration
    package let logger: Logger
    /// Events never change shape once created, so each process keeps their layouts.
    let layouts = Mutex<[EventID: EventLayout]>([:])
    /// How long an Idempotency-Key replays its intent: an older key is treated as absent by intake
    /// and deleted by the workers' sweep (``Retention``).
    public let idempotencyKeyLifetime: Duration
    /// Told about every connection lease (``leased(_:)``): the pool metrics; nil counts nothing.
    public let leaseObserver: (any ConnectionLeaseObserver)?

    /// Channel a worker listens on: intake notifies it after committing new intents.
    public static let intentsChannel = "boxoffice_intents"
    /// Channel status long-polls listen on: a settle notifies it with the event id.
    public static let outcomesChannel = "boxoffice_outcomes"

    public init(
        configuration: DatabaseConfiguration, logger: Logger, idempotencyKeyLifetime: Duration = Retention.idempotencyKeyLifetimeDefault,
        leaseObserver: (any ConnectionLeaseObserver)? = nil
    ) {
        self.configuration = configuration
        self.logger = logger
        self.idempotencyKeyLifetime = idempotencyKeyLifetime
        self.leaseObserver = leaseObserver
        self.client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the connection pool until cancelled.
    public func run() async {
        await client.run()
    }

    /// Fails with a clear message if the database cannot be reached within `timeout`, instead of
    /// letting the pool retry forever.
    public func checkReachable(timeout: Duration = .seconds(10)) async throws {
        do {
            _ = try await withTimeout(timeout) {
                try await self.fetch("SELECT 1")
            }
        } catch {
            // The pool retries a refused connection and only times out; one direct attempt says why.
            let cause = await configuration.connectionFailure(timeout: .seconds(5), logger: logger) ?? String(reflecting: error)
            throw StoreError.unreachable("cannot reach PostgreSQL at \(configuration): \(cause); check DATABASE_URL and that the server is running")
        }
    }

    /// True when a trivial query answers within `timeout`: the readiness probe.
    public func isReachable(timeout: Duration = .seconds(2)) async -> Bool {
        (try? await withTimeout(timeout) { try await self.fetch("SELECT 1") }) != nil
    }

    /// Holds one connection in LISTEN on `channel` and calls `onNotification` with each payload,
    /// until the task is cancelled or the connection drops (then it throws, so callers back off and retry).
    public func listen(on channel: String, onNotification: @Sendable (String) async -> Void) async throws {
        try await leased { connection in
            try await connection.listen(on: channel) { notifications in
                for try await notification in notifications {
                    await onNotification(notification.payload)
                }
            }
        }
    }
}

/// Failures the layers above turn into exit codes and HTTP statuses.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case unreachable(String)
    case invariantBroken(String)
    case migrationFailed(String)
    /// The connection closed before a statement could be sent on it (the server restarted, say);
    /// the statement was not run, and a transaction open on it is rolled back by the server.
    case connectionLost
    /// The caller's deadline passed before the statement was sent; it did not run.
    case deadlinePassed

    public var description: String {
        switch self {
        case .deadlinePassed: "the request's deadline passed before the statement was sent; it did not run"
        case .unreachable(let message), .invariantBroken(let message), .migrationFailed(let message): message
        case .connectionLost:
            "the database connection closed before the statement was sent; it did not run (an open transaction on it was rolled back)"
        }
    }
}

extension Store {
    /// Longest any one statement on a held connection may take client-side: the server's own
    /// `statement_timeout` plus a margin for the network.
    var heldStatementBound: Duration { .milliseconds(configuration.statementTimeoutMilliseconds + 5_000) }

    /// Runs one statement (and reads its rows) on a connection this task holds, bounded, and fails
    /// fast when the connection is already gone instead of writing to it (see ``withTimeout(_:_:)``).
    func runBounded<T: Sendable>(on connection: PostgresConnection, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard !connection.isClosed else { throw StoreError.connectionLost }
        return try await withTimeout(heldStatementBound, body)
    }

    /// BEGIN, `body`, COMMIT on one pooled connection, every step bounded; ROLLBACK on failure unless
    /// the connection is gone (the server rolls back an orphaned transaction by itself). Used instead
    /// of PostgresNIO's `withTransaction`, whose ROLLBACK after a lost connection never returns.
    ///
    /// `snapshot`: one `REPEATABLE READ READ ONLY` snapshot for every statement of `body` (the audit).
    func transaction<T: Sendable>(snapshot: Bool = false, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await leased { connection in
            let logger = self.logger
            _ = try await self.runBounded(on: connection) {
                try await connection.query(snapshot ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", logger: logger)
            }
            do {
                let value = try await body(connection)
                _ = try await self.runBounded(on: connection) { try await connection.query("COMMIT", logger: logger) }
                return value
            } catch {
                if !connection.isClosed {
                    _ = try? await self.runBounded(on: connection) { try await connection.query("ROLLBACK", logger: logger) }
                }
                throw error
            }
        }
    }
}

/// One line for a log or a message: for a PostgreSQL error its code, SQLSTATE and server message
/// (never the statement or its binds), for anything else its description.
public func describeDatabaseError(_ error: any Error) -> String {
    guard let error = error as? PSQLError else { return String(describing: error) }
    var parts = ["\(error.code)"]
    if let info = error.serverInfo, let state = info[.sqlState] {
        parts.append("SQLSTATE \(state): \(info[.message] ?? "")")
    }
    if let sql = error.query?.sql {
        // The statement's first words say which step failed; its binds are never shown.
        parts.append("in: " + sql.split(whereSeparator: \.isWhitespace).prefix(8).joined(separator: " "))
    }
    if let underlying = error.underlying { parts.append("(\(describeDatabaseError(underlying)))") }
    return parts.joined(separator: " ")
}
