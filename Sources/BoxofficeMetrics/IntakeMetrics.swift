import CoreMetrics
import Metrics
import Synchronization

/// What intake (the API's group commit) records.
public final class IntakeMetrics: Sendable {
    /// Why an intake request ended; the `result` label.
    public enum Result: String, Sendable, CaseIterable {
        case accepted, replayed
        case keyReused = "key_reused"
        case overloaded
        case shuttingDown = "shutting_down"
        /// The database is failing, or the request's deadline passed before its group was written.
        case unavailable
        case failed
    }

    let requests: [Result: Counter]
    let groupSize: Recorder
    let commitDuration: Metrics.Timer

    public init(_ metrics: BoxofficeMetrics) {
        let factory = metrics.factory
        var requests: [Result: Counter] = [:]
        for result in Result.allCases {
            requests[result] = Counter(label: BoxofficeMetrics.Names.intakeRequests, dimensions: [("result", result.rawValue)], factory: factory)
        }
        self.requests = requests
        groupSize = Recorder(label: BoxofficeMetrics.Names.intakeGroupSize, aggregate: true, factory: factory)
        commitDuration = Metrics.Timer(label: BoxofficeMetrics.Names.intakeCommitDuration, preferredDisplayUnit: .seconds, factory: factory)
    }

    /// A request answered: `waited` from its submission to its group's commit (accepted and replayed only).
    public func answered(_ result: Result, waited: Duration? = nil) {
        requests[result]?.increment()
        if let waited { commitDuration.recordNanoseconds(Int64(waited.seconds * 1e9)) }
    }

    /// One group-commit INSERT committed with `size` rows.
    public func committedGroup(size: Int) {
        groupSize.record(size)
    }
}
