import BoxofficeCore
import BoxofficeStore
import Histogram
import Logging
import ServiceLifecycle
import Synchronization

/// One worker: claims a batch, lets the allocator decide it, settles it, repeats.
///
/// It sleeps only when no event has work, and wakes on the intake NOTIFY or, failing that, a poll.
/// On graceful shutdown (SIGTERM) it finishes the batch in hand and takes no new one.
public final class AllocationWorker: Service, Sendable {
    public struct Configuration: Sendable {
        /// Intents claimed and settled per transaction.
        public var batchSizeMax = 512
        /// Longest sleep when idle before looking again without a notification.
        public var pollInterval: Duration = .milliseconds(250)
        /// Pause after a batch smaller than ``smallBatch`` (or a wake-up from idle) before claiming again.
        ///
        /// When intake trickles in, claiming at once settles a handful of intents per transaction, and
        /// each transaction costs the same 5–6 round trips and one commit whatever its size (and wakes
        /// every long-poll of the event). A few milliseconds of patience make batches several times
        /// larger at the price of that much outcome latency. Zero claims at once.
        public var linger: Duration = .milliseconds(5)
        /// Batches smaller than this are followed by ``linger``.
        public var smallBatch = 64
        /// Idle within ``hotPeriod`` of its last batch, a worker looks again this often instead of
        /// every ``pollInterval``: intake sends at most one NOTIFY per 10 ms per API process, so a
        /// group that commits just after a look is found by the next one, not 250 ms later.
        public var hotPollInterval: Duration = .milliseconds(10)
        public var hotPeriod: Duration = .seconds(1)
        /// Use LISTEN/NOTIFY; off behind a transaction-mode pooler.
        public var listen = true
        /// Upper bound of the back-off after a failed batch (the database down, a timeout).
        public var errorBackoffMax: Duration = .seconds(5)

        public init() {}
    }

    /// Totals since start, for logs, `work` summaries and the benchmark.
    public struct Totals: Sendable {
        public var batches = 0
        public var intents = 0
        public var confirmed = 0
        public var rejected = 0
        public var ticketsSold = 0
        public var failedBatches = 0
        /// Wall time of each settled batch (claim to commit), microseconds.
        public var batchMicroseconds = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let doorbell = Doorbell()
    let totalsState = Mutex(Totals())

    public init(store: Store, configuration: Configuration = .init(), logger: Logger) {
        precondition(configuration.batchSizeMax >= 1 && configuration.batchSizeMax <= 100_000, "batch size out of bounds")
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    public var totals: Totals { totalsState.withLock { $0 } }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            if configuration.listen {
                group.addTask { await self.listenForIntents() }
            }
            await allocateUntilShutdown()
            group.cancelAll()
        }
        let totals = self.totals
        logger.info("worker stopped", metadata: [
            "batches": "\(totals.batches)", "intents": "\(totals.intents)", "confirmed": "\(totals.confirmed)",
            "rejected": "\(totals.rejected)", "tickets_sold": "\(totals.ticketsSold)",
            "batch_p50_us": "\(totals.batchMicroseconds.valueAtPercentile(50))",
            "batch_p99_us": "\(totals.batchMicroseconds.valueAtPercentile(99))",
            "batch_max_us": "\(totals.batchMicroseconds.max)",
        ])
    }

    /// The loop. Never cancelled in the middle of a batch by a graceful shutdown: only the idle wait is.
    func allocateUntilShutdown() async {
        var backoff = Duration.milliseconds(50)
        var lastBatch = ContinuousClock.now - configuration.hotPeriod
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let started = ContinuousClock.now
                let report = try await store.allocateNextBatch(batchSizeMax: configuration.batchSizeMax) { inventory, batch in
                    Allocator.allocate(batch, from: &inventory)
                }
                backoff = .milliseconds(50)
                guard let report else {
                    let hot = ContinuousClock.now - lastBatch < configuration.hotPeriod
                    let wait = hot ? min(configuration.hotPollInterval, configuration.pollInterval) : configuration.pollInterval
                    await cancelWhenGracefulShutdown { await self.doorbell.wait(timeout: wait) }
                    if !hot { await linger() }
                    continue
                }
                lastBatch = .now
                let elapsed = (ContinuousClock.now - started).components
                let microseconds = UInt64(elapsed.seconds) * 1_000_000 + UInt64(elapsed.attoseconds / 1_000_000_000_000)
                totalsState.withLock { totals in
                    _ = totals.batchMicroseconds.record(microseconds)
                    totals.batches += 1
                    totals.intents += report.intents
                    totals.confirmed += report.confirmed
                    totals.rejected += report.rejected
                    totals.ticketsSold += report.ticketsSold
                }
                logger.debug("settled batch", metadata: [
                    "event": "\(report.eventID)", "intents": "\(report.intents)", "confirmed": "\(report.confirmed)",
                    "rejected": "\(report.rejected)", "tickets_sold": "\(report.ticketsSold)",
                ])
                // After the batch is timed: the pause is not part of the batch.
                if report.intents < min(configuration.smallBatch, configuration.batchSizeMax) { await linger() }
            } catch {
                totalsState.withLock { $0.failedBatches += 1 }
                logger.warning("batch failed and was rolled back; its intents will be claimed again", metadata: [
                    "error": "\(describeDatabaseError(error))", "retry_in": "\(backoff)",
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
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await store.listen(on: Store.intentsChannel) { _ in self.doorbell.ring() }
            } catch {
                if Task.isCancelled { return }
                logger.info("intake LISTEN connection lost; polling until it is back", metadata: ["error": "\(describeDatabaseError(error))"])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}
