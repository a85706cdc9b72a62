import AsyncHTTPClient
import BoxofficeBench
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import BoxofficeWorker
import EmbeddedPostgres
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    @Suite("Faults")
    struct FaultTests {
        @Test("Chaos: 20,000 intents while a random worker is SIGKILLed every second and replaced: each settled once, no oversell")
        func chaosKills() async throws {
            try await withLiveAPI { api in
                let capacity = 8_000
                let event = try await api.createGeneralAdmission(capacity)
                let workers = workerProcesses(api.database, batchSize: 32)
                try workers.spawn(4)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 20_000)
                load.clients = 64
                load.quantities = 1...2
                load.timeLimit = .seconds(420)  // ≈ 85 s here; room for a slower CI machine
                let sale = load
                let (result, kills) = await duringWorkerChaos(workers, seed: 7) { await SaleLoad(sale).run(client: api.http) }
                let codes = await workers.terminateAll()
                #expect(codes.allSatisfy { $0 == 0 }, "survivors must exit 0 on SIGTERM: \(codes)")
                #expect(kills >= 2, "the sale ended before the chaos loop killed anything")
                try await SaleTests.expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
                #expect(result.ticketsConfirmed == capacity)
                print(
                    "chaos: intents \(result.accepted.count), kills \(kills), confirmed \(result.confirmed), rejected \(result.rejected), tickets \(result.ticketsConfirmed)/\(capacity), lost 0, duplicated 0, oversold 0"
                )
            }
        }

        @Test("Workers told to stop the moment they start (the chaos loop's last replacements) still exit 0")
        func stopRightAfterSpawn() async throws {
            let database = try await TestCluster.freshDatabase()
            for _ in 0..<3 {
                let workers = workerProcesses(database, batchSize: 16)
                try workers.spawn(2)
                let codes = await workers.terminateAll()
                #expect(codes == [0, 0], "a worker SIGTERMed right after its start: \(codes)\n\(workerLogTail())")
            }
        }

        @Test(
            "Database restart mid-drain: workers back off, reconnect and finish; nothing lost or settled twice",
            .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "restarts the private cluster"))
        func databaseRestart() async throws {
            let database = try await TestCluster.freshDatabase()
            let cluster = try #require(try TestCluster.server.get().cluster)
            let event = try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Gig", layout: .generalAdmission(capacity: 30_000))
                try await store.prequeue(eventID: event.id, count: 40_000, quantities: [1])
                return event.id
            }
            let workers = workerProcesses(database, batchSize: 16)
            try workers.spawn(2)
            try await Task.sleep(for: .milliseconds(500))
            try cluster.stopServer()
            try await Task.sleep(for: .seconds(2))
            try cluster.startServer()
            let (queued, audit) = try await withStore(database, logger: testLogger) { store in
                _ = try await poll(every: .milliseconds(200), timeout: .seconds(240)) { try await store.totalQueued() > 0 ? "intents queued" : nil }
                return (try await store.totalQueued(), try await store.audit(eventID: event))
            }
            let codes = await workers.terminateAll()
            #expect(codes == [0, 0], "workers must exit 0 on SIGTERM after a restart: \(codes)\n\(workerLogTail())")
            #expect(queued == 0, "workers did not finish the sale after the restart")
            #expect(audit.isClean, "\(audit.violations)")
            #expect(audit.outcomes == 40_000)
            #expect(audit.ticketsSold == 30_000)
        }

        @Test(
            "Database down mid-sale: the API answers 503 with Retry-After within its bound, never 202 for an uncommitted intent, and recovers by itself",
            .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "restarts the private cluster"))
        func apiThroughDatabaseRestart() async throws {
            let cluster = try #require(try TestCluster.server.get().cluster)
            try await withLiveAPI(configure: { $0.databaseWaitMilliseconds = 2_000 }) { api in
                let event = try await api.createGeneralAdmission(1_000_000)
                let stop = ChaosCounter()
                // 16 producers send keyed intents back to back through the restart; each records what it was told.
                let replies = await withTaskGroup(of: [(key: String, status: Int, id: String?, retryAfter: Bool, seconds: Double)].self) { group in
                    for client in 0..<16 {
                        group.addTask {
                            var replies: [(key: String, status: Int, id: String?, retryAfter: Bool, seconds: Double)] = []
                            var index = 0
                            while stop.value == 0 {
                                let key = "restart-\(client)-\(index)"
                                index += 1
                                let started = ContinuousClock.now
                                guard
                                    let reply = try? await api.post(
                                        "/events/\(event)/intents", #"{"customer": "c", "quantity": 1}"#, headers: [("Idempotency-Key", key)])
                                else { continue }
                                let seconds = OpenLoad.seconds(ContinuousClock.now - started)
                                replies.append(
                                    (key, reply.status, reply["id"], reply.headers.contains { $0.0.lowercased() == "retry-after" }, seconds))
                                if reply.status == 503 { try? await Task.sleep(for: .milliseconds(100)) }
                            }
                            return replies
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: .seconds(1))
                        try? cluster.stopServer()
                        try? await Task.sleep(for: .seconds(3))
                        try? cluster.startServer()
                        try? await Task.sleep(for: .seconds(4))
                        stop.increment()
                        return []
                    }
                    var all: [(key: String, status: Int, id: String?, retryAfter: Bool, seconds: Double)] = []
                    for await part in group { all += part }
                    return all
                }
                let accepted = replies.filter { $0.status == 202 }
                let unavailable = replies.filter { $0.status == 503 }
                #expect(Set(replies.map(\.status)).isSubset(of: [202, 503]), "only 202 or 503: \(Set(replies.map(\.status)))")
                #expect(unavailable.count > 0, "no request met the database down")
                #expect(unavailable.allSatisfy { $0.retryAfter }, "a 503 without Retry-After")
                #expect(replies.map(\.seconds).max() ?? 0 < 8, "a request was held \(replies.map(\.seconds).max() ?? 0) s")
                // Recovered by itself: the last requests of the run were accepted.
                #expect(replies.suffix(16).contains { $0.status == 202 }, "the API did not recover after the restart")

                // Every 202 names a committed intent, once; a key the API refused was written at most once.
                var committed: [String: Int] = [:]
                let rows = try await api.store.client.query("SELECT key, count(*) FROM idempotency_keys GROUP BY key")
                for try await (key, count) in rows.decode((String, Int).self) { committed[key] = count }
                for reply in accepted { #expect(committed[reply.key] == 1, "202 for \(reply.key), but it was not committed") }
                #expect(committed.values.allSatisfy { $0 == 1 })
                #expect(try await api.count("intents") == committed.count)
                print(
                    "database restart: \(replies.count) requests, \(accepted.count) accepted, \(unavailable.count) answered 503, slowest \(String(format: "%.2f", replies.map(\.seconds).max() ?? 0)) s"
                )
            }
        }

        @Test("A stuck database: every connection carries its timeouts; a batch stalled on a lock is rolled back and its intents are claimed again")
        func stalledBatch() async throws {
            let database = try await {
                var database = try await TestCluster.freshDatabase()
                database.lockTimeoutMilliseconds = 300
                database.statementTimeoutMilliseconds = 2_000
                return database
            }()
            try await withStore(database, logger: testLogger) { store in
                let bounds = try await store.client.query(
                    """
                    SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')
                    """)
                let settings = try await bounds.decode((String, String, String).self).all().map { [$0.0, $0.1, $0.2] }
                #expect(settings == [["2s", "300ms", "30s"]])
                let event = try await store.createEvent(name: "Stuck", layout: .generalAdmission(capacity: 50))
                _ = try await store.enqueue(
                    (0..<80).map { IntentDraft(eventID: event.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })

                var configuration = AllocationWorker.Configuration()
                configuration.batchSizeMax = 16
                configuration.listen = false
                configuration.pollInterval = .milliseconds(50)
                configuration.errorBackoffMax = .milliseconds(200)
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Mutex<Task<Void, any Error>?>(nil)
                // Another client holds a lock the settle needs: the worker's batches stall on it.
                try await withStore(database, logger: testLogger) { other in
                    try await other.client.withTransaction(logger: testLogger) { connection in
                        try await connection.query("LOCK TABLE outcomes IN SHARE MODE", logger: testLogger)
                        running.withLock { $0 = Task { try await worker.run() } }
                        _ = try await poll(every: .milliseconds(20), timeout: .seconds(20)) {
                            worker.totals.failedClaims < 2 ? "fewer than 2 failed claims" : nil
                        }
                    }
                }
                #expect(worker.totals.failedClaims >= 2, "the stalled batches did not time out")
                #expect(worker.totals.intents == 0, "a batch settled while the lock was held")
                _ = try await poll(every: .milliseconds(50), timeout: .seconds(30)) { try await store.totalQueued() > 0 ? "intents queued" : nil }
                running.withLock { $0?.cancel() }
                _ = await running.withLock({ $0 })?.result
                let audit = try await store.audit(eventID: event.id)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.outcomes == 80)
                #expect(audit.ticketsSold == 50)
                #expect(worker.totals.intents == 80, "each intent settled once, by the retried batches")
                // Every failed batch was a real server-side timeout: none was a stale error replayed by the client.
                #expect(worker.totals.failedClaims < 20, "\(worker.totals.failedClaims) failed batches for a lock held for a few hundred ms")
            }
        }

        @Test("SIGTERM to a worker mid-drain: it finishes its batch, exits 0, and leaves nothing half-settled")
        func workerGracefulShutdown() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(50_000)
                try await api.store.prequeue(eventID: event, count: 20_000)
                let workers = workerProcesses(api.database, batchSize: 256)
                try workers.spawn(1)
                // Wait for the drain to be under way, then stop the worker in the middle of it.
                _ = try await poll(every: .milliseconds(20), timeout: .seconds(60)) { try await api.count("outcomes") == 0 ? "no outcome yet" : nil }
                let codes = await workers.terminateAll()
                #expect(codes == [0])
                let outcomes = try await api.count("outcomes")
                let queued = try await api.count("intents")
                #expect(outcomes + queued == 20_000)
                #expect(outcomes % 256 == 0 || queued == 0, "a batch was half-settled: \(outcomes) outcomes")
                #expect(try await api.store.audit(eventID: event).isClean)
            }
        }
    }
}

/// Counts chaos kills across tasks (or raises a stop flag: any count above zero).
final class ChaosCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
