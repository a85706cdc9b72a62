import AsyncHTTPClient
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
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
                let sale = load
                let kills = ChaosCounter()
                let result = await withTaskGroup(of: SaleLoad.Result?.self) { group in
                    group.addTask {
                        var random = SplitMix64(seed: 7)
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(1))
                            if Task.isCancelled { break }
                            workers.kill(at: Int(random.next() % UInt64(max(workers.count, 1))))
                            try? workers.spawn(1)
                            kills.increment()
                        }
                        return nil
                    }
                    group.addTask { await SaleLoad(sale).run(client: api.http) }
                    var result: SaleLoad.Result?
                    for await value in group where value != nil {
                        result = value
                        group.cancelAll()
                    }
                    return result!
                }
                let codes = await workers.terminateAll()
                #expect(codes.allSatisfy { $0 == 0 }, "survivors must exit 0 on SIGTERM: \(codes)")
                #expect(kills.value >= 2, "the sale ended before the chaos loop killed anything")
                try await SaleTests.expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
                #expect(result.ticketsConfirmed == capacity)
                print("chaos: intents \(result.accepted.count), kills \(kills.value), confirmed \(result.confirmed), rejected \(result.rejected), tickets \(result.ticketsConfirmed)/\(capacity), lost 0, duplicated 0, oversold 0")
            }
        }

        @Test("Database restart mid-drain: workers back off, reconnect and finish; nothing lost or settled twice",
              .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "restarts the private cluster"))
        func databaseRestart() async throws {
            let database = try await TestCluster.freshDatabase()
            let cluster = try #require(try TestCluster.handle.get().cluster)
            let event = try await withStore(database) { store in
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
            let deadline = ContinuousClock.now + .seconds(240)
            let (queued, audit) = try await withStore(database) { store in
                while try await store.totalQueued() > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
                return (try await store.totalQueued(), try await store.audit(eventID: event))
            }
            #expect(await workers.terminateAll() == [0, 0])
            #expect(queued == 0, "workers did not finish the sale after the restart")
            #expect(audit.isClean, "\(audit.violations)")
            #expect(audit.outcomes == 40_000)
            #expect(audit.ticketsSold == 30_000)
        }

        @Test("SIGTERM to a worker mid-drain: it finishes its batch, exits 0, and leaves nothing half-settled")
        func workerGracefulShutdown() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(50_000)
                try await api.store.prequeue(eventID: event, count: 20_000)
                let workers = workerProcesses(api.database, batchSize: 256)
                try workers.spawn(1)
                // Wait for the drain to be under way, then stop the worker in the middle of it.
                let deadline = ContinuousClock.now + .seconds(60)
                while try await api.count("outcomes") == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
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

/// Counts chaos kills across tasks.
final class ChaosCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
