import Logging

/// Runs `body` with a connected Store whose pool runs for exactly as long as `body`: the one-shot
/// commands (migrate, event, verify), demo, bench and the tests.
@discardableResult
public func withStore<T: Sendable>(
    _ configuration: DatabaseConfiguration, logger: Logger, idempotencyKeyLifetime: Duration = Retention.idempotencyKeyLifetimeDefault,
    leaseObserver: (any ConnectionLeaseObserver)? = nil, _ body: @Sendable @escaping (Store) async throws -> T
) async throws -> T {
    let store = Store(configuration: configuration, logger: logger, idempotencyKeyLifetime: idempotencyKeyLifetime, leaseObserver: leaseObserver)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await store.run()
            return nil
        }
        defer { group.cancelAll() }
        try await store.checkReachable()
        return try await body(store)
    }
}
