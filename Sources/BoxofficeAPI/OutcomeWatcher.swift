import BoxofficeConcurrency
import BoxofficeCore
import BoxofficeStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Wakes long-polling status requests when their intent's status changes: decided (from `pending`),
/// or moved on by a transition (a hold confirmed, released or expired; an order cancelled).
///
/// Workers NOTIFY the event id after each settle, the API after each transition; the watcher then
/// asks the database, in one query, where the intents waited on for that event stand, and wakes only
/// those that left the status their request waits on, handing each its status (so a woken request answers without another query). A periodic poll
/// covers missed notifications and connections where LISTEN is impossible (PgBouncer in transaction mode).
public final class OutcomeWatcher: Service, Sendable {
    public struct Configuration: Sendable {
        /// Long-polls held at once by this process; past it a request answers at once with its current
        /// status (and `Retry-After`). Each held long-poll also holds its client connection, so this
        /// stays below ``ClientLimits/connectionsMax``: the rest are left for intake.
        public var waitersMax = 2_048
        /// Long-polls held at once on one intent: one client holding one intent id cannot take every
        /// slot. A legitimate buyer needs one.
        public var waitersPerIntentMax = 4
        /// How often every waited-on intent is re-checked regardless of notifications.
        public var pollInterval: Duration = .milliseconds(500)
        /// Use LISTEN/NOTIFY; off behind a transaction-mode pooler.
        public var listen = true
        /// Ids per lookup query.
        public var lookupBatchMax = 5_000

        public init() {}
    }

    /// One waiting request: rung with the outcome the watcher read for it, so the request answers
    /// without asking the database again.
    final class Slot: Sendable {
        let bell = Doorbell()
        let decided = Mutex<IntentStatus?>(nil)
        /// The status the request waits to leave.
        let waitWhile: IntentStatusWord

        init(waitWhile: IntentStatusWord) { self.waitWhile = waitWhile }

        func deliver(_ status: IntentStatus) {
            decided.withLock { $0 = status }
            bell.ring()
        }
    }

    struct State {
        var waiters: [UUID: [Int: Slot]] = [:]
        var intentsByEvent: [EventID: Set<UUID>] = [:]
        var dirtyEvents: Set<EventID> = []
        var nextToken = 0
        var count = 0
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let state = Mutex(State())
    /// Rung when an event with waiters has new outcomes.
    let doorbell = Doorbell()

    public init(store: Store, configuration: Configuration = .init(), logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// What a long-poll came to.
    public enum WaitResult: Sendable {
        /// The intent left the status waited on (decided, for `pending`): where it stands now.
        case decided(IntentStatus)
        /// The wait ended (its timeout, or the server stopping) with the intent still pending.
        case timedOut
        /// Refused at once: too many long-polls held in this process or on this intent.
        case refused
    }

    /// Waits until `id` leaves the status `waitWhile` (decided, for `pending`; confirmed, released or
    /// expired, for `held`…) or `timeout` passes. `recheck` runs once after registering, so a change
    /// written just before cannot be missed; it returns the status if it is no longer `waitWhile`.
    public func wait(
        for id: UUID, event: EventID, while waitWhile: IntentStatusWord = .pending, timeout: Duration,
        recheck: @Sendable () async -> IntentStatus?
    ) async -> WaitResult {
        let slot = Slot(waitWhile: waitWhile)
        let token: Int? = state.withLock { state in
            guard state.count < configuration.waitersMax, (state.waiters[id]?.count ?? 0) < configuration.waitersPerIntentMax else { return nil }
            state.nextToken += 1
            state.count += 1
            state.waiters[id, default: [:]][state.nextToken] = slot
            state.intentsByEvent[event, default: []].insert(id)
            return state.nextToken
        }
        guard let token else { return .refused }
        defer {
            state.withLock { state in
                state.count -= 1
                state.waiters[id]?[token] = nil
                if state.waiters[id]?.isEmpty == true {
                    state.waiters[id] = nil
                    state.intentsByEvent[event]?.remove(id)
                    if state.intentsByEvent[event]?.isEmpty == true { state.intentsByEvent[event] = nil }
                }
            }
        }
        if let decided = await recheck() { return .decided(decided) }
        // A server being stopped answers its long-polls at once (with the status as it stands) instead
        // of holding shutdown for up to the longest wait: a rolling deploy's SIGTERM must not outlast
        // the orchestrator's grace period. The request runs under the HTTP service, so it sees the
        // graceful shutdown as soon as that service does.
        await withGracefulShutdownHandler {
            await slot.bell.wait(timeout: timeout)
        } onGracefulShutdown: {
            slot.bell.ring()
        }
        return slot.decided.withLock { $0 }.map(WaitResult.decided) ?? .timedOut
    }

    /// Long-polls held now (for tests and logs).
    public var waiting: Int { state.withLock { $0.count } }

    /// Marks `event` as having new outcomes.
    func eventSettled(_ event: EventID) {
        let waited = state.withLock { state in
            guard state.intentsByEvent[event] != nil else { return false }
            state.dirtyEvents.insert(event)
            return true
        }
        if waited { doorbell.ring() }
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            if configuration.listen {
                group.addTask { await self.listenForSettles() }
            }
            group.addTask { await self.checkUntilCancelled() }
            // Long-polls are short-lived; on shutdown stop waking and let the HTTP server drain them.
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func listenForSettles() async {
        await listenUntilCancelled {
            try await self.store.listen(on: Store.outcomesChannel) { payload in
                if let event = EventID(payload) { self.eventSettled(event) }
            }
        } connectionLost: { error, retryIn in
            self.logger.info(
                "outcome LISTEN connection lost; polling until it is back",
                metadata: [
                    "error": "\(describeDatabaseError(error))", "retry_in": "\(retryIn)",
                ])
        }
    }

    private func checkUntilCancelled() async {
        var lastFullCheck = ContinuousClock.now
        while !Task.isCancelled {
            // Wake on a settle notification, or at the poll interval.
            await doorbell.wait(timeout: configuration.pollInterval)
            let full = ContinuousClock.now - lastFullCheck >= configuration.pollInterval
            if full { lastFullCheck = .now }
            let ids: [UUID] = state.withLock { state in
                defer { state.dirtyEvents.removeAll() }
                if full { return Array(state.waiters.keys) }
                return state.dirtyEvents.flatMap { state.intentsByEvent[$0] ?? [] }
            }
            for start in stride(from: 0, to: ids.count, by: configuration.lookupBatchMax) {
                let chunk = Array(ids[start..<min(start + configuration.lookupBatchMax, ids.count)])
                guard let decided = try? await store.decidedStatuses(among: chunk) else { break }
                let deliveries = state.withLock { state in
                    decided.flatMap { id, status in
                        (state.waiters[id]?.values).map { $0.filter { $0.waitWhile != status.word }.map { ($0, status) } } ?? []
                    }
                }
                for (slot, status) in deliveries { slot.deliver(status) }
            }
        }
    }
}
