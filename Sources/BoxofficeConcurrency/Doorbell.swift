import Synchronization

/// A one-consumer wake-up signal with a bounded wait: NOTIFY handlers ring it, a loop waits on it.
///
/// A ring while nobody waits is remembered (once), so a wake-up between two waits is never lost.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: (id: Int, continuation: CheckedContinuation<Void, Never>)?
        var nextID = 0
        /// A wait whose deadline passed before it parked.
        var released: Int?
    }

    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let waiter = state.withLock { state in
            guard let waiter = state.waiter else {
                state.rung = true
                return nil as CheckedContinuation<Void, Never>?
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Returns when rung (at once if rung since the last wait), when `timeout` passes, or on cancellation.
    /// The timeout is a ``DeadlineClock`` deadline, not a sleeping task per wait.
    public func wait(timeout: Duration) async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let deadline = DeadlineClock.shared.register(deadline: .now + timeout) { self.release(id) }
        defer { DeadlineClock.shared.cancel(deadline) }
        await waitForRing(id)
    }

    /// Resumes wait `id` if it is still the one waiting (its deadline passed, or it was cancelled).
    private func release(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter, waiter.id == id else {
                // The deadline beat the wait to parking: it must not park at all.
                if id == state.nextID { state.released = id }
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    private func waitForRing(_ id: Int) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    if state.released == id { return true }
                    if state.rung || Task.isCancelled {
                        state.rung = false
                        return true
                    }
                    state.waiter = (id, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            release(id)
        }
    }
}
