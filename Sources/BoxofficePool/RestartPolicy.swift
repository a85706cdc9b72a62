/// When a pool replaces a child that exited unasked, and when it stops trying.
///
/// The back-off is pool-wide (every child runs the same command against the same database, so one
/// child's failure says the same about the next): the n-th failure in a row delays its replacement
/// by `backoffMin × 2^(n−1)`, capped at `backoffMax`; once no child has failed for `backoffReset`,
/// the next failure counts as the first again. More than `failuresMax` failures within `window` means
/// the children cannot run: the pool gives up.
public struct RestartPolicy: Sendable {
    public var backoffMin: Duration = .milliseconds(500)
    public var backoffMax: Duration = .seconds(30)
    public var backoffReset: Duration = .seconds(30)
    public var failuresMax = 5
    public var window: Duration = .seconds(60)

    /// Failures since the last healthy period.
    public private(set) var consecutive = 0
    private var lastFailure: ContinuousClock.Instant?
    private var recent: [ContinuousClock.Instant] = []

    public init() {}

    /// Records a child's unasked exit at `now`: the delay before its replacement starts, or nil when
    /// there were more than `failuresMax` failures within `window` (give up).
    public mutating func failed(at now: ContinuousClock.Instant) -> Duration? {
        if let lastFailure, now - lastFailure >= backoffReset { consecutive = 0 }
        consecutive += 1
        lastFailure = now
        recent.append(now)
        recent.removeAll { now - $0 > window }
        guard recent.count <= failuresMax else { return nil }
        return delay(consecutive)
    }

    /// The back-off of the `failures`-th failure in a row.
    public func delay(_ failures: Int) -> Duration {
        let doublings = min(max(failures - 1, 0), 40)
        var delay = backoffMin
        for _ in 0..<doublings where delay < backoffMax { delay *= 2 }
        return min(delay, backoffMax)
    }
}
