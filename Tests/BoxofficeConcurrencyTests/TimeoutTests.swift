import BoxofficeConcurrency
import Synchronization
import Testing

/// The process-wide deadline clock behind every bounded wait: it must fire, never hang, and leave
/// nothing registered once the waits are over.
@Suite("Bounded waits", .serialized)
struct TimeoutTests {
    // A body that ignores cancellation never returns: had withTimeout waited for it, the test would hang, and
    // the time limit fails it. No tighter bound on the wait: a loaded machine may take seconds to wake it.
    @Test("withTimeout returns the body's value, or gives up on a body that ignores cancellation", .timeLimit(.minutes(1)))
    func withTimeoutBounds() async throws {
        #expect(try await withTimeout(.seconds(5)) { 42 } == 42)
        let started = ContinuousClock.now
        await #expect(throws: TimeoutError.self) {
            try await withTimeout(.milliseconds(100)) {
                // Ignores cancellation, as a PostgresNIO statement on a closed connection does.
                let never = Mutex<CheckedContinuation<Void, Never>?>(nil)
                await withCheckedContinuation { continuation in never.withLock { $0 = continuation } }
                return 0
            }
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(100), "gave up after \(waited), before the deadline")
    }

    @Test("Thousands of finished waits leave no deadline behind")
    func noLeftovers() async throws {
        // Other suites in this process (a live API, workers) register deadlines of their own meanwhile,
        // a few hundred at most; 5,000 leaked registrations would stand far above that.
        let before = DeadlineClock.shared.pending
        for value in 0..<4_000 {
            #expect(try await withTimeout(.seconds(20)) { value } == value)
        }
        let bell = Doorbell()
        for _ in 0..<1_000 {
            bell.ring()
            await bell.wait(timeout: .seconds(20))
        }
        let grown = DeadlineClock.shared.pending - before
        #expect(grown < 1_000, "\(grown) deadlines left registered after 5,000 finished waits")
    }

    // Bounds relative to the 30 s timeouts, not to a machine's speed: woken by the ring means well before 30 s.
    @Test("A doorbell wakes on a ring (even one rung before the wait), else after its timeout", .timeLimit(.minutes(2)))
    func doorbell() async {
        let bell = Doorbell()
        var started = ContinuousClock.now
        await bell.wait(timeout: .milliseconds(80))
        var waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(80), "timed out after \(waited), before its timeout")

        bell.ring()
        started = .now
        await bell.wait(timeout: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(20), "a remembered ring must not wait")

        started = .now
        async let ringer: Void = {
            try? await Task.sleep(for: .milliseconds(50))
            bell.ring()
        }()
        await bell.wait(timeout: .seconds(30))
        waited = ContinuousClock.now - started
        await ringer
        #expect(waited < .seconds(20), "a ring must wake the wait, waited \(waited)")

        // A deadline that passes before the wait has parked must still end it.
        for _ in 0..<20 { await bell.wait(timeout: .zero) }
    }
}
