/// How a lost LISTEN connection is retried: doubling pauses from ``first`` up to ``max``, back to
/// ``first`` once a connection has stayed up for ``healthyAfter``.
///
/// Without the reset, a process whose LISTEN connection dropped a few times during one outage kept
/// waiting ``max`` after every later drop (a server restart weeks on), polling meanwhile.
public struct ListenBackoff: Sendable {
    /// Pause after the first loss.
    public var first: Duration
    /// Longest pause between two attempts.
    public var max: Duration
    /// A connection that lasted this long was healthy: the next loss starts again from ``first``.
    /// 30 s: far past the pauses (at most 5 s), so a connection that drops at once after each
    /// attempt keeps backing off, and short against the hours a healthy LISTEN connection lives.
    public var healthyAfter: Duration

    public init(first: Duration = .milliseconds(100), max: Duration = .seconds(5), healthyAfter: Duration = .seconds(30)) {
        precondition(first > .zero && max >= first && healthyAfter > .zero, "listen back-off out of range")
        self.first = first
        self.max = max
        self.healthyAfter = healthyAfter
    }
}

/// Keeps one LISTEN going until the task is cancelled: runs `listenOnce` (which holds a connection in
/// LISTEN and returns or throws when it ends), and after it ends pauses per `backoff` and runs it again.
///
/// `listenOnce` is the SQL side (``Store/listen(on:onNotification:)`` in the Store), so this target needs
/// no PostgreSQL. `connectionLost` is told each failure and the pause before the next attempt, for
/// the caller's log; it is not called for a cancellation.
public func listenUntilCancelled(
    backoff: ListenBackoff = .init(),
    _ listenOnce: @Sendable () async throws -> Void,
    connectionLost: @Sendable (_ error: any Error, _ retryIn: Duration) -> Void
) async {
    var pause = backoff.first
    while !Task.isCancelled {
        let started = ContinuousClock.now
        var failure: (any Error)?
        do {
            try await listenOnce()
        } catch {
            failure = error
        }
        if Task.isCancelled { return }
        if ContinuousClock.now - started >= backoff.healthyAfter { pause = backoff.first }
        if let failure { connectionLost(failure, pause) }
        try? await Task.sleep(for: pause)
        pause = min(pause * 2, backoff.max)
    }
}
