import Synchronization

/// One clock for every bounded wait in the process: deadlines are registered here and expired by a
/// single task that ticks while any is pending, instead of one sleeping timer task per wait.
///
/// A timer task per bounded statement (and per long-poll) looked free but was not: a cancelled
/// `Task.sleep` leaves its Dispatch timer queued until the original deadline, so a worker settling
/// 500 batches a second with a 20 s statement bound kept some 60,000 dead timers alive (its RSS
/// grew from 42 MB to 77 MB over a 15 s benchmark cell at batch size 1), and the API one per
/// long-poll and per intake group. Deadlines here fire up to ``tick`` late, which no bound in
/// Boxoffice (seconds) notices.
public final class DeadlineClock: Sendable {
    public static let shared = DeadlineClock()

    /// How often pending deadlines are checked.
    public static let tick: Duration = .milliseconds(20)

    private struct Entry {
        let deadline: ContinuousClock.Instant
        let expire: @Sendable () -> Void
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var nextID = 0
        var ticking = false
    }

    private let state = Mutex(State())

    /// Calls `expire` once `deadline` has passed, unless ``cancel(_:)`` comes first. Returns the
    /// registration to cancel.
    public func register(deadline: ContinuousClock.Instant, expire: @escaping @Sendable () -> Void) -> Int {
        let (id, startTicking) = state.withLock { state in
            state.nextID += 1
            state.entries[state.nextID] = Entry(deadline: deadline, expire: expire)
            defer { state.ticking = true }
            return (state.nextID, !state.ticking)
        }
        if startTicking { Task.detached { await self.tickWhilePending() } }
        return id
    }

    public func cancel(_ id: Int) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Pending registrations (for tests).
    public var pending: Int { state.withLock { $0.entries.count } }

    private func tickWhilePending() async {
        while true {
            try? await Task.sleep(for: Self.tick)
            let now = ContinuousClock.now
            let due: [@Sendable () -> Void]? = state.withLock { state in
                let expired = state.entries.filter { $0.value.deadline <= now }
                for id in expired.keys { state.entries[id] = nil }
                if expired.isEmpty && state.entries.isEmpty {
                    state.ticking = false
                    return nil
                }
                return expired.values.map(\.expire)
            }
            guard let due else { return }
            for expire in due { expire() }
        }
    }
}
