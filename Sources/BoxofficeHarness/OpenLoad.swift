import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import Synchronization

/// An open-loop intake generator: sends intents at a fixed rate whatever the server does, and
/// measures every latency from the moment the request was *meant* to be sent, so a slow server
/// shows up as latency instead of as a politely slower generator (no coordinated omission).
public struct OpenLoad: Sendable {
    public struct Configuration: Sendable {
        public var baseURL: String
        public var eventID: Int64
        /// Intents per second offered.
        public var rate: Int
        public var duration: Duration
        public var token: String?
        /// Requests in flight at most; past it an intent is counted as not sent (the generator saturated).
        public var inFlightMax = 20_000
        /// Long-poll the outcome of every n-th accepted intent, as a buyer's client would, and record
        /// intake→outcome latency as the client sees it (1: every intent; 0: none). Long-polling every
        /// intent from this process doubles the requests, and on a shared 2-core machine the generator's
        /// own cost then dominates what is measured; every intent's decision time is read from the
        /// database after the run instead (see ``Result/acceptedIntents``).
        public var longPollEvery = 10

        public init(baseURL: String, eventID: Int64, rate: Int, duration: Duration) {
            self.baseURL = baseURL
            self.eventID = eventID
            self.rate = rate
            self.duration = duration
        }
    }

    public struct Result: Sendable {
        public var offered = 0
        public var accepted = 0
        public var failed = 0
        public var notSent = 0
        public var decided = 0
        /// Intended send → 202, microseconds.
        public var intakeLatency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        /// Intended send → outcome seen by a long-polling client, microseconds (the sampled intents).
        public var outcomeLatency = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        /// Every accepted intent with the wall-clock time it was meant to be sent: joined with
        /// `outcomes.decided_at` after the run for the intake→decision latency of all of them.
        public var acceptedIntents: [(id: UUID, intended: Date)] = []
        /// From the first intended send to the last 202.
        public var intakeDuration: Duration = .zero
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Shared by the request tasks of one run.
    final class Tally: Sendable {
        let result = Mutex(Result())
        let inFlight = Atomic<Int>(0)
        let lastAccepted = Mutex(ContinuousClock.now)
    }

    public func run(client: HTTPClient) async -> Result {
        let tally = Tally()
        let total = Int(Double(configuration.rate) * Self.seconds(configuration.duration))
        let interval = Duration.seconds(1) / configuration.rate
        let start = ContinuousClock.now
        let startWall = Date()
        await withDiscardingTaskGroup { group in
            for index in 0..<total {
                let intended = start + interval * index
                if intended > .now { try? await Task.sleep(until: intended, clock: .continuous) }
                guard tally.inFlight.load(ordering: .relaxed) < configuration.inFlightMax else {
                    tally.result.withLock { $0.notSent += 1 }
                    continue
                }
                tally.inFlight.add(1, ordering: .relaxed)
                let intendedWall = startWall.addingTimeInterval(Self.seconds(interval * index))
                group.addTask {
                    defer { tally.inFlight.subtract(1, ordering: .relaxed) }
                    await self.send(index, intended: intended, intendedWall: intendedWall, client: client, tally: tally)
                }
            }
        }
        var result = tally.result.withLock { $0 }
        result.offered = total
        result.intakeDuration = tally.lastAccepted.withLock { $0 } - start
        return result
    }

    private func send(_ index: Int, intended: ContinuousClock.Instant, intendedWall: Date, client: HTTPClient, tally: Tally) async {
        var request = HTTPClientRequest(url: "\(configuration.baseURL)/events/\(configuration.eventID)/intents")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token = configuration.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(string: #"{"customer": "open-\#(index)", "quantity": 1}"#))
        // The id comes from the Location header (/intents/{id}): no JSON decoding in the generator, whose
        // CPU is taken from the same 2 cores as the server's.
        guard let response = try? await client.execute(request, timeout: .seconds(60)),
              (try? await response.body.collect(upTo: 1 << 16)) != nil,
              response.status == .accepted,
              let location = response.headers.first(name: "location"), location.hasPrefix("/intents/"),
              let id = UUID(uuidString: String(location.dropFirst("/intents/".count)))
        else {
            tally.result.withLock { $0.failed += 1 }
            return
        }
        let now = ContinuousClock.now
        tally.result.withLock {
            $0.accepted += 1
            _ = $0.intakeLatency.record(SaleLoad.microseconds(now - intended))
            $0.acceptedIntents.append((id, intendedWall))
        }
        tally.lastAccepted.withLock { $0 = max($0, now) }
        guard configuration.longPollEvery > 0, index % configuration.longPollEvery == 0 else { return }
        if await SaleLoad(.init(baseURL: configuration.baseURL, eventID: configuration.eventID, intents: 0)).awaitOutcome(id, client: client) != nil {
            let decided = ContinuousClock.now
            tally.result.withLock {
                $0.decided += 1
                _ = $0.outcomeLatency.record(SaleLoad.microseconds(decided - intended))
            }
        }
    }

    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// A closed-loop saturation run: `connections` clients send `request` back to back for `duration`.
/// Used to find this machine's HTTP ceiling (`GET /health`) and intake's, with the same generator.
public enum Saturation {
    public static func requestsPerSecond(client: HTTPClient, connections: Int, duration: Duration,
                                         expect status: HTTPResponseStatus,
                                         makeRequest: @escaping @Sendable (Int) -> HTTPClientRequest) async -> (rate: Double, failures: Int) {
        final class Counters: Sendable {
            let sent = Atomic<Int>(0)
            let failures = Atomic<Int>(0)
        }
        let counters = Counters()
        let deadline = ContinuousClock.now + duration
        let start = ContinuousClock.now
        await withDiscardingTaskGroup { group in
            for _ in 0..<connections {
                group.addTask {
                    while ContinuousClock.now < deadline {
                        let index = counters.sent.add(1, ordering: .relaxed).oldValue
                        let response = try? await client.execute(makeRequest(index), timeout: .seconds(30))
                        _ = try? await response?.body.collect(upTo: 1 << 16)
                        if response?.status != status { counters.failures.add(1, ordering: .relaxed) }
                    }
                }
            }
        }
        let elapsed = OpenLoad.seconds(ContinuousClock.now - start)
        let failures = counters.failures.load(ordering: .relaxed)
        return (Double(counters.sent.load(ordering: .relaxed) - failures) / elapsed, failures)
    }
}
