import BoxofficeConcurrency
import BoxofficeCore
import BoxofficeStore
import CoreMetrics
import Metrics
import Synchronization

/// `boxoffice_queue_depth{event}`: queued intents per event with work, read at scrape time with one
/// statement whose cost follows the number of events with work, never the queue's length (see
/// ``Store/queueDepths()``, at most `Store.queueDepthEventsMax` events), and cached for ``cacheFor``, so scraping more often (or from
/// several Prometheus servers) costs the database no more than one statement per period.
/// Events whose queue emptied are reported as 0.
public final class QueueDepthRefresher: MetricsRefresher {
    let store: Store
    let cacheFor: Duration
    let factory: any MetricsFactory
    let events: Gauge
    let failures: Counter
    struct State {
        var refreshedAt: ContinuousClock.Instant?
        var refreshing = false
        var gauges: [EventID: Gauge] = [:]
    }
    let state = Mutex(State())

    /// Longest a scrape waits for the read (a database that is down never holds a scrape; the gauges
    /// keep their last values and ``BoxofficeMetrics/Names/queueDepthScrapeFailures`` counts it).
    let readTimeout: Duration

    public init(store: Store, metrics: BoxofficeMetrics, cacheFor: Duration = .seconds(1), readTimeout: Duration = .seconds(2)) {
        self.store = store
        self.cacheFor = cacheFor
        self.readTimeout = readTimeout
        self.factory = metrics.factory
        events = Gauge(label: BoxofficeMetrics.Names.queueDepthEvents, factory: metrics.factory)
        failures = Counter(label: BoxofficeMetrics.Names.queueDepthScrapeFailures, factory: metrics.factory)
    }

    public func refresh() async {
        let now = ContinuousClock.now
        let due = state.withLock { state -> Bool in
            if state.refreshing { return false }
            if let at = state.refreshedAt, now - at < cacheFor { return false }
            state.refreshing = true
            return true
        }
        guard due else { return }
        let depths: [(EventID, Int)]?
        do {
            let store = self.store
            depths = try await withTimeout(readTimeout) { try await store.queueDepths() }
        } catch {
            depths = nil
            failures.increment()
        }
        state.withLock { state in
            state.refreshing = false
            state.refreshedAt = .now
            guard let depths else { return }
            var seen = Set<EventID>()
            for (event, depth) in depths {
                seen.insert(event)
                let gauge =
                    state.gauges[event]
                    ?? Gauge(label: BoxofficeMetrics.Names.queueDepth, dimensions: [("event", "\(event)")], factory: factory)
                state.gauges[event] = gauge
                gauge.record(depth)
            }
            for (event, gauge) in state.gauges where !seen.contains(event) { gauge.record(0) }
            events.record(depths.count)
        }
    }
}
