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
    public let client: PostgresClient
    public let configuration: DatabaseConfiguration
    let logger: Logger
    /// Events never change shape once created, so each process keeps their layouts.
    let layouts = Mutex<[EventID: EventLayout]>([:])

    /// Channel a worker listens on: intake notifies it after committing new intents.
    public static let intentsChannel = "boxoffice_intents"
    /// Channel status long-polls listen on: a settle notifies it with the event id.
    public static let outcomesChannel = "boxoffice_outcomes"

    public init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
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
                try await self.client.query("SELECT 1", logger: self.logger)
            }
        } catch {
            throw StoreError.unreachable("cannot reach PostgreSQL at \(configuration) (\(String(reflecting: error))); check DATABASE_URL and that the server is running")
        }
    }

    /// True when a trivial query answers within `timeout`: the readiness probe.
    public func isReachable(timeout: Duration = .seconds(2)) async -> Bool {
        (try? await withTimeout(timeout) { try await self.client.query("SELECT 1", logger: self.logger) }) != nil
    }

    /// Holds one connection in LISTEN on `channel` and calls `onNotification` with each payload,
    /// until the task is cancelled or the connection drops (then it throws, so callers back off and retry).
    public func listen(on channel: String, onNotification: @Sendable (String) async -> Void) async throws {
        try await client.withConnection { connection in
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

    public var description: String {
        switch self {
        case .unreachable(let message), .invariantBroken(let message), .migrationFailed(let message): message
        }
    }
}

struct TimeoutError: Error, CustomStringConvertible {
    let duration: Duration
    var description: String { "timed out after \(duration)" }
}

/// Runs `body`, or throws ``TimeoutError`` once `duration` passes: bounds every wait on the network.
func withTimeout<T: Sendable>(_ duration: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: duration)
            throw TimeoutError(duration: duration)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
