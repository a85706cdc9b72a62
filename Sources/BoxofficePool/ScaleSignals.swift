import Dispatch
import Foundation
import Synchronization

/// SIGTTIN (add a worker) and SIGTTOU (remove one), as gunicorn takes them, counted as they arrive and
/// taken by the pool's loop. swift-service-lifecycle's signal sequence knows neither signal, so these
/// are Dispatch signal sources of their own (as that sequence's are); registration is awaited, so a
/// signal sent once ``init()`` has returned is never lost (nor does its default action stop the process).
final class ScaleSignals: @unchecked Sendable {
    // The sources are set up in init and cancelled in deinit only; the counts are behind the mutex.
    private let sources: [any DispatchSourceSignal]
    private let pending = Pending()
    private static let queue = DispatchQueue(label: "boxoffice.pool.signals")

    init() async {
        #if canImport(Darwin)
        signal(SIGTTIN, SIG_IGN)
        signal(SIGTTOU, SIG_IGN)
        #endif
        let up = DispatchSource.makeSignalSource(signal: SIGTTIN, queue: Self.queue)
        let down = DispatchSource.makeSignalSource(signal: SIGTTOU, queue: Self.queue)
        sources = [up, down]
        let pending = self.pending
        up.setEventHandler { pending.counts.withLock { $0.up += Int(up.data) } }
        down.setEventHandler { pending.counts.withLock { $0.down += Int(down.data) } }
        for source in sources {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                source.setRegistrationHandler { continuation.resume() }
                source.resume()
            }
        }
    }

    /// The signals received since the last call: workers to add, workers to remove.
    func take() -> (up: Int, down: Int) {
        pending.counts.withLock { counts in
            defer { counts = (0, 0) }
            return counts
        }
    }

    private final class Pending: Sendable {
        let counts = Mutex<(up: Int, down: Int)>((0, 0))
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
