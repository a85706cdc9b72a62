import BoxofficeCore
import Foundation
import PostgresNIO

/// What one `prune` batch did to one event.
public struct PruneBatch: Sendable, Equatable {
    /// The event had queued intents: nothing was deleted.
    public var onSale: Bool
    public var outcomes: Int
    public var acceptances: Int
    public var quarantined: Int
}

/// Why `prune` would not run, or stopped.
public enum PruneRefusal: Error, CustomStringConvertible, Equatable {
    case noSuchEvent(EventID)
    case onSale(EventID)
    case olderThanShorterThanKeys(older: Duration, keys: Duration)

    public var description: String {
        switch self {
        case .noSuchEvent(let id): "event \(id) does not exist"
        case .onSale(let id):
            "event \(id) is on sale (it has queued intents, live holds or transitions a worker has yet to apply): prune refuses it; "
                + "run it again once its queue is empty and its holds have ended"
        case .olderThanShorterThanKeys(let older, let keys):
            "--older-than (\(Int(older.secondsDouble)) s) must be at least the Idempotency-Key lifetime (\(Int(keys.secondsDouble)) s): "
                + "a key younger than it may still replay an outcome prune would delete"
        }
    }
}

extension Store {
    /// An event is **on sale** while it has queued intents (their outcomes are still being written, and
    /// the arrival-order check of `verify` needs the outcomes around them), live holds (they may still
    /// end and give their seats back) or transitions a worker has yet to apply (`inventory_journal`).
    public func isOnSale(_ eventID: EventID) async throws -> Bool {
        try await fetch("SELECT \(unescaped: Self.onSaleSQL(eventID))").first?.decode(Bool.self) ?? false
    }

    /// The instant `olderThan` before the database's now: one cutoff for a whole prune, so the keys
    /// deleted first cover every outcome deleted after.
    public func pruneCutoff(olderThan: Duration) async throws -> Date {
        try await fetch("SELECT now() - make_interval(secs => \(olderThan.secondsDouble)::float8)").first?.decode(Date.self) ?? .distantPast
    }

    /// Events with an outcome decided before `cutoff` (`eventID` narrows to one): prune's work list,
    /// read through the outcomes' (event_id, decided_at) index, one probe per event.
    public func eventsWithOutcomes(decidedBefore cutoff: Date, eventID: EventID? = nil) async throws -> [EventID] {
        try await fetch(
            """
            SELECT e.id FROM events e
            WHERE (\(eventID)::bigint IS NULL OR e.id = \(eventID))
              AND EXISTS (SELECT 1 FROM outcomes o WHERE o.event_id = e.id AND o.decided_at < \(cutoff))
            ORDER BY e.id
            """
        ).map { try $0.decode(EventID.self) }
    }

    /// True when event `eventID` exists.
    public func eventExists(_ eventID: EventID) async throws -> Bool {
        try await fetch("SELECT EXISTS (SELECT 1 FROM events WHERE id = \(eventID))").first?.decode(Bool.self) ?? false
    }

    /// Deletes every Idempotency-Key created before `cutoff`, `limit` per statement; returns how many.
    /// prune runs it before deleting outcomes: a key is never younger than its intent's decision, so
    /// no key is left pointing at a pruned outcome (verify checks that every key has its intent).
    public func deleteKeys(createdBefore cutoff: Date, limit: Int, progress: (Int) -> Void = { _ in }) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await rows(SweepKeysStatement(cutoff: cutoff, olderThanSeconds: 0, limit: limit)).first ?? 0
            total += deleted
            if deleted > 0 { progress(total) }
            if deleted < limit { return total }
        }
    }

    /// Deletes up to `limit` outcomes of event `eventID` decided before `cutoff`, oldest first, with
    /// their acceptance records and quarantine rows, and adds what it removed to the event's tally in
    /// `pruned_outcomes`, all in one statement (one transaction), so `verify`'s equations hold after
    /// every batch: accepted = queued + settled (both sides lose the same intents), and inventory.sold =
    /// tickets in confirmed outcomes + tickets pruned.
    ///
    /// Nothing is deleted while the event has queued intents (checked in the same statement; the
    /// batch reports `onSale`).
    ///
    /// The acceptance records are found through the BRIN index on their intent ids (migration 0006):
    /// an event's outcomes, taken in decision order, are close to its arrival order, so a batch's ids
    /// span a narrow range and the delete reads the few page ranges holding it.
    public func pruneBatch(eventID: EventID, decidedBefore cutoff: Date, limit: Int) async throws -> PruneBatch {
        try await transaction { connection in
            let batch = try await self.pruneBatch(eventID: eventID, decidedBefore: cutoff, limit: limit, on: connection)
            // Every outcome has exactly one acceptance record (verify checks it): any other count means
            // the delete missed or overreached, and the batch rolls back.
            guard batch.acceptances == batch.outcomes else {
                throw StoreError.invariantBroken(
                    "prune of event \(eventID) found \(batch.acceptances) acceptance records for \(batch.outcomes) outcomes; rolled back")
            }
            return batch
        }
    }

    /// SQL: whether the event is on sale (see ``isOnSale(_:)``): three index probes.
    static func onSaleSQL(_ eventID: EventID) -> String {
        """
        (EXISTS (SELECT 1 FROM intents WHERE event_id = \(eventID))
         OR EXISTS (SELECT 1 FROM outcomes WHERE event_id = \(eventID) AND status = '\(IntentStatusWord.held.rawValue)')
         OR EXISTS (SELECT 1 FROM inventory_journal WHERE event_id = \(eventID)))
        """
    }

    func pruneBatch(eventID: EventID, decidedBefore cutoff: Date, limit: Int, on connection: PostgresConnection) async throws -> PruneBatch {
        var batch = PruneBatch(onSale: false, outcomes: 0, acceptances: 0, quarantined: 0)
        for try await (onSale, outcomes, acceptances, quarantined) in try await connection.query(
            """
            WITH live AS (
                SELECT \(unescaped: Self.onSaleSQL(eventID)) AS on_sale
            ), doomed AS (
                DELETE FROM outcomes
                WHERE intent_id IN (
                    SELECT intent_id FROM outcomes
                    WHERE event_id = \(eventID) AND decided_at < \(cutoff)
                    ORDER BY decided_at, intent_id
                    LIMIT \(limit))
                  AND NOT (SELECT on_sale FROM live)
                  -- Re-checked on the row itself after waiting for its lock: a hold, or a release or cancel
                  -- whose return a worker has not applied yet (committed after this statement's snapshot),
                  -- is never deleted, so no journal row is left without its outcome.
                  AND status <> '\(unescaped: IntentStatusWord.held.rawValue)'
                  AND (status NOT IN ('\(unescaped: IntentStatusWord.released.rawValue)', '\(unescaped: IntentStatusWord.cancelled.rawValue)')
                       OR returned_at IS NOT NULL)
                RETURNING intent_id, status, quantity, decided_at
            ), accepted AS (
                DELETE FROM acceptances
                WHERE intent_id BETWEEN (SELECT min(intent_id) FROM doomed) AND (SELECT max(intent_id) FROM doomed)
                  AND intent_id IN (SELECT intent_id FROM doomed)
                RETURNING 1
            ), quarantined AS (
                DELETE FROM quarantine WHERE intent_id IN (SELECT intent_id FROM doomed)
                RETURNING 1
            ), tally AS (
                INSERT INTO pruned_outcomes AS p (event_id, outcomes, confirmed, tickets, decided_through, pruned_at)
                SELECT \(eventID), count(*), count(*) FILTER (WHERE status = 'confirmed'),
                       coalesce(sum(quantity) FILTER (WHERE status = 'confirmed'), 0), max(decided_at), now()
                FROM doomed
                HAVING count(*) > 0
                ON CONFLICT (event_id) DO UPDATE
                    SET outcomes = p.outcomes + excluded.outcomes, confirmed = p.confirmed + excluded.confirmed,
                        tickets = p.tickets + excluded.tickets,
                        decided_through = greatest(p.decided_through, excluded.decided_through), pruned_at = excluded.pruned_at
            )
            SELECT (SELECT on_sale FROM live), (SELECT count(*)::int FROM doomed),
                   (SELECT count(*)::int FROM accepted), (SELECT count(*)::int FROM quarantined)
            """, logger: logger
        ).decode((Bool, Int, Int, Int).self) {
            batch = PruneBatch(onSale: onSale, outcomes: outcomes, acceptances: acceptances, quarantined: quarantined)
        }
        return batch
    }
}

/// What `prune` did, in all.
public struct PruneSummary: Sendable, Equatable {
    public var keys = 0
    public var outcomes = 0
    public var acceptances = 0
    public var quarantined = 0
    public var batches = 0
    /// Events some outcomes of which were deleted.
    public var prunedEvents: [EventID] = []
    /// Events left alone because they were on sale (only without an event filter; with one, prune throws).
    public var skippedOnSale: [EventID] = []
}

/// One step of `prune`, for its progress output.
public enum PruneStep: Sendable {
    case keys(deletedSoFar: Int)
    case batch(EventID, PruneBatch, eventOutcomesSoFar: Int)
    case skipped(EventID)
}

extension Store {
    /// Deletes settled outcomes decided more than `olderThan` ago, with their acceptance records,
    /// quarantine rows and Idempotency-Keys, `batchSize` rows per statement, event by event, skipping
    /// (or, for the one event asked for, refusing) events on sale. The keys go first: every key
    /// created before the cutoff (all expired, since `olderThan` is at least the key lifetime), so no
    /// key outlives its intent.
    public func prune(
        olderThan: Duration, eventID: EventID? = nil, batchSize: Int = Retention.pruneBatchSizeDefault,
        progress: (PruneStep) -> Void = { _ in }
    ) async throws -> PruneSummary {
        guard olderThan >= idempotencyKeyLifetime else {
            throw PruneRefusal.olderThanShorterThanKeys(older: olderThan, keys: idempotencyKeyLifetime)
        }
        if let eventID {
            guard try await eventExists(eventID) else { throw PruneRefusal.noSuchEvent(eventID) }
            guard try await !isOnSale(eventID) else { throw PruneRefusal.onSale(eventID) }
        }
        var summary = PruneSummary()
        let cutoff = try await pruneCutoff(olderThan: olderThan)
        summary.keys = try await deleteKeys(createdBefore: cutoff, limit: batchSize) { progress(.keys(deletedSoFar: $0)) }
        for event in try await eventsWithOutcomes(decidedBefore: cutoff, eventID: eventID) {
            var eventOutcomes = 0
            while true {
                let batch = try await pruneBatch(eventID: event, decidedBefore: cutoff, limit: batchSize)
                if batch.onSale {
                    // It went on sale since the check above (or was never asked for by name).
                    if eventID != nil { throw PruneRefusal.onSale(event) }
                    summary.skippedOnSale.append(event)
                    progress(.skipped(event))
                    break
                }
                summary.batches += 1
                summary.outcomes += batch.outcomes
                summary.acceptances += batch.acceptances
                summary.quarantined += batch.quarantined
                eventOutcomes += batch.outcomes
                progress(.batch(event, batch, eventOutcomesSoFar: eventOutcomes))
                if batch.outcomes < batchSize { break }
            }
            if eventOutcomes > 0 { summary.prunedEvents.append(event) }
        }
        return summary
    }
}
