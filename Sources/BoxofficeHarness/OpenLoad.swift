import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
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
        /// Intents in flight or waiting for a connection at most; past it an intent is counted as not
        /// sent (the generator saturated).
        public var inFlightMax = 20_000
        /// Keep-alive connections at most, opened as the load needs them. Each carries one request at a
        /// time; an intent due while all are busy waits, and the wait counts in its latency.
        public var connectionsMax = 256
        /// How long past `duration` the run waits for the last answers; what is open then counts as failed.
        public var answerGrace: Duration = .seconds(120)
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

    /// Offers the load and waits for every 202 and every sampled outcome.
    public func run() async throws -> Result {
        guard let url = URL(string: configuration.baseURL), let host = url.host, let port = url.port else {
            throw OpenLoadError.badBaseURL(configuration.baseURL)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.shutdownGracefully { _ in } }
        let driver = OpenLoopDriver(loop: group.next(), configuration: configuration, host: host, port: port)
        return try await driver.run().get()
    }

    public enum OpenLoadError: Error, CustomStringConvertible {
        case badBaseURL(String)
        public var description: String {
            switch self {
            case .badBaseURL(let url): "the open-loop generator needs http://host:port, got \(url)"
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
    public static func requestsPerSecond(
        client: HTTPClient, connections: Int, duration: Duration,
        expect status: HTTPResponseStatus,
        makeRequest: @escaping @Sendable (Int) -> HTTPClientRequest
    ) async -> (rate: Double, failures: Int) {
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
