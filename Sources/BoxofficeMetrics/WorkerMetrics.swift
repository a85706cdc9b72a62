import CoreMetrics
import Foundation
import Metrics
import Synchronization

/// What a worker records per claim (claimed batch), beside its `totals`.
public final class WorkerMetrics: Sendable {
    let claims: Counter
    let claimFailures: Counter
    let claimDuration: Metrics.Timer
    let claimIntents: Recorder
    let confirmed: Counter
    let ticketsSold: Counter
    let ticketsHeld: Counter
    let holdsExpired: Counter
    /// Tickets returned, by how: released, expired, cancelled.
    let ticketsReturned: [Counter]
    let decisionLatency: Metrics.Timer
    let lastClaim: Gauge
    let running: Gauge
    let eventsDeferred: Gauge
    let factory: any MetricsFactory
    /// Rejections by reason; reasons are the allocator's and the Store's words, a short fixed list.
    let rejected = Mutex<[String: Counter]>([:])

    public init(_ metrics: BoxofficeMetrics) {
        let factory = metrics.factory
        typealias Names = BoxofficeMetrics.Names
        self.factory = factory
        claims = Counter(label: Names.claims, factory: factory)
        claimFailures = Counter(label: Names.claimFailures, factory: factory)
        claimDuration = Metrics.Timer(label: Names.claimDuration, preferredDisplayUnit: .seconds, factory: factory)
        claimIntents = Recorder(label: Names.claimIntents, aggregate: true, factory: factory)
        confirmed = Counter(label: Names.decisions, dimensions: [("status", "confirmed"), ("reason", "")], factory: factory)
        ticketsSold = Counter(label: Names.ticketsSold, factory: factory)
        ticketsHeld = Counter(label: Names.ticketsHeld, factory: factory)
        holdsExpired = Counter(label: Names.holdsExpired, factory: factory)
        ticketsReturned = ["released", "expired", "cancelled"].map {
            Counter(label: Names.ticketsReturned, dimensions: [("how", $0)], factory: factory)
        }
        decisionLatency = Metrics.Timer(label: Names.decisionLatency, preferredDisplayUnit: .seconds, factory: factory)
        lastClaim = Gauge(label: Names.lastClaim, factory: factory)
        running = Gauge(label: Names.workerRunning, factory: factory)
        eventsDeferred = Gauge(label: Names.eventsDeferred, factory: factory)
        eventsDeferred.record(0)
    }

    /// The worker's loop started (1) or stopped (0).
    public func setRunning(_ running: Bool) { self.running.record(running ? 1 : 0) }

    /// What the lifecycle moved in one claim: tickets granted as holds, holds expired, tickets returned
    /// (released, expired, cancelled).
    public struct Lifecycle: Sendable {
        public var ticketsHeld = 0
        public var holdsExpired = 0
        public var released = 0
        public var expired = 0
        public var cancelled = 0

        public init() {}
    }

    /// One claim settled and committed.
    public func settled(
        intents: Int, confirmed: Int, rejectedByReason: [String: Int], ticketsSold: Int, decisionSeconds: [Double], duration: Duration,
        lifecycle: Lifecycle = Lifecycle()
    ) {
        ticketsHeld.increment(by: lifecycle.ticketsHeld)
        holdsExpired.increment(by: lifecycle.holdsExpired)
        for (counter, tickets) in zip(ticketsReturned, [lifecycle.released, lifecycle.expired, lifecycle.cancelled]) where tickets > 0 {
            counter.increment(by: tickets)
        }
        claims.increment()
        claimDuration.recordNanoseconds(Int64(duration.seconds * 1e9))
        claimIntents.record(intents)
        self.confirmed.increment(by: confirmed)
        self.ticketsSold.increment(by: ticketsSold)
        for (reason, count) in rejectedByReason where count > 0 { rejectedCounter(reason).increment(by: count) }
        for seconds in decisionSeconds { decisionLatency.recordNanoseconds(Int64(max(0, seconds) * 1e9)) }
        lastClaim.record(Date().timeIntervalSince1970)
    }

    /// A claim failed and was rolled back.
    public func failed() { claimFailures.increment() }

    /// Events this worker picks last for now (their batches keep failing).
    public func setEventsDeferred(_ count: Int) { eventsDeferred.record(count) }

    func rejectedCounter(_ reason: String) -> Counter {
        rejected.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = Counter(
                label: BoxofficeMetrics.Names.decisions, dimensions: [("status", "rejected"), ("reason", reason)], factory: factory)
            counters[reason] = counter
            return counter
        }
    }
}
