import Synchronization

/// A bounded wait that ran out: ``withTimeout(_:_:)`` gave up after `duration`.
public struct TimeoutError: Error, CustomStringConvertible {
    public let duration: Duration
    public var description: String { "timed out after \(duration)" }
}

/// Runs `body`, or throws ``TimeoutError`` once `duration` passes: bounds every wait on the network.
///
/// The caller is released when the time is up even if `body` ignores cancellation: `body` runs in
/// its own task, which is cancelled and left to finish alone. That matters here because PostgresNIO
/// (1.33) never completes a statement written to a connection that has just closed (the write is
/// sent without a promise), and such a statement does not answer cancellation either.
public func withTimeout<T: Sendable>(_ duration: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = TimeoutRace<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation, duration: duration, body: body)
        }
    } onCancel: {
        race.finish(.failure(CancellationError()))
    }
}

/// The first of `body`'s result, the deadline (``DeadlineClock``) and the caller's cancellation wins;
/// the others are dropped.
private final class TimeoutRace<T: Sendable>: Sendable {
    struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var finished = false
        var work: Task<Void, Never>?
        var timer: Int?
    }

    let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>, duration: Duration, body: @escaping @Sendable () async throws -> T) {
        let early = state.withLock { state -> Result<T, any Error>? in
            if let early = state.early { return early }
            state.continuation = continuation
            return nil
        }
        if let early { return continuation.resume(with: early) }
        let timer = DeadlineClock.shared.register(deadline: .now + duration) {
            self.finish(.failure(TimeoutError(duration: duration)))
        }
        let work = Task {
            do { self.finish(.success(try await body())) } catch { self.finish(.failure(error)) }
        }
        let late = state.withLock { state -> Bool in
            if state.finished { return true }
            state.work = work
            state.timer = timer
            return false
        }
        if late {
            work.cancel()
            DeadlineClock.shared.cancel(timer)
        }
    }

    func finish(_ result: Result<T, any Error>) {
        let winner = state.withLock { state -> (CheckedContinuation<T, any Error>, Task<Void, Never>?, Int?)? in
            if state.finished { return nil }
            state.finished = true
            guard let continuation = state.continuation else {
                state.early = result  // cancelled before it started
                return nil
            }
            state.continuation = nil
            defer {
                state.work = nil
                state.timer = nil
            }
            return (continuation, state.work, state.timer)
        }
        guard let (continuation, work, timer) = winner else { return }
        continuation.resume(with: result)
        work?.cancel()
        if let timer { DeadlineClock.shared.cancel(timer) }
    }
}
