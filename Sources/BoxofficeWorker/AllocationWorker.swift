import BoxofficeConcurrency
import BoxofficeCore
import BoxofficeMetrics
import BoxofficeStore
import Histogram
import Logging
import ServiceLifecycle
import Synchronization

/// One worker: claims a batch of one event's intents, lets the allocator decide it, settles it, repeats.
///
/// Here that unit of work is a *claim* (a claimed batch: the intents one transaction claims, decides and
/// settles), never the API's intake group or a bulk intake request. Log lines and their keys keep the
/// word `batch` (`settled batch`, `batches`, `batch_p99_us`): operators and the benchmark read them.
/// It sleeps only when no event has work, and wakes on the intake NOTIFY or, failing that, a poll.
/// On graceful shutdown (SIGTERM) it finishes the claim in hand and takes no new one.
public final class AllocationWorker: Service, Sendable {
    public struct Configuration: Sendable {
        /// Intents claimed and settled per transaction: the size of a full claim (`--batch-size`).
        public var batchSizeMax = 512
        /// Longest sleep when idle before looking again without a notification.
        public var pollInterval: Duration = .milliseconds(250)
        /// Pause after a claim smaller than ``smallClaim`` (or a wake-up from idle) before claiming again.
        ///
        /// When intake trickles in, claiming at once settles a handful of intents per transaction, and
        /// each transaction costs the same 5–6 round trips and one commit whatever its size (and wakes
        /// every long-poll of the event). A few milliseconds of patience make claims several times
        /// larger at the price of that much outcome latency. Zero claims at once.
        public var linger: Duration = .milliseconds(5)
        /// Claims smaller than this are followed by ``linger``.
        public var smallClaim = 64
        /// Idle within ``hotPeriod`` of its last claim, a worker looks again this often instead of
        /// every ``pollInterval``: intake sends at most one NOTIFY per 10 ms per API process, so a
        /// group that commits just after a look is found by the next one, not 250 ms later.
        public var hotPollInterval: Duration = .milliseconds(10)
        /// How long a claim hint (the largest intent id this worker settled for an event) is used before
        /// a claim scans the event's whole queue again, for intents committed late with a smaller id:
        /// the longest such an intent waits behind later ones.
        public var claimHintLifetime: Duration = .milliseconds(250)
        public var hotPeriod: Duration = .seconds(1)
        /// Use LISTEN/NOTIFY; off behind a transaction-mode pooler.
        public var listen = true
        /// Upper bound of the back-off after a failed claim (the database down, a timeout).
        public var errorBackoffMax: Duration = .seconds(5)
        /// Failures of one event's claims, in a row, at one claim size before that event's claims are
        /// halved (down to 1); at a claim size of 1, before the one intent claimed is quarantined. Only
        /// failures the claim may cause itself count (``BatchFailure/mayBeTheBatch``: data errors,
        /// statement timeouts); a database that is away is backed off, never quarantined for.
        /// From 512, a claim that always fails takes 2 × 10 failures to shrink to 1 and 2 more to
        /// quarantine its intent.
        public var failuresPerClaimSize = 2
        /// Pause after such a failure before the retry: the database answered, so no growing back-off.
        public var faultRetryPause: Duration = .milliseconds(50)
        /// Events whose claims this worker keeps shrunk at once; past it the oldest strain is forgotten
        /// (that event starts again from full claims).
        public var strainedEventsMax = 1_000
        /// Intents of one event this worker quarantines, at most, while it runs. So many intents failing
        /// even alone point at the event (say, its inventory row refusing every sale), not at its intents:
        /// past the bound the event is deferred (``eventDeferMin``) and its failures backed off, and
        /// logged as errors, instead of rejecting its buyers one by one.
        public var quarantinesPerEventMax = 16
        /// An event whose batch the database refused for a reason of the event's own
        /// (``BatchFailure/isTheEventsOwn``: its seat rows disagree with its inventory, a constraint, a
        /// statement timeout) is **deferred**: this worker picks it only when no other event has work,
        /// for this long, doubling per failure up to ``eventDeferMax`` (a failure in the quarantine
        /// ladder defers it without doubling), back to normal once it settles a batch or has not failed
        /// for as long again. Events are picked least recently served first and a failed batch serves
        /// nothing, so without it one broken event would be every worker's next pick, and every other
        /// sale would wait behind it. Deferring never idles a worker: a lone event is retried at once,
        /// within the usual back-off.
        public var eventDeferMin: Duration = .milliseconds(500)
        public var eventDeferMax: Duration = .seconds(30)
        /// A lone intent whose failures are statement timeouts is quarantined only once its event has
        /// been failing this long: a timeout may be the database stalling (I/O, a lock elsewhere), not
        /// the intent, and a healthy buyer must not be rejected for a minute of trouble. Data errors,
        /// which a healthy intent never causes, need no such wait.
        public var timeoutQuarantineAfter: Duration = .seconds(120)

        public init() {}
    }

    /// Totals since start, for logs, `work` summaries and the benchmark.
    public struct Totals: Sendable {
        public var claims = 0
        public var intents = 0
        public var confirmed = 0
        public var rejected = 0
        public var ticketsSold = 0
        public var failedClaims = 0
        /// Intents set aside: invalid rows rejected at claim time, and intents quarantined alone.
        public var quarantined = 0
        /// Wall time of each settled claim (claim to commit), microseconds.
        public var claimMicroseconds = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let doorbell = Doorbell()
    let totalsState = Mutex(Totals())
    /// Recorded where the totals are; nil records nothing.
    let metrics: WorkerMetrics?

    public init(store: Store, configuration: Configuration = .init(), logger: Logger, metrics: WorkerMetrics? = nil) {
        precondition(configuration.batchSizeMax >= 1 && configuration.batchSizeMax <= 100_000, "batch size out of bounds")
        precondition(
            configuration.failuresPerClaimSize >= 1 && configuration.strainedEventsMax >= 1 && configuration.quarantinesPerEventMax >= 0
                && configuration.eventDeferMin > .zero && configuration.eventDeferMax >= configuration.eventDeferMin,
            "strain bounds out of range")
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
    }

    public var totals: Totals { totalsState.withLock { $0 } }

    public func run() async throws {
        metrics?.setRunning(true)
        defer { metrics?.setRunning(false) }
        await withDiscardingTaskGroup { group in
            if configuration.listen {
                group.addTask { await self.listenForIntents() }
            }
            await allocateUntilShutdown()
            group.cancelAll()
        }
        let totals = self.totals
        logger.info(
            "worker stopped",
            metadata: [
                "batches": "\(totals.claims)", "intents": "\(totals.intents)", "confirmed": "\(totals.confirmed)",
                "rejected": "\(totals.rejected)", "quarantined": "\(totals.quarantined)", "tickets_sold": "\(totals.ticketsSold)",
                "batch_p50_us": "\(totals.claimMicroseconds.valueAtPercentile(50))",
                "batch_p99_us": "\(totals.claimMicroseconds.valueAtPercentile(99))",
                "batch_max_us": "\(totals.claimMicroseconds.max)",
            ])
    }

    /// The loop. Never interrupted in the middle of a claim, by a graceful shutdown or by cancellation: only
    /// the idle wait and the pauses are.
    func allocateUntilShutdown() async {
        var backoff = Duration.milliseconds(50)
        var lastClaim = ContinuousClock.now - configuration.hotPeriod
        var strains: [EventID: Strain] = [:]
        // Per event: the largest intent id this worker settled, and when it last claimed without a hint.
        var hints: [EventID: (after: Int64, since: ContinuousClock.Instant)] = [:]
        // Intents this worker quarantined per event; at most strainedEventsMax events are remembered.
        var quarantinesByEvent: [EventID: Int] = [:]
        var deferred = DeferredEvents(
            minimum: configuration.eventDeferMin, maximum: configuration.eventDeferMax, eventsMax: configuration.strainedEventsMax)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let started = ContinuousClock.now
                // A claim runs to its commit or rollback even when this task is cancelled (an unstructured task
                // does not inherit cancellation): a query cancelled midway takes its pooled connection down with it,
                // and every statement of a claim is bounded by statement_timeout anyway.
                let (store, batchSizeMax, claimSizes) = (store, configuration.batchSizeMax, strains.mapValues(\.claimSizeMax))
                let fresh = hints.filter { started - $0.value.since < configuration.claimHintLifetime }
                let claimAfter = fresh.mapValues(\.after)
                let deferring = deferred.events(at: started)
                metrics?.setEventsDeferred(deferring.count)
                let report = try await Task {
                    try await store.allocateNextBatch(
                        batchSizeMax: batchSizeMax, claimSizeMaxByEvent: claimSizes, claimAfterByEvent: claimAfter, deferring: deferring
                    ) { inventory, claimed in
                        Allocator.allocate(claimed, from: &inventory)
                    }
                }.value
                backoff = .milliseconds(50)
                guard let report else {
                    let hot = ContinuousClock.now - lastClaim < configuration.hotPeriod
                    let wait = hot ? min(configuration.hotPollInterval, configuration.pollInterval) : configuration.pollInterval
                    await cancelWhenGracefulShutdown { await self.doorbell.wait(timeout: wait) }
                    if !hot { await linger() }
                    continue
                }
                lastClaim = .now
                if deferred.settled(report.eventID) {
                    logger.notice("a deferred event settled a batch again; it is picked as any other", metadata: ["event": "\(report.eventID)"])
                }
                if report.intents > 0 {
                    let since = claimAfter[report.eventID] == nil ? started : hints[report.eventID]?.since ?? started
                    hints[report.eventID] = (max(report.intentIDMax, claimAfter[report.eventID] ?? 0), since)
                    if hints.count > configuration.strainedEventsMax {
                        hints = hints.filter { started - $0.value.since < configuration.claimHintLifetime }
                    }
                }
                let elapsed = (ContinuousClock.now - started).components
                let microseconds = UInt64(elapsed.seconds) * 1_000_000 + UInt64(elapsed.attoseconds / 1_000_000_000_000)
                totalsState.withLock { totals in
                    _ = totals.claimMicroseconds.record(microseconds)
                    totals.claims += 1
                    totals.intents += report.intents
                    totals.confirmed += report.confirmed
                    totals.rejected += report.rejected
                    totals.quarantined += report.quarantined
                    totals.ticketsSold += report.ticketsSold
                }
                metrics?.settled(report, duration: .now - started)
                if report.quarantined > 0 {
                    logger.warning(
                        "rejected queued rows that make no request (invalid_request); see the quarantine table",
                        metadata: [
                            "event": "\(report.eventID)", "quarantined": "\(report.quarantined)",
                        ])
                }
                if var strain = strains[report.eventID] {
                    if report.intentIDMax >= strain.suspectIntentIDMax {
                        strains[report.eventID] = nil
                        logger.info(
                            "event's claims back to full size: the failing batch has been worked through", metadata: ["event": "\(report.eventID)"])
                    } else {
                        strain.failuresAtSize = 0
                        strains[report.eventID] = strain
                    }
                }
                logger.debug(
                    "settled batch",
                    metadata: [
                        "event": "\(report.eventID)", "intents": "\(report.intents)", "confirmed": "\(report.confirmed)",
                        "rejected": "\(report.rejected)", "tickets_sold": "\(report.ticketsSold)",
                    ])
                // After the claim is timed: the pause is not part of the claim.
                if report.intents < min(configuration.smallClaim, configuration.batchSizeMax) { await linger() }
            } catch let failure as BatchFailure
                where failure.mayBeTheBatch && quarantinesByEvent[failure.eventID, default: 0] < configuration.quarantinesPerEventMax
            {
                totalsState.withLock { $0.failedClaims += 1 }
                metrics?.failed()
                if await strain(failure, in: &strains) {
                    quarantinesByEvent[failure.eventID, default: 0] += 1
                    if quarantinesByEvent[failure.eventID, default: 0] == configuration.quarantinesPerEventMax {
                        logger.error(
                            "quarantine bound reached for the event: its failing batches are now deferred and backed off, not split; check the event's inventory and seat rows",
                            metadata: [
                                "event": "\(failure.eventID)", "quarantined": "\(configuration.quarantinesPerEventMax)",
                            ])
                    }
                    if quarantinesByEvent.count > configuration.strainedEventsMax,
                        let least = quarantinesByEvent.min(by: { $0.value < $1.value })?.key
                    {
                        quarantinesByEvent[least] = nil
                    }
                }
                // Between the ladder's steps the worker serves the other events (the strain is kept).
                deferred.defer(failure.eventID, doubling: false)
                let pause = configuration.faultRetryPause
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            } catch let failure as BatchFailure where failure.isTheEventsOwn {
                totalsState.withLock { $0.failedClaims += 1 }
                metrics?.failed()
                let span = deferred.defer(failure.eventID, doubling: true)
                logger.error(
                    "the database refused the event's batch; its intents stay queued, and other events with work are picked before it for a while",
                    metadata: [
                        "event": "\(failure.eventID)", "error": "\(describeDatabaseError(failure.underlying))", "deferred_for": "\(span)",
                        "retry_in": "\(backoff)",
                    ])
                // Backed off as any failure: when the event is the only one with work, it is what the worker picks next.
                let pause = backoff
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                backoff = min(backoff * 2, configuration.errorBackoffMax)
            } catch {
                totalsState.withLock { $0.failedClaims += 1 }
                metrics?.failed()
                logger.warning(
                    "batch failed and was rolled back; its intents will be claimed again",
                    metadata: [
                        "error": "\((error as? BatchFailure).map { describeDatabaseError($0.underlying) } ?? describeDatabaseError(error))",
                        "retry_in": "\(backoff)",
                    ])
                let pause = backoff
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                backoff = min(backoff * 2, configuration.errorBackoffMax)
            }
        }
    }

    private func linger() async {
        guard configuration.linger > .zero else { return }
        let pause = configuration.linger
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
    }

    private func listenForIntents() async {
        await listenUntilCancelled {
            try await self.store.listen(on: Store.intentsChannel) { _ in self.doorbell.ring() }
        } connectionLost: { error, retryIn in
            self.logger.info(
                "intake LISTEN connection lost; polling until it is back",
                metadata: [
                    "error": "\(describeDatabaseError(error))", "retry_in": "\(retryIn)",
                ])
        }
    }
}
