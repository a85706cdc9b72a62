import AsyncHTTPClient
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Testing

extension IntegrationTests {
    @Suite("Flash sales under concurrency")
    struct SaleTests {
        /// After a sale: every 202'd intent has exactly one outcome and the audit is clean.
        static func expectSettledExactlyOnce(_ result: SaleLoad.Result, api: LiveAPI, event: Int64, capacity: Int) async throws {
            #expect(result.transportErrors == 0)
            #expect(result.intakeFailures.isEmpty, "intake failures \(result.intakeFailures)")
            #expect(result.undecided == 0)
            let accepted = Set(result.accepted)
            #expect(accepted.count == result.accepted.count, "an id was handed out twice")
            var settled: [UUID: Int] = [:]
            for try await (id, count) in try await api.store.client.query("SELECT public_id, count(*) FROM outcomes GROUP BY public_id").decode(
                (UUID, Int).self)
            {
                settled[id] = count
            }
            #expect(settled.count == accepted.count, "outcomes \(settled.count), accepted \(accepted.count)")
            #expect(accepted.allSatisfy { settled[$0] == 1 }, "an accepted intent has no outcome or several")
            #expect(try await api.count("intents") == 0)
            let audit = try await api.store.audit(eventID: event)
            #expect(audit.isClean, "\(audit.violations)")
            #expect(audit.ticketsSold <= capacity)
            #expect(audit.ticketsSold == result.ticketsConfirmed)
            #expect(result.seats.count == Set(result.seats).count, "a seat was confirmed twice")
        }

        /// `submitted` (intents sent without awaiting their outcomes) with each intent's outcome read from the store.
        static func decided(_ submitted: SaleLoad.Result, api: LiveAPI) async throws -> SaleLoad.Result {
            var result = submitted
            for id in submitted.accepted {
                let status = try #require(try await api.store.status(of: id))
                switch status.state {
                case .decided(.confirmed(let quantity, _)):
                    result.confirmed += 1
                    result.ticketsConfirmed += quantity
                case .decided(.rejected):
                    result.rejected += 1
                case .pending:
                    result.undecided += 1
                }
            }
            return result
        }

        /// A general-admission sale of `capacity` tickets through `workers` (spawned here, `count` of them):
        /// `intents` of 1–2 tickets from `clients` buyers, each awaiting its outcome. Afterwards every
        /// worker exited 0 on SIGTERM, each intent settled once, and the event sold out exactly.
        static func sellOut(
            _ api: LiveAPI, capacity: Int, intents: Int, clients: Int,
            workers: ChildProcesses, count: Int
        ) async throws -> SaleLoad.Result {
            let event = try await api.createGeneralAdmission(capacity)
            try workers.spawn(count)
            var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: intents)
            load.clients = clients
            load.quantities = 1...2
            let result = await SaleLoad(load).run(client: api.http)
            let codes = await workers.terminateAll()
            #expect(codes == Array(repeating: 0, count: count), "workers must exit 0 on SIGTERM: \(codes)\n\(workerLogTail())")
            try await expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
            #expect(result.ticketsConfirmed == capacity)
            return result
        }

        @Test("4 worker processes, 64 concurrent HTTP buyers, fewer tickets than asked for: sells exactly the capacity")
        func generalAdmissionSale() async throws {
            try await withLiveAPI { api in
                // 2,000 intents of 1–2 tickets ask for ~3,000: the sale must sell out exactly.
                let result = try await Self.sellOut(
                    api, capacity: 1_000, intents: 2_000, clients: 64,
                    workers: workerProcesses(api.database, batchSize: 64), count: 4)
                #expect(result.rejected > 0)
            }
        }

        @Test("Reserved seating: best available in a section across 4 workers: no seat twice")
        func seatMapSale() async throws {
            try await withLiveAPI { api in
                let created = try await api.post(
                    "/events",
                    #"{"name": "Hall", "sections": [{"name": "A", "rows": 10, "seats_per_row": 20}, {"name": "B", "rows": 10, "seats_per_row": 20}]}"#
                )
                let event = Int64(created["id"] ?? "") ?? -1
                let workers = workerProcesses(api.database, batchSize: 32)
                try workers.spawn(4)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 800)
                load.clients = 48
                load.quantities = 1...4
                load.sections = [nil, "A", "B"]
                let result = await SaleLoad(load).run(client: api.http)
                #expect(await workers.terminateAll() == [0, 0, 0, 0])
                try await Self.expectSettledExactlyOnce(result, api: api, event: event, capacity: 400)
                #expect(result.ticketsConfirmed == 400, "800 intents of 1–4 seats must sell all 400")
                #expect(result.seats.count == 400)
            }
        }

        @Test("A worker SIGKILLed mid-sale: its batch rolls back, another worker claims it, all settled once")
        func workerKilledMidSale() async throws {
            try await withLiveAPI { api in
                let capacity = 1_500
                let event = try await api.createGeneralAdmission(capacity)
                // Buyers only submit, so a backlog builds up and the kill lands in the middle of the drain.
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 3_000)
                load.clients = 32
                load.awaitOutcome = false
                let submitted = await SaleLoad(load).run(client: api.http)
                #expect(submitted.accepted.count == 3_000)

                let workers = workerProcesses(api.database, batchSize: 8)
                try workers.spawn(4)
                var kills = 0
                // Kill a worker at least three times while the queue is still draining.
                while kills < 3 {
                    try await Task.sleep(for: .milliseconds(150))
                    guard try await api.count("intents") > 0 else { break }
                    workers.kill(at: kills % workers.count)
                    try workers.spawn(1)
                    kills += 1
                }
                #expect(kills >= 1, "the queue drained before any kill: make the backlog larger")
                _ = try await poll(every: .milliseconds(100), timeout: .seconds(120)) { try await api.count("intents") > 0 ? "intents queued" : nil }
                #expect(await workers.terminateAll() == [0, 0, 0, 0])
                let result = try await Self.decided(submitted, api: api)
                try await Self.expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
                #expect(result.ticketsConfirmed == capacity)
            }
        }

        @Test("The benchmark's open-loop generator: every offered intent is sent, accepted once and decided, through few connections")
        func openLoopGenerator() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(500)
                let workers = workerProcesses(api.database, batchSize: 64)
                try workers.spawn(2)
                var load = OpenLoad.Configuration(baseURL: api.baseURL, eventID: event, rate: 400, duration: .seconds(2))
                // Four connections for 400 intents/s: intents also wait in the backlog for a free one.
                load.connectionsMax = 4
                load.longPollEvery = 10
                let result = try await OpenLoad(load).run()
                // Only every 10th outcome was awaited: let the workers drain the rest before stopping them.
                _ = try await poll(every: .milliseconds(50), timeout: .seconds(60)) { try await api.count("intents") > 0 ? "intents queued" : nil }
                let codes = await workers.terminateAll()
                #expect(codes == [0, 0], "\(workerLogTail())")
                #expect(result.offered == 800)
                #expect(result.notSent == 0 && result.failed == 0)
                #expect(result.accepted == 800)
                #expect(result.intakeLatency.totalCount == 800)
                let ids = Set(result.acceptedIntents.map(\.id))
                #expect(ids.count == 800, "an id was reported twice")
                #expect(result.decided == 80, "every 10th intent is long-polled to its outcome")
                var settled = Set<UUID>()
                for try await id in try await api.store.client.query("SELECT public_id FROM outcomes").decode(UUID.self) { settled.insert(id) }
                #expect(settled.count == 800 && settled == ids, "outcomes \(settled.count) for 800 accepted intents")
                let audit = try await api.store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.ticketsSold == 500)
            }
        }

        @Test("The open-loop generator gives up at its deadline on a server that never answers, counting every intent failed")
        func openLoopGeneratorDeadline() async throws {
            // A socket that listens but never accepts: connections complete, requests are never read.
            let (listener, port) = try Loopback.listener(backlog: 64)
            defer { close(listener) }
            var load = OpenLoad.Configuration(baseURL: "http://127.0.0.1:\(port)", eventID: 1, rate: 50, duration: .milliseconds(400))
            load.answerGrace = .seconds(1)
            load.connectionsMax = 4
            let result = try await OpenLoad(load).run()
            #expect(result.offered == 20)
            #expect(result.accepted == 0)
            #expect(result.failed + result.notSent == 20, "failed \(result.failed), not sent \(result.notSent)")
        }
    }
}
