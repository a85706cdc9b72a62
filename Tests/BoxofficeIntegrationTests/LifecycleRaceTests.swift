import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import PostgresNIO
import Synchronization
import Testing

// The lifecycle's races and faults through real processes: `boxoffice work` and `boxoffice serve`
// children on one private PostgreSQL, many concurrent HTTP clients, workers killed, the database
// restarted; every check afterwards reads the database (and `verify`'s audit).

extension IntegrationTests {
    @Suite("Sale lifecycle: races and faults")
    struct LifecycleRaceTests {
        /// Statuses of an event's outcomes by public id.
        static func statuses(_ store: Store, event: EventID) async throws -> [UUID: String] {
            var result: [UUID: String] = [:]
            for try await (id, status) in try await store.client.query("SELECT public_id, status FROM outcomes WHERE event_id = \(event)").decode(
                (UUID, String).self)
            {
                result[id] = status
            }
            return result
        }

        /// Waits until no hold of `event` is live and every journal row is applied (the workers are idle).
        static func waitUntilSettled(_ store: Store, event: EventID, timeout: Duration = .seconds(120)) async throws {
            try await waitUntil("holds expired and journal applied", every: .milliseconds(100), timeout: timeout) {
                var left = 0
                for try await count in try await store.client.query(
                    """
                    SELECT (SELECT count(*) FROM outcomes WHERE event_id = \(event) AND status = 'held')
                         + (SELECT count(*) FROM inventory_journal WHERE event_id = \(event))
                         + (SELECT count(*) FROM intents WHERE event_id = \(event))
                    """
                ).decode(Int.self) { left = count }
                return left > 0 ? "\(left) holds, journal rows or intents left" : nil
            }
        }

        static func counts(_ store: Store, _ event: EventID) async throws -> (sold: Int, held: Int, available: Int) {
            let summary = try #require(try await store.eventSummary(event))
            return (summary.sold, summary.held, summary.available)
        }

        @Test(
            "2,000 holds expiring at one instant while 64 clients confirm around the deadline through two API processes: each ends confirmed xor expired, as its answer said"
        )
        func confirmsRaceExpiry() async throws {
            try await withLiveAPI { base in
                let store = base.store
                let capacity = 2_000
                let event = try await store.createEvent(name: "Deadline", layout: .generalAdmission(capacity: capacity), holdSeconds: 600).id
                _ = try await store.enqueue(
                    (0..<capacity).map { IntentDraft(eventID: event, customer: "c\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                // One batch: every hold gets the same expires_at (the settle statement's timestamp + 600 s).
                #expect(
                    try await store.allocateNextBatch(batchSizeMax: 4_096, allocate: { Allocator.allocate($1, from: &$0) })?.ticketsHeld == capacity)
                var expiries: [Date] = []
                for try await at in try await store.client.query(
                    "SELECT DISTINCT expires_at FROM outcomes WHERE event_id = \(event) AND status = 'held'"
                ).decode(Date.self) { expiries.append(at) }
                #expect(expiries.count == 1, "the holds of one batch share one expires_at")
                let producer = AccessControl.randomToken()
                let admin = AccessControl.randomToken()
                let servers = try [
                    APIProcessTests.Server(base, producer: producer, admin: admin),
                    APIProcessTests.Server(base, producer: producer, admin: admin),
                ]
                for server in servers { try await server.start() }
                let workers = workerProcesses(base.database, batchSize: 256)
                try workers.spawn(2)
                // Bring that one instant 3 s ahead (by the database's clock), all holds together.
                var untilDeadline = 0.0
                for try await seconds in try await store.client.query(
                    """
                    WITH moved AS (UPDATE outcomes SET expires_at = date_trunc('milliseconds', statement_timestamp()) + interval '3 seconds'
                                   WHERE event_id = \(event) AND status = 'held' RETURNING expires_at)
                    SELECT extract(epoch FROM (SELECT min(expires_at) FROM moved) - clock_timestamp())::float8
                    """
                ).decode(Double.self) { untilDeadline = seconds }
                let deadline = ContinuousClock.now + .milliseconds(Int(untilDeadline * 1_000))

                // Confirms spread evenly from 1 s before the deadline to 1 s after it.
                var ids: [UUID] = []
                for try await id in try await store.client.query("SELECT public_id FROM outcomes WHERE event_id = \(event) ORDER BY intent_id")
                    .decode(UUID.self)
                {
                    ids.append(id)
                }
                let targets = ids
                let tally = ConfirmTally()
                await withTaskGroup(of: Void.self) { group in
                    for client in 0..<64 {
                        group.addTask {
                            let api = servers[client % 2].api
                            while true {
                                let index = tally.next.add(1, ordering: .relaxed).oldValue
                                guard index < targets.count else { return }
                                let at = deadline - .seconds(1) + .milliseconds(2_000 * index / targets.count)
                                try? await Task.sleep(until: at, clock: .continuous)
                                let reply = try? await api.post(
                                    "/intents/\(targets[index])/confirm", "", headers: [("Authorization", "Bearer \(producer)")])
                                switch (reply?.status, reply?.error) {
                                case (200, _), (409, "hold_expired"?): tally.answers.withLock { $0[targets[index]] = reply?.status }
                                default: tally.unexpected.withLock { $0.append("\(targets[index]): \(reply?.status ?? -1) \(reply?.fields ?? [:])") }
                                }
                            }
                        }
                    }
                }
                let unexpected = tally.unexpected.withLock { $0 }
                #expect(unexpected.isEmpty, "answers other than 200 or 409 hold_expired: \(unexpected.prefix(5))")
                try await Self.waitUntilSettled(store, event: event)
                #expect(await workers.terminateAll() == [0, 0])
                for server in servers { #expect(await server.process.terminateAll() == [0]) }

                let final = try await Self.statuses(store, event: event)
                let answered = tally.answers.withLock { $0 }
                let confirmed = final.filter { $0.value == "confirmed" }.count
                let expired = final.filter { $0.value == "expired" }.count
                #expect(confirmed + expired == capacity, "every hold ends confirmed or expired")
                let disagreeing = answered.filter { id, status in final[id] != (status == 200 ? "confirmed" : "expired") }
                #expect(disagreeing.isEmpty, "\(disagreeing.count) intents ended otherwise than their answer said")
                #expect(confirmed > 0 && expired > 0, "the confirms must straddle the deadline: \(confirmed) confirmed, \(expired) expired")
                #expect(try await Self.counts(store, event) == (confirmed, 0, capacity - confirmed))
                let audit = try await store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.expiryLatenessMaxSeconds <= Double(HoldExpiry.latenessMax.components.seconds))
                print(
                    "confirm vs expiry: \(capacity) holds, \(confirmed) confirmed, \(expired) expired, latest expiry \(String(format: "%.3f", audit.expiryLatenessMaxSeconds)) s after expires_at"
                )
            }
        }

        @Test(
            "Confirm and release of the same holds from two API processes at once, then cancels from both: one winner each, one return each, counts exact"
        )
        func concurrentTransitionsAcrossProcesses() async throws {
            try await withLiveAPI { base in
                let store = base.store
                let capacity = 300
                let event = try await store.createEvent(
                    name: "Contested", layout: .seatMap([SectionLayout(name: "A", rows: 10, seatsPerRow: 30)]), holdSeconds: 600
                ).id
                _ = try await store.enqueue(
                    (0..<capacity).map { IntentDraft(eventID: event, customer: "c\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                try await ReturnTests.drain(store)
                let producer = AccessControl.randomToken()
                let admin = AccessControl.randomToken()
                let servers = try [
                    APIProcessTests.Server(base, producer: producer, admin: admin),
                    APIProcessTests.Server(base, producer: producer, admin: admin),
                ]
                for server in servers { try await server.start() }
                let ids = Array(try await Self.statuses(store, event: event).keys)
                #expect(ids.count == capacity)

                func both(_ first: String, _ second: String, token: String) async -> [UUID: [LiveAPI.Reply?]] {
                    await withTaskGroup(of: (UUID, Int, LiveAPI.Reply?).self) { group in
                        for id in ids {
                            for (index, action) in [first, second].enumerated() {
                                group.addTask {
                                    (
                                        id, index,
                                        try? await servers[index].api.post(
                                            "/intents/\(id)/\(action)", "", headers: [("Authorization", "Bearer \(token)")])
                                    )
                                }
                            }
                        }
                        var replies: [UUID: [LiveAPI.Reply?]] = [:]
                        for await (id, index, reply) in group {
                            replies[id, default: [nil, nil]][index] = reply
                        }
                        return replies
                    }
                }
                let raced = await both("confirm", "release", token: producer)
                var winners: [UUID: String] = [:]
                for (id, replies) in raced {
                    let ok = replies.compactMap { $0 }.filter { $0.status == 200 }
                    #expect(ok.count == 1, "\(id): \(replies.map { "\($0?.status ?? -1) \($0?.error ?? "")" })")
                    let loser = replies.compactMap { $0 }.first { $0.status != 200 }
                    #expect(
                        loser?.status == 409 && ["hold_released", "intent_confirmed"].contains(loser?.error ?? ""), "\(id): \(loser?.fields ?? [:])")
                    winners[id] = ok.first?["status"]
                }
                let final = try await Self.statuses(store, event: event)
                #expect(winners.allSatisfy { final[$0.key] == $0.value }, "a winner's answer and the database disagree")
                let confirmed = winners.filter { $0.value == "confirmed" }.map(\.key)
                #expect(!confirmed.isEmpty && confirmed.count < capacity, "both outcomes must occur: \(confirmed.count) confirmed")

                // Cancels of the confirmed ones from both processes: both answer 200, one journal row each.
                let cancels = await both("cancel", "cancel", token: admin)
                for id in confirmed {
                    #expect(cancels[id]?.allSatisfy { $0?.status == 200 && $0?["status"] == "cancelled" } == true, "\(id): \(cancels[id] ?? [])")
                }
                var journal = 0
                for try await count in try await store.client.query(
                    "SELECT count(*) FROM inventory_journal WHERE change = 'cancel' AND event_id = \(event)"
                ).decode(Int.self) { journal = count }
                #expect(journal == confirmed.count, "one cancel, one journal row")

                let workers = workerProcesses(base.database, batchSize: 64)
                try workers.spawn(2)
                try await Self.waitUntilSettled(store, event: event)
                #expect(await workers.terminateAll() == [0, 0])
                for server in servers { #expect(await server.process.terminateAll() == [0]) }
                #expect(try await Self.counts(store, event) == (0, 0, capacity), "every seat back exactly once")
                let audit = try await store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.released + audit.cancelled == capacity && audit.cancelled == confirmed.count)
            }
        }

        @Test(
            "Chaos with holds: a sale whose buyers confirm, release or walk away while a worker is SIGKILLed every second, then a database restart: nothing lost, returned twice or oversold; expired seats resold",
            .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "restarts the private cluster"))
        func chaosWithHolds() async throws {
            try await withLiveAPI { api in
                let capacity = 1_500
                let created = try await api.post("/events", #"{"name": "Chaos holds", "capacity": \#(capacity), "hold_seconds": 2}"#)
                let event = try #require(Int64(created["id"] ?? ""))
                let workers = workerProcesses(api.database, batchSize: 32)
                try workers.spawn(3)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 6_000)
                load.clients = 48
                load.quantities = 1...2
                load.timeLimit = .seconds(420)
                let sale = load
                let payer = Payer(api: api, event: event)
                let (result, kills) = await duringWorkerChaos(workers, seed: 11, alongside: { await payer.run() }) {
                    await SaleLoad(sale).run(client: api.http)
                }
                #expect(result.transportErrors == 0 && result.intakeFailures.isEmpty && result.undecided == 0)
                #expect(kills >= 2, "the sale ended before the chaos loop killed anything")

                // Holds still live while the database restarts: the workers reconnect and expire them.
                if let cluster = try TestCluster.server.get().cluster {
                    try cluster.stopServer()
                    try await Task.sleep(for: .seconds(2))
                    try cluster.startServer()
                }
                try await Self.waitUntilSettled(api.store, event: event, timeout: .seconds(240))
                let codes = await workers.terminateAll()
                #expect(codes.allSatisfy { $0 == 0 }, "survivors must exit 0 on SIGTERM: \(codes)")

                let final = try await Self.statuses(api.store, event: event)
                #expect(Set(final.keys) == Set(result.accepted), "every accepted intent settled once")
                let answered = payer.answers.withLock { $0 }
                let disagreeing = answered.filter { id, said in final[id] != said }
                #expect(disagreeing.isEmpty, "\(disagreeing.count) transitions ended otherwise than answered: \(disagreeing.prefix(3))")
                var granted = 0
                var sold = 0
                for try await (status, tickets) in try await api.store.client.query(
                    "SELECT status, sum(quantity)::int FROM outcomes WHERE event_id = \(event) GROUP BY status"
                ).decode((String, Int).self) {
                    if status != "rejected" { granted += tickets }
                    if status == "confirmed" { sold += tickets }
                }
                #expect(granted > capacity, "returned tickets must have been resold: \(granted) granted for \(capacity)")
                #expect(try await Self.counts(api.store, event) == (sold, 0, capacity - sold))
                let audit = try await api.store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.expired > 0 && audit.released > 0 && audit.confirmed > 0)
                print(
                    "chaos with holds: intents \(result.accepted.count), kills \(kills), confirmed \(audit.confirmed), released \(audit.released), expired \(audit.expired), rejected \(audit.rejected), tickets granted \(granted) for \(capacity), sold \(sold)"
                )
            }
        }
    }
}

/// What the deadline test's confirm clients were told.
final class ConfirmTally: Sendable {
    let next = Atomic<Int>(0)
    let answers = Mutex<[UUID: Int]>([:])
    let unexpected = Mutex<[String]>([])
}

/// Buyers who pay: every 100 ms it finds the event's new holds and, for each, confirms (7 in 10),
/// releases (1 in 10) or walks away (2 in 10, left to expire), retrying a 503 or a dropped
/// connection; it records what each transition's answer said the intent became.
final class Payer: Sendable {
    let api: LiveAPI
    let event: Int64
    /// Intent → the status its transition's answer named (`confirmed`, `released`, or `expired` for a
    /// confirm refused as hold_expired).
    let answers = Mutex<[UUID: String]>([:])

    init(api: LiveAPI, event: Int64) {
        self.api = api
        self.event = event
    }

    func run() async {
        var seen: Set<UUID> = []
        var random = SplitMix64(seed: 5)
        while !Task.isCancelled {
            var fresh: [UUID] = []
            if let rows = try? await api.store.client.query(
                "SELECT public_id FROM outcomes WHERE event_id = \(event) AND status = 'held' ORDER BY decided_at DESC LIMIT 2000")
            {
                do {
                    for try await id in rows.decode(UUID.self) where !seen.contains(id) { fresh.append(id) }
                } catch {}
            }
            await withTaskGroup(of: Void.self) { group in
                for id in fresh {
                    seen.insert(id)
                    let roll = random.next() % 10
                    guard roll < 8 else { continue }
                    let action = roll < 7 ? "confirm" : "release"
                    group.addTask { await self.send(action, id) }
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private func send(_ action: String, _ id: UUID) async {
        for _ in 0..<50 {
            guard let reply = try? await api.post("/intents/\(id)/\(action)", "") else {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            switch (reply.status, reply.error) {
            case (200, _): answers.withLock { $0[id] = reply["status"] }
            case (409, "hold_expired"?): answers.withLock { $0[id] = "expired" }
            case (503, _):
                try? await Task.sleep(for: .milliseconds(200))
                continue
            default: Issue.record("\(action) of \(id): \(reply.status) \(reply.fields)")
            }
            return
        }
    }
}
