import ServiceLifecycle

/// Runs the Store's connection pool as a `Service`: put it first in a `ServiceGroup`, so it starts
/// before and stops after everything that queries.
public struct StoreService: Service {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    public func run() async throws {
        await store.run()
    }
}
