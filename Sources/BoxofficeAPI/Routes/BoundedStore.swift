import BoxofficeConcurrency
import BoxofficeCore
import BoxofficeStore

/// The Store as the routes call it: every call under the request's database bound, past which the
/// request is answered 503 (``APIConfiguration/databaseWaitMilliseconds``).
struct BoundedStore: Sendable {
    let store: Store
    let waitMilliseconds: Int

    /// When a request that arrives now must have its answer from the database: every wait of the
    /// request on the database (leases, statements, the intake group) shares this one bound.
    func requestDeadline() -> ContinuousClock.Instant { .now + .milliseconds(waitMilliseconds) }

    /// Runs a Store call under a fresh request bound.
    func call<T: Sendable>(_ body: @escaping @Sendable (Store) async throws -> T) async throws -> T {
        try await call(until: requestDeadline(), body)
    }

    /// Runs a Store call that must finish by `deadline`; past it, 503.
    func call<T: Sendable>(until deadline: ContinuousClock.Instant, _ body: @escaping @Sendable (Store) async throws -> T) async throws -> T {
        let store = self.store
        return try await withTimeout(deadline - .now) { try await body(store) }
    }

    /// The event's layout: from this process's cache when it has one, else read under the bound.
    func layout(of id: EventID, deadline: ContinuousClock.Instant) async throws -> EventLayout? {
        if let cached = store.cachedLayout(of: id) { return cached }
        return try await call(until: deadline) { try await $0.layout(of: id) }
    }
}
