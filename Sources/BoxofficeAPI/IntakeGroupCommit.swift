import BoxofficeConcurrency
import BoxofficeMetrics
import BoxofficeStore
import Logging
import ServiceLifecycle
import Synchronization

/// Group commit for intake: concurrent requests wait here and are written by a few flushers, each
/// taking everything queued so far (up to `groupSizeMax`) into one INSERT.
///
/// No timer is involved: while one flush is in flight the next group forms, so a quiet server writes
/// each intent at once and a busy one writes hundreds per fsync. A request is answered only after
/// the statement holding its row has committed.
public final class IntakeGroupCommit: Service, Sendable {
    public struct Configuration: Sendable {
        /// Rows per INSERT at most.
        public var groupSizeMax = 1_000
        /// A request with less time than this left when its group is formed is answered 503 and not
        /// written: a group's write is bounded by its earliest deadline, and a sliver of time would
        /// only make a whole group time out (and perhaps commit after its 503s).
        public var writeTimeMin: Duration = .milliseconds(250)
        /// INSERTs in flight at once (each holds one pooled connection). Two keep one group forming
        /// while the other commits; more only split the waiting requests into smaller groups and more
        /// commits (intents/s measured with wrk, 64 connections: 1 → 17.3k, 2 → 16.1k, 4 → 14.3k, 8 → 11.3k;
        /// 128 connections: 1 → 16.7k, 2 → 18.0k; 256: 1 → 17.3k, 2 → 19.3k).
        public var flushersMax = 2
        /// Requests waiting for a flush at most; past it intake answers 503 instead of queueing in memory.
        public var waitingMax = 20_000
        /// After a group fails to be written (the database down, or too slow to answer within the
        /// requests' deadlines), intake refuses at once with 503 for this long instead of queueing
        /// requests that would wait out their whole deadline; then one group tries again.
        public var failFastPeriod: Duration = .seconds(1)
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
        /// When the request must be answered: stamped as it arrived, never extended.
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<IntakeResult, any Error>
    }

    /// What intake believes of the database, from its own last write.
    enum Health {
        case healthy
        /// Refuse at once until `until`; the first request after it writes as the probe.
        case failing(until: ContinuousClock.Instant)
        /// A probe request is queued or in flight: refuse at once until it answers, or until its
        /// deadline (a probe dropped unwritten, say) lets the next request probe instead.
        case probing(until: ContinuousClock.Instant)
    }

    struct State {
        var waiting: [Waiting] = []
        var idleFlushers: [CheckedContinuation<Void, Never>] = []
        var stopped = false
        var health = Health.healthy
    }

    /// Why a request was refused unwritten.
    public enum Refusal: Error, Equatable {
        case overloaded
        case stopped
        /// The request's deadline passed before its group could be written: it was not written.
        case deadlineExceeded
        /// A recent write failed: refused without trying (see ``Configuration/failFastPeriod``).
        case databaseFailing
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let state = Mutex(State())
    let failures: RepeatedLog
    /// When this process last sent the intake NOTIFY.
    let lastNotify = Mutex<ContinuousClock.Instant?>(nil)
    /// Requests by result, group sizes, time to commit; nil records nothing.
    let metrics: IntakeMetrics?

    public init(store: Store, configuration: Configuration = .init(), logger: Logger, metrics: IntakeMetrics? = nil) {
        self.store = store
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        self.failures = RepeatedLog(logger: logger)
    }

    /// Queues `draft` for the next group and returns once it is committed, or throws: at once when
    /// intake is overloaded, stopping or failing fast, else when its group fails or `deadline`
    /// passes. A request whose deadline passes before its group is written is never written.
    public func submit(_ draft: IntentDraft, deadline: ContinuousClock.Instant) async throws -> IntakeResult {
        guard let metrics else { return try await wait(for: draft, deadline: deadline) }
        let started = ContinuousClock.now
        do {
            let result = try await wait(for: draft, deadline: deadline)
            switch result {
            case .accepted: metrics.answered(.accepted, waited: .now - started)
            case .replayed: metrics.answered(.replayed, waited: .now - started)
            case .keyReused: metrics.answered(.keyReused)
            }
            return result
        } catch let refusal as Refusal {
            switch refusal {
            case .overloaded: metrics.answered(.overloaded)
            case .stopped: metrics.answered(.shuttingDown)
            case .deadlineExceeded, .databaseFailing: metrics.answered(.unavailable)
            }
            throw refusal
        } catch {
            metrics.answered(.failed)
            throw error
        }
    }

    private func wait(for draft: IntentDraft, deadline: ContinuousClock.Instant) async throws -> IntakeResult {
        try await withCheckedThrowingContinuation { continuation in
            let outcome: Result<CheckedContinuation<Void, Never>?, Refusal> = state.withLock { state in
                if state.stopped { return .failure(.stopped) }
                if state.waiting.count >= configuration.waitingMax { return .failure(.overloaded) }
                switch state.health {
                case .healthy: break
                case .probing(let until), .failing(let until):
                    if ContinuousClock.now < until { return .failure(.databaseFailing) }
                    state.health = .probing(until: deadline)
                }
                state.waiting.append(Waiting(draft: draft, deadline: deadline, continuation: continuation))
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
        refuseWaiting(.stopped) { $0.stopped = true }
    }

    /// Answers every request still waiting with `error` (nothing of theirs is written), after `update`
    /// changes the state under the same lock, so no request slips in between.
    private func refuseWaiting(_ error: Refusal, update: (inout State) -> Void) {
        let refused = state.withLock { state in
            update(&state)
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for waiting in refused { waiting.continuation.resume(throwing: error) }
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
            let now = ContinuousClock.now
            let (taken, stopped): ([Waiting], Bool) = state.withLock { state in
                if state.waiting.count <= configuration.groupSizeMax {
                    defer { state.waiting = [] }
                    return (state.waiting, state.stopped)
                }
                let group = Array(state.waiting.prefix(configuration.groupSizeMax))
                state.waiting.removeFirst(configuration.groupSizeMax)
                return (group, state.stopped)
            }
            // Requests whose deadline has (all but) passed while they waited are answered now and never written.
            let cutoff = now + configuration.writeTimeMin
            let expired = taken.filter { $0.deadline <= cutoff }
            for waiting in expired { waiting.continuation.resume(throwing: Refusal.deadlineExceeded) }
            let group = expired.isEmpty ? taken : taken.filter { $0.deadline > cutoff }
            if group.isEmpty {
                if !taken.isEmpty { continue }
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
            // The group is bounded by its earliest deadline, so every request in it is answered by its
            // own; the statement itself also checks that deadline before it is sent (see Store.enqueue).
            let deadline = group.lazy.map(\.deadline).min()!
            do {
                let drafts = group.map(\.draft)
                let notify = shouldNotify()
                let results = try await withTimeout(deadline - .now) {
                    try await self.store.enqueue(drafts, notify: notify, sendBefore: deadline)
                }
                state.withLock { $0.health = .healthy }
                metrics?.committedGroup(size: group.count)
                for (waiting, result) in zip(group, results) { waiting.continuation.resume(returning: result) }
            } catch {
                // Requests still waiting would meet the same database: they are answered now, not at their deadlines.
                let failFastPeriod = configuration.failFastPeriod
                refuseWaiting(.databaseFailing) { $0.health = .failing(until: .now + failFastPeriod) }
                failures.log(
                    .warning, key: "intake group failed", "intake group failed; answering 503 at once for \(configuration.failFastPeriod)",
                    metadata: [
                        "intents": "\(group.count)", "error": "\(describeDatabaseError(error))",
                    ])
                for waiting in group { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
