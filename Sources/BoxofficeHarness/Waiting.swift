/// A wait that ran out of time, saying what it waited for and what was still pending.
package struct WaitTimeout: Error, CustomStringConvertible {
    package let description: String
}

/// Polls `pending` every `interval` until it reports nothing pending (nil) or `timeout` passes: the
/// one "wait until drained / healthy" of tests, bench and demo. Returns nil once nothing is pending,
/// else what `pending` last reported (for callers that go on and check it themselves).
package func poll(
    every interval: Duration = .milliseconds(50), timeout: Duration,
    _ pending: () async throws -> String?
) async throws -> String? {
    let deadline = ContinuousClock.now + timeout
    while true {
        guard let still = try await pending() else { return nil }
        if ContinuousClock.now >= deadline { return still }
        try await Task.sleep(for: min(interval, max(deadline - .now, .zero)))
    }
}

/// ``poll(every:timeout:_:)`` that throws ``WaitTimeout`` when time runs out: "timed out after
/// <timeout> waiting for <what>; still pending: <what `pending` last said>".
package func waitUntil(
    _ what: String, every interval: Duration = .milliseconds(50), timeout: Duration,
    _ pending: () async throws -> String?
) async throws {
    if let still = try await poll(every: interval, timeout: timeout, pending) {
        throw WaitTimeout(description: "timed out after \(timeout) waiting for \(what); still pending: \(still)")
    }
}
