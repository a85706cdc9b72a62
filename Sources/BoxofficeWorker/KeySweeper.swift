import BoxofficeMetrics
import BoxofficeStore
import Logging
import ServiceLifecycle

/// Deletes expired Idempotency-Keys in bounded batches, every ``Configuration/interval`` (jittered):
/// a maintenance service of `boxoffice work`, apart from the allocation loop and on a connection of
/// its own, so a sweep never delays a claim.
///
/// Intake already treats an expired key as absent; the sweep only reclaims the space. Each batch is
/// one short statement that locks its rows `SKIP LOCKED`, so any number of workers sweep at once
/// without waiting for each other or deleting a row twice. A key is deleted at most one interval (plus
/// jitter and the sweep's own time) after it expired.
public struct KeySweeper: Service {
    public struct Configuration: Sendable {
        /// Time between two sweeps, before jitter.
        public var interval: Duration = .seconds(60)
        /// Each wait is drawn from `interval` × [1 − jitter, 1 + jitter], so workers started together
        /// do not sweep together.
        public var jitter = 0.2
        /// Keys per statement. A sweep repeats statements until one comes back short.
        public var batchSize = Retention.keySweepBatchSizeDefault

        public init() {}
    }

    let store: Store
    let configuration: Configuration
    let logger: Logger
    let metrics: RetentionMetrics?
    let failures: RepeatedLog

    public init(store: Store, configuration: Configuration = .init(), logger: Logger, metrics: RetentionMetrics? = nil) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.failures = RepeatedLog(logger: logger)
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait = configuration.interval * Double.random(in: (1 - configuration.jitter)...(1 + configuration.jitter))
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            await sweep()
        }
    }

    /// One sweep: batches until one deletes fewer than ``Configuration/batchSize`` keys (none left
    /// expired, or the rest locked by another sweeper) or a statement fails. Returns the keys deleted.
    @discardableResult
    public func sweep() async -> Int {
        var total = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let deleted = try await store.sweepExpiredKeys(limit: configuration.batchSize)
                total += deleted
                metrics?.swept(deleted)
                if deleted < configuration.batchSize { break }
            } catch {
                metrics?.failed()
                failures.log(
                    .warning, key: "sweep", "idempotency key sweep failed; retried at the next sweep",
                    metadata: ["error": "\(describeDatabaseError(error))"])
                break
            }
        }
        if total > 0 { logger.debug("expired idempotency keys deleted", metadata: ["keys": "\(total)"]) }
        return total
    }
}
