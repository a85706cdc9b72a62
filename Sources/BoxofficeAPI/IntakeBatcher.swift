import BoxofficeStore
import Logging
import ServiceLifecycle
import Synchronization

/// Group commit for intake: concurrent requests wait here and are written by a few flushers, each
/// taking everything queued so far (up to `batchSizeMax`) into one INSERT.
///
/// No timer is involved: while one flush is in flight the next group forms, so a quiet server writes
/// each intent at once and a busy one writes hundreds per fsync. A request is answered only after
/// the statement holding its row has committed.
public final class IntakeBatcher: Service, Sendable {
    public struct Configuration: Sendable {
        /// Rows per INSERT at most.
        public var batchSizeMax = 1_000
        /// INSERTs in flight at once (each holds one pooled connection). Two keep one group forming
        /// while the other commits; more only split the waiting requests into smaller groups and more
        /// commits (intents/s measured with wrk, 64 connections: 1 → 17.3k, 2 → 16.1k, 4 → 14.3k, 8 → 11.3k;
        /// 128 connections: 1 → 16.7k, 2 → 18.0k; 256: 1 → 17.3k, 2 → 19.3k).
        public var flushersMax = 2
        /// Requests waiting for a flush at most; past it intake answers 503 instead of queueing in memory.
        public var waitingMax = 20_000
        /// Longest one group INSERT may take (lease included) before its requests get 503; a late commit
        /// of a timed-out group is possible, which is why clients retry with an Idempotency-Key.
        public var writeTimeout: Duration = .seconds(5)
        /// Least time between two groups that NOTIFY the workers. PostgreSQL serializes the commits of
        /// notifying transactions, so a NOTIFY per group throttled intake (11.5–12.4k → 15.5k
        /// intents/s at 64 connections without it, measured with wrk). A busy worker looks again
        /// after every batch, and an idle one polls every ``AllocationWorker`` hot-poll interval for a
        /// second after its last batch, so a group committed between two notifications waits at most that.
        public var notifyIntervalMin: Duration = .milliseconds(10)

        public init() {}
    }

    struct Waiting {
        let draft: IntentDraft
        let continuation: CheckedContinuation<IntakeResult, any Error>
    }

    struct State {
        var waiting: [Waiting] = []
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    public enum BatcherError: Error, Equatable {
        case overloaded
        case stopped
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let state = Mutex(State())
    /// When this process last sent the intake NOTIFY.
    let lastNotify = Mutex<ContinuousClock.Instant?>(nil)

    public init(store: Store, configuration: Configuration = .init(), logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// Queues `draft` for the next group and returns once it is committed (or the group failed).
    public func submit(_ draft: IntentDraft) async throws -> IntakeResult {
        try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<CheckedContinuation<Void, Never>?, BatcherError> = state.withLock { state in
                if state.stopped { return .failure(.stopped) }
                if state.waiting.count >= configuration.waitingMax { return .failure(.overloaded) }
                state.waiting.append(Waiting(draft: draft, continuation: continuation))
                return .success(state.idleFlushers.popLast())
            }
            switch outcome {
            case .failure(let error): continuation.resume(throwing: error)
            case .success(let flusher): flusher?.resume()
            }
        }
    }

    public func run() async throws {
        // Graceful shutdown comes after the HTTP server has drained its requests: the flushers write
        // what is still waiting, then end. Cancellation (a hard stop) ends them at once.
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withDiscardingTaskGroup { group in
                    for _ in 0..<configuration.flushersMax {
                        group.addTask { await self.flushUntilStopped() }
                    }
                }
            } onCancel: {
                self.stop()
            }
        } onGracefulShutdown: {
            self.stop()
        }
        // Whatever arrived after the flushers stopped is refused, never left hanging.
        let stranded = state.withLock { state in
            state.stopped = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for waiting in stranded { waiting.continuation.resume(throwing: BatcherError.stopped) }
    }

    func stop() {
        let flushers = state.withLock { state in
            state.stopped = true
            defer { state.idleFlushers.removeAll() }
            return state.idleFlushers
        }
        for flusher in flushers { flusher.resume() }
    }

    /// True at most once per ``Configuration/notifyIntervalMin``.
    func shouldNotify() -> Bool {
        lastNotify.withLock { last in
            let now = ContinuousClock.now
            if let last, now - last < configuration.notifyIntervalMin { return false }
            last = now
            return true
        }
    }

    private func flushUntilStopped() async {
        while true {
            let (group, stopped): ([Waiting], Bool) = state.withLock { state in
                if state.waiting.count <= configuration.batchSizeMax {
                    defer { state.waiting = [] }
                    return (state.waiting, state.stopped)
                }
                let group = Array(state.waiting.prefix(configuration.batchSizeMax))
                state.waiting.removeFirst(configuration.batchSizeMax)
                return (group, state.stopped)
            }
            if group.isEmpty {
                if stopped { return }
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state in
                        if state.stopped || !state.waiting.isEmpty { return true }
                        state.idleFlushers.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
                continue
            }
            do {
                let drafts = group.map(\.draft)
                let notify = shouldNotify()
                let results = try await withTimeout(configuration.writeTimeout) { try await self.store.enqueue(drafts, notify: notify) }
                for (waiting, result) in zip(group, results) { waiting.continuation.resume(returning: result) }
            } catch {
                logger.warning("intake group failed", metadata: ["intents": "\(group.count)", "error": "\(describeDatabaseError(error))"])
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
