import BoxofficeCore
import BoxofficeStore
import Foundation
import PostgresNIO

/// Statements only the benchmark (and a few tests) run: bulk pre-queueing, counters, server
/// maintenance. The product's SQL stays in the Store; this goes through its package-access pool.
extension Store {
    /// Queues `count` intents for `eventID` in one statement, as if they had arrived in that order
    /// (with their acceptance records, as intake writes them).
    /// `quantities` cycles (1, 2, 1, 2…); `sections` cycles too (nil = anywhere).
    package func prequeue(eventID: EventID, count: Int, quantities: [Int] = [1], sections: [String?] = [nil]) async throws {
        precondition(count >= 0 && !quantities.isEmpty && !sections.isEmpty)
        let sectionTexts = sections.map { $0 ?? "" }
        try await client.query(
            """
            WITH queued AS (
                INSERT INTO intents (public_id, event_id, customer, quantity, section)
                SELECT gen_random_uuid(), \(eventID), 'bench-' || g,
                       (\(quantities)::int[])[1 + g % \(quantities.count)],
                       NULLIF((\(sectionTexts)::text[])[1 + g % \(sectionTexts.count)], '')
                FROM generate_series(1, \(count)) AS g
                RETURNING id, public_id, event_id, created_at
            )
            INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at)
            SELECT id, public_id, event_id, created_at FROM queued
            """, logger: logger)
    }

    /// Queues `count` intents the way a sale's intake does: the intake statement (`enqueue`, what the
    /// API's group commit sends) with groups of ``BenchRunner/intakeGroupRows`` rows, from
    /// ``BenchRunner/intakeWriters`` concurrent writers, each group its own transaction. Nothing
    /// vacuums or checkpoints after it.
    package func fillLikeIntake(eventID: EventID, count: Int, quantities: [Int] = [1], sections: [String?] = [nil]) async throws {
        precondition(count >= 0 && !quantities.isEmpty && !sections.isEmpty)
        let groups = stride(from: 0, to: count, by: BenchRunner.intakeGroupRows).map { $0..<min($0 + BenchRunner.intakeGroupRows, count) }
        let next = WorkCursor()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<BenchRunner.intakeWriters {
                group.addTask {
                    while true {
                        let index = next.take()
                        guard index < groups.count else { return }
                        let drafts = groups[index].map { g in
                            let quantity = quantities[g % quantities.count]
                            let request: PurchaseRequest =
                                sections[g % sections.count].map { .inSection($0, quantity: quantity) } ?? .anywhere(quantity: quantity)
                            return IntentDraft(eventID: eventID, customer: "bench-\(g)", request: request, idempotencyKey: nil)
                        }
                        _ = try await self.enqueue(drafts, notify: false)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Before a timed run that follows millions of intents in and out: vacuum the queue (its dead index
    /// entries are walked by every claim and status read until autovacuum runs) and checkpoint (the
    /// pages those runs dirtied are written now, not during the measurement).
    func vacuumAndCheckpoint() async throws {
        try await vacuumQueue()
        try await client.query("CHECKPOINT", logger: logger)
    }

    /// `VACUUM ANALYZE intents`: fresh statistics and no dead entries after pre-queueing.
    func vacuumQueue() async throws {
        try await client.query("VACUUM ANALYZE intents", logger: logger)
    }

    /// A server setting, e.g. `fsync`, for the benchmark's report.
    func setting(_ name: String) async throws -> String {
        for try await value in try await client.query("SELECT current_setting(\(name))", logger: logger).decode(String.self) { return value }
        return "?"
    }
}

extension Store {
    /// When each of `publicIDs` was decided (`outcomes.decided_at`, the settle statement's start);
    /// undecided ids are absent. Reads 10,000 ids per query.
    func decidedAt(_ publicIDs: [UUID]) async throws -> [UUID: Date] {
        var result: [UUID: Date] = [:]
        for start in stride(from: 0, to: publicIDs.count, by: 10_000) {
            let chunk = Array(publicIDs[start..<min(start + 10_000, publicIDs.count)])
            let rows = try await client.query("SELECT public_id, decided_at FROM outcomes WHERE public_id = ANY(\(chunk)::uuid[])", logger: logger)
            for try await (id, decided) in rows.decode((UUID, Date).self) { result[id] = decided }
        }
        return result
    }

    /// Up to `limit` of the event's live holds, newest first.
    package func heldIntents(of eventID: EventID, limit: Int) async throws -> [UUID] {
        var result: [UUID] = []
        let rows = try await client.query(
            "SELECT public_id FROM outcomes WHERE event_id = \(eventID) AND status = 'held' ORDER BY expires_at DESC LIMIT \(limit)", logger: logger)
        for try await id in rows.decode(UUID.self) { result.append(id) }
        return result
    }

    /// Outcomes written so far (decided intents), all events.
    func decidedCount() async throws -> Int {
        for try await count in try await client.query("SELECT count(*) FROM outcomes", logger: logger).decode(Int.self) { return count }
        return 0
    }

    /// Intents queued for all events.
    package func totalQueued() async throws -> Int {
        for try await count in try await client.query("SELECT count(*) FROM intents", logger: logger).decode(Int.self) { return count }
        return 0
    }
}
