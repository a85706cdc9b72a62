import CoreMetrics
import Metrics

/// What a worker's Idempotency-Key sweep records.
public final class RetentionMetrics: Sendable {
    let keysSwept: Counter
    let sweepFailures: Counter

    public init(_ metrics: BoxofficeMetrics) {
        keysSwept = Counter(label: BoxofficeMetrics.Names.keysSwept, factory: metrics.factory)
        sweepFailures = Counter(label: BoxofficeMetrics.Names.keySweepFailures, factory: metrics.factory)
    }

    /// One sweep statement deleted `count` expired keys.
    public func swept(_ count: Int) { keysSwept.increment(by: count) }

    /// One sweep statement failed.
    public func failed() { sweepFailures.increment() }
}
