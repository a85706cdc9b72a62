import AsyncHTTPClient
import BoxofficeCore
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import Synchronization

/// A flash sale driven over HTTP by many concurrent buyers, each of which submits an intent and
/// long-polls its status until decided, then takes the next: a closed loop, as real buyers behave.
public struct SaleLoad: Sendable {
    public struct Configuration: Sendable {
        public var baseURL: String
        public var eventID: Int64
        public var intents: Int
        /// Concurrent buyers (connections).
        public var clients: Int = 64
        public var quantities: ClosedRange<Int> = 1...4
        /// Seat maps: each intent names one of these sections, or "anywhere" when nil is drawn.
        public var sections: [String?] = [nil]
        /// Long-poll each intent's outcome before the next one (true), or only submit (false).
        public var awaitOutcome = true
        /// Send an Idempotency-Key with every intent.
        public var idempotencyKeys = true
        public var seed: UInt64 = 42
        /// Bearer token sent as Authorization, if the server wants one.
        public var token: String?
        /// The whole sale at most: past it buyers neither send nor wait any more, so a server that
        /// cannot decide (workers that never connect) ends the run with `undecided` intents instead
        /// of two minutes of long-polls per intent.
        public var timeLimit: Duration = .seconds(180)
        /// Events with holds: the share of buyers (0…1) who pay for a hold they are granted, by
        /// confirming it (`POST /intents/{id}/confirm`) right after seeing it; the others walk away
        /// and their holds expire. Nil: buyers leave holds as they are.
        public var payingShare: Double?

        public init(baseURL: String, eventID: Int64, intents: Int) {
            self.baseURL = baseURL
            self.eventID = eventID
            self.intents = intents
        }
    }

    public struct Result: Sendable {
        /// Intent ids answered 202, in no particular order.
        public var accepted: [UUID] = []
        /// Granted intents: sold (`confirmed`), or `held` at an event with holds (also in ``held``).
        public var confirmed = 0
        /// Of ``confirmed``, the intents granted as `held` (events with `hold_seconds` > 0).
        public var held = 0
        public var rejected = 0
        /// Tickets granted (sold or held).
        public var ticketsConfirmed = 0
        /// Seat labels of granted outcomes (seat maps), for duplicate checks by the caller.
        public var seats: [String] = []
        /// Responses other than 202 to an intake POST, by status code.
        public var intakeFailures: [Int: Int] = [:]
        /// Transport errors (connection refused, timeouts).
        public var transportErrors = 0
        /// Intents still pending when their long-poll budget ran out.
        public var undecided = 0
        /// Holds their buyers paid for (confirmed: 200), with their tickets; holds whose confirm came
        /// too late (409 hold_expired); holds their buyers walked away from (left to expire).
        public var paid = 0
        public var ticketsPaid = 0
        public var paidTooLate = 0
        public var walkedAway = 0
        /// Confirms answered otherwise (transport errors, 5xx), by status (-1: no answer).
        public var confirmFailures: [Int: Int] = [:]
        /// POST → 202, microseconds.
        public var intakeLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        /// POST sent → outcome seen, microseconds.
        public var outcomeLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        public var duration: Duration = .zero

        mutating func merge(_ other: Result) {
            accepted += other.accepted
            confirmed += other.confirmed
            held += other.held
            rejected += other.rejected
            ticketsConfirmed += other.ticketsConfirmed
            seats += other.seats
            intakeFailures.merge(other.intakeFailures, uniquingKeysWith: +)
            transportErrors += other.transportErrors
            undecided += other.undecided
            paid += other.paid
            ticketsPaid += other.ticketsPaid
            paidTooLate += other.paidTooLate
            walkedAway += other.walkedAway
            confirmFailures.merge(other.confirmFailures, uniquingKeysWith: +)
            intakeLatency.add(other.intakeLatency)
            outcomeLatency.add(other.outcomeLatency)
        }

        public var decided: Int { confirmed + rejected }
    }

    /// Progress counters, readable while the sale runs.
    public final class Progress: Sendable {
        let next = Atomic<Int>(0)
        let acceptedCount = Atomic<Int>(0)
        let decidedCount = Atomic<Int>(0)
        public init() {}
        public var accepted: Int { acceptedCount.load(ordering: .relaxed) }
        public var decided: Int { decidedCount.load(ordering: .relaxed) }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    struct Accepted: Decodable { let id: UUID }
    struct Status: Decodable {
        let status: String
        let quantity: Int
        let seats: [String]
    }

    public func run(client: HTTPClient, progress: Progress = Progress()) async -> Result {
        let start = ContinuousClock.now
        let deadline = start + configuration.timeLimit
        var total = await withTaskGroup(of: Result.self) { group in
            for buyer in 0..<configuration.clients {
                group.addTask { await self.buyer(buyer, client: client, progress: progress, deadline: deadline) }
            }
            var total = Result()
            for await result in group { total.merge(result) }
            return total
        }
        total.duration = ContinuousClock.now - start
        return total
    }

    private func buyer(_ buyer: Int, client: HTTPClient, progress: Progress, deadline: ContinuousClock.Instant) async -> Result {
        var result = Result()
        var random = SplitMix64(seed: configuration.seed &+ UInt64(buyer) &* 0x9E37_79B9)
        while true {
            let index = progress.next.add(1, ordering: .relaxed).oldValue
            guard index < configuration.intents, ContinuousClock.now < deadline else { return result }
            let quantity =
                configuration.quantities.lowerBound
                + Int(random.next() % UInt64(configuration.quantities.count))
            var body = ["customer": "c-\(index)"] as [String: Any]
            body["quantity"] = quantity
            if let section = configuration.sections[Int(random.next() % UInt64(configuration.sections.count))] {
                body["section"] = section
            }
            var request = HTTPClientRequest(url: "\(configuration.baseURL)/events/\(configuration.eventID)/intents")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            if configuration.idempotencyKeys { request.headers.add(name: "Idempotency-Key", value: "sale-\(configuration.seed)-\(index)") }
            if let token = configuration.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            request.body = .bytes(ByteBuffer(bytes: (try? JSONSerialization.data(withJSONObject: body)) ?? Data()))
            let sent = ContinuousClock.now
            let id: UUID
            do {
                let response = try await client.execute(request, timeout: .seconds(30))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .accepted, let accepted = try? JSONDecoder().decode(Accepted.self, from: Data(bytes.readableBytesView))
                else {
                    result.intakeFailures[Int(response.status.code), default: 0] += 1
                    continue
                }
                id = accepted.id
            } catch {
                result.transportErrors += 1
                continue
            }
            _ = result.intakeLatency.record(Self.microseconds(ContinuousClock.now - sent))
            result.accepted.append(id)
            progress.acceptedCount.add(1, ordering: .relaxed)
            guard configuration.awaitOutcome else { continue }
            if let status = await awaitOutcome(id, client: client, until: deadline) {
                _ = result.outcomeLatency.record(Self.microseconds(ContinuousClock.now - sent))
                progress.decidedCount.add(1, ordering: .relaxed)
                if status.status == "confirmed" || status.status == "held" {
                    result.confirmed += 1
                    if status.status == "held" { result.held += 1 }
                    result.ticketsConfirmed += status.quantity
                    result.seats += status.seats
                    if status.status == "held", let share = configuration.payingShare {
                        if Double(random.next() % 1_000_000) / 1_000_000 < share {
                            switch await confirm(id, index: index, client: client) {
                            case 200:
                                result.paid += 1
                                result.ticketsPaid += status.quantity
                            case 409: result.paidTooLate += 1
                            case let code: result.confirmFailures[code, default: 0] += 1
                            }
                        } else {
                            result.walkedAway += 1
                        }
                    }
                } else {
                    result.rejected += 1
                }
            } else {
                result.undecided += 1
            }
        }
    }

    /// Confirms a hold the buyer paid for; the answer's status code (409: too late), -1 with no answer.
    func confirm(_ id: UUID, index: Int, client: HTTPClient) async -> Int {
        var request = HTTPClientRequest(url: "\(configuration.baseURL)/intents/\(id)/confirm")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token = configuration.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(string: #"{"payment_reference": "pay-\#(configuration.seed)-\#(index)"}"#))
        guard let response = try? await client.execute(request, timeout: .seconds(30)) else { return -1 }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    /// Long-polls until the intent is decided; nil after about two minutes of pending answers, or at `deadline`.
    func awaitOutcome(_ id: UUID, client: HTTPClient, until deadline: ContinuousClock.Instant = .now + .seconds(180)) async -> Status? {
        for _ in 0..<8 where ContinuousClock.now < deadline {
            var request = HTTPClientRequest(url: "\(configuration.baseURL)/intents/\(id)?wait=15")
            request.method = .GET
            guard let response = try? await client.execute(request, timeout: .seconds(30)),
                let bytes = try? await response.body.collect(upTo: 1 << 20)
            else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            if response.status == .ok, let status = try? JSONDecoder().decode(Status.self, from: Data(bytes.readableBytesView)),
                status.status != "pending"
            {
                return status
            }
        }
        return nil
    }

    public static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000 + UInt64(max(0, attoseconds)) / 1_000_000_000_000
    }
}
