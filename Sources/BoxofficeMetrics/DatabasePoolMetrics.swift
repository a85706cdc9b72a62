import BoxofficeStore
import CoreMetrics
import Metrics
import Synchronization

/// One process's PostgreSQL connection pool as the Store leases it (``ConnectionLeaseObserver``), labelled
/// by `pool`: `api` (serve), `worker` (the batch and LISTEN connections), `sweep` (the key sweep's own
/// connection). Saturation reads as `in_use` near `max` with `lease_waiting` > 0 and a lease-wait
/// histogram whose tail grows; the API then answers 503 once a request's `--database-wait-milliseconds` passes
/// (counted in `boxoffice_db_lease_failures_total`).
///
/// The two gauges are read from atomics at scrape time (a ``MetricsRefresher``): recording them on each
/// change from many threads could land out of order and leave a stale value standing.
public final class DatabasePoolMetrics: ConnectionLeaseObserver, MetricsRefresher {
    let inUse = Atomic<Int>(0)
    let waiting = Atomic<Int>(0)
    let inUseGauge: Gauge
    let waitingGauge: Gauge
    let wait: Metrics.Timer
    let failures: Counter

    /// The `pool` label: which of a process's pools.
    public enum Pool: String, Sendable {
        case api, worker, sweep
    }

    /// `connectionsMax`: the pool's bound (`DatabaseConfiguration.connectionsMax`), exported once as
    /// `boxoffice_db_connections_max`.
    public init(_ metrics: BoxofficeMetrics, pool: Pool, connectionsMax: Int) {
        typealias Names = BoxofficeMetrics.Names
        let label = [("pool", pool.rawValue)]
        let factory = metrics.factory
        Gauge(label: Names.databaseConnectionsMax, dimensions: label, factory: factory).record(connectionsMax)
        inUseGauge = Gauge(label: Names.databaseConnectionsInUse, dimensions: label, factory: factory)
        waitingGauge = Gauge(label: Names.databaseLeaseWaiting, dimensions: label, factory: factory)
        wait = Metrics.Timer(label: Names.databaseLeaseWait, dimensions: label, preferredDisplayUnit: .seconds, factory: factory)
        failures = Counter(label: Names.databaseLeaseFailures, dimensions: label, factory: factory)
        metrics.add(self)
    }

    public func refresh() async {
        inUseGauge.record(inUse.load(ordering: .relaxed))
        waitingGauge.record(waiting.load(ordering: .relaxed))
    }

    public func leaseRequested() {
        waiting.add(1, ordering: .relaxed)
    }

    public func leaseGranted(waited: Duration) {
        waiting.subtract(1, ordering: .relaxed)
        inUse.add(1, ordering: .relaxed)
        wait.recordNanoseconds(Int64(waited.seconds * 1e9))
    }

    /// The wait of an abandoned lease goes into the same histogram: its tail is where saturation shows.
    public func leaseAbandoned(waited: Duration) {
        waiting.subtract(1, ordering: .relaxed)
        failures.increment()
        wait.recordNanoseconds(Int64(waited.seconds * 1e9))
    }

    public func leaseReturned() {
        inUse.subtract(1, ordering: .relaxed)
    }
}
