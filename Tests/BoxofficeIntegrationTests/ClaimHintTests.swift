import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import BoxofficeWorker
import Foundation
import PostgresNIO
import Synchronization
import Testing

extension IntegrationTests {
    @Suite("Claim hints")
    struct ClaimHintTests {
        /// Inserts `count` intents of `event` in a transaction on its own connection, and holds it open
        /// until `whileOpen` returns: ids drawn now, visible only at the commit (an intake commit that lags).
        static func lateCommit(_ store: Store, event: EventID, count: Int, whileOpen: @Sendable () async throws -> Void) async throws {
            try await store.client.withConnection { connection in
                try await connection.query("BEGIN", logger: testLogger)
                try await connection.query(
                    """
                    WITH queued AS (
                        INSERT INTO intents (public_id, event_id, customer, quantity)
                        SELECT gen_random_uuid(), \(event), 'late-' || g, 1 FROM generate_series(1, \(count)) AS g
                        RETURNING id, public_id, event_id, created_at)
                    INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at) SELECT id, public_id, event_id, created_at FROM queued
                    """, logger: testLogger)
                try await whileOpen()
                try await connection.query("COMMIT", logger: testLogger)
            }
        }

        @Test("A claim past a hint skips intents committed late with smaller ids; a hinted claim that finds nothing claims from the start")
        func hintSkipsLateCommits() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Hints", layout: .generalAdmission(capacity: 100)).id
                let settledMax = Mutex<Int64>(0)
                try await Self.lateCommit(store, event: event, count: 5) {
                    _ = try await store.enqueue(
                        (0..<5).map { IntentDraft(eventID: event, customer: "on-time-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                    let report = try #require(try await store.allocateNextBatch(batchSizeMax: 64) { Allocator.allocate($1, from: &$0) })
                    #expect(report.intents == 5, "only the committed intents are claimed")
                    settledMax.withLock { $0 = report.intentIDMax }
                }
                let hint = settledMax.withLock { $0 }
                // Newer intents past the hint: the hinted claim takes them and skips the late ones.
                _ = try await store.enqueue(
                    (0..<3).map { IntentDraft(eventID: event, customer: "newer-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                let past = try #require(
                    try await store.allocateNextBatch(batchSizeMax: 64, claimAfterByEvent: [event: hint]) { Allocator.allocate($1, from: &$0) })
                #expect(past.intents == 3, "the hinted claim starts past the hint")
                #expect(try await store.totalQueued() == 5)
                // Nothing past the hint any more: the hinted claim falls back to the whole queue at once.
                let late = try #require(
                    try await store.allocateNextBatch(batchSizeMax: 64, claimAfterByEvent: [event: past.intentIDMax]) {
                        Allocator.allocate($1, from: &$0)
                    })
                #expect(late.intents == 5 && late.intentIDMax < hint)
                #expect(try await store.totalQueued() == 0)
                #expect(try await store.audit().isClean)
            }
        }

        @Test("A worker settles intents committed late with smaller ids within its hint lifetime")
        func workerSettlesLateCommits() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Late", layout: .generalAdmission(capacity: 1_000)).id
                var configuration = AllocationWorker.Configuration()
                configuration.batchSizeMax = 8
                configuration.claimHintLifetime = .milliseconds(300)
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Task { try await worker.run() }
                try await Self.lateCommit(store, event: event, count: 20) {
                    // Later intents, committed first, keep the worker claiming past the late ones' ids.
                    for round in 0..<10 {
                        _ = try await store.enqueue(
                            (0..<8).map {
                                IntentDraft(eventID: event, customer: "r\(round)-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil)
                            })
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    _ = try await poll(every: .milliseconds(20), timeout: .seconds(30)) { try await store.totalQueued() > 0 ? "queued" : nil }
                }
                _ = try await poll(every: .milliseconds(50), timeout: .seconds(30)) {
                    try await store.totalQueued() > 0 ? "late intents queued" : nil
                }
                running.cancel()
                _ = await running.result
                #expect(try await store.totalQueued() == 0, "intents committed late were never claimed")
                let report = try await store.audit()
                #expect(report.isClean && report.outcomes == 100, "\(report.outcomes) outcomes, \(report.violations)")
            }
        }
    }
}

extension IntegrationTests {
    @Suite("Prune and the lifecycle")
    struct PruneLifecycleTests {
        @Test("A cancel committed while prune waits for the outcome's row lock keeps its outcome: the return is applied once, verify stays clean")
        func pruneSkipsAReturnNotYetApplied() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Pruned", layout: .generalAdmission(capacity: 10)).id
                _ = try await store.enqueue(
                    (0..<2).map { IntentDraft(eventID: event, customer: "c\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                try await ReturnTests.drain(store)
                let cutoff = Date().addingTimeInterval(60)
                let pruned = Mutex<PruneBatch?>(nil)
                // The cancel's transaction holds the outcome's row lock while prune's DELETE reaches it.
                try await store.client.withConnection { connection in
                    try await connection.query("BEGIN", logger: testLogger)
                    try await connection.query(
                        """
                        WITH changed AS (
                            UPDATE outcomes SET status = 'cancelled', changed_at = statement_timestamp()
                            WHERE customer = 'c0' AND event_id = \(event) RETURNING intent_id, event_id, quantity, seats)
                        INSERT INTO inventory_journal (event_id, intent_id, change, quantity, seats)
                        SELECT event_id, intent_id, 'cancel', quantity, seats FROM changed
                        """, logger: testLogger)
                    let prune = Task { try await store.pruneBatch(eventID: event, decidedBefore: cutoff, limit: 100) }
                    try await Task.sleep(for: .milliseconds(500))
                    try await connection.query("COMMIT", logger: testLogger)
                    let batch = try? await prune.value
                    pruned.withLock { $0 = batch }
                }
                #expect(pruned.withLock { $0 }?.outcomes == 1, "only the outcome with nothing owed is pruned")
                #expect(try await store.client.query("SELECT count(*) FROM outcomes WHERE customer = 'c0'").decode(Int.self).all() == [1])
                try await ReturnTests.drain(store)
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }
    }
}
