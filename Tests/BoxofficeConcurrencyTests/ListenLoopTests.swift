import BoxofficeConcurrency
import Synchronization
import Testing

/// The one LISTEN retry loop of the worker and the long-poll watcher, driven by a fake connection.
@Suite("LISTEN loop")
struct ListenLoopTests {
    struct Dropped: Error {}

    @Test("The pause doubles while the connection keeps dropping, and starts over after a healthy connection (it can fail)")
    func backoffResetsAfterHealthyPeriod() async throws {
        let backoff = ListenBackoff(first: .milliseconds(2), max: .milliseconds(16), healthyAfter: .milliseconds(300))
        let calls = Atomic<Int>(0)
        let pauses = Mutex<[Duration]>([])
        let loop = Task {
            await listenUntilCancelled(backoff: backoff) {
                switch calls.add(1, ordering: .relaxed).newValue {
                case 1...6:
                    throw Dropped()  // drops at once, as against a database that is down
                case 7:
                    try await Task.sleep(for: .milliseconds(400))  // up past the healthy period, then lost
                    throw Dropped()
                case 8:
                    throw Dropped()
                default:
                    try await Task.sleep(for: .seconds(60))  // holds until the test cancels it
                }
            } connectionLost: { _, retryIn in
                pauses.withLock { $0.append(retryIn) }
            }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        // Until the ninth attempt holds its connection.
        while calls.load(ordering: .relaxed) < 9 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        loop.cancel()
        await loop.value
        let expected: [Duration] = [2, 4, 8, 16, 16, 16, 2, 4].map { .milliseconds($0) }
        // Cancelled while listening: no loss reported for it.
        #expect(pauses.withLock { $0 } == expected)
    }
}
