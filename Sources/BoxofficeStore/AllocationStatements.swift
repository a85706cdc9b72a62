import BoxofficeCore
import Foundation
import NIOCore
import PostgresNIO

// The statements of one batch (pick, claim, seat rows, settle), used by `allocateNextBatch` in
// AllocationQueries.swift, and what a batch moves between the counters.

/// The allocation right: the inventory row of an event with work that no other worker holds. Work is
/// queued intents, journal rows (transitions whose counters are owed) or holds past their expiry.
/// The recursive CTEs walk the distinct event ids of the queue, and of the live holds, through their
/// indexes (loose index scans), so the cost follows the number of events with work (or live holds),
/// not the queue's length or the number of holds; each event with live holds costs one more index
/// probe for a due one. With it, the event's `hold_seconds` (one primary-key probe; no lock on
/// `events`) and whether it is owed returns.
struct PickEventStatement: StoreStatement {
    typealias Row = (EventID, Int, Int, Int, Bool)
    static let sample = PickEventStatement()
    /// Having no parameters, a prepared copy is planned once per connection, for the statistics of that
    /// moment, and `plan_cache_mode` cannot change that. A worker that connected to an empty queue (a
    /// fresh database, a truncated table) kept a plan that seq-scanned `intents` for every batch:
    /// under HTTP load, with autovacuum behind, that scan over dead rows was most of PostgreSQL's CPU
    /// (perf: HeapTupleSatisfiesVisibility and heapgetpage on top; auto_explain showed the plan).
    /// Planned per execution, it sees the table's current size and walks the index.
    static let plansPerExecution = true
    private var held: String { IntentStatusWord.held.rawValue }
    /// Events this worker picks only when no other has work (their batches keep failing; see
    /// `AllocationWorker.Configuration.eventDeferMin`).
    var deferring: [EventID] = []

    var query: PostgresQuery {
        """
        WITH RECURSIVE queued(event_id) AS (
            (SELECT event_id FROM intents ORDER BY event_id LIMIT 1)
            UNION ALL
            SELECT (SELECT i.event_id FROM intents i WHERE i.event_id > q.event_id ORDER BY i.event_id LIMIT 1)
            FROM queued q WHERE q.event_id IS NOT NULL
        ), holding(event_id) AS (
            (SELECT event_id FROM outcomes WHERE status = '\(unescaped: held)' ORDER BY event_id LIMIT 1)
            UNION ALL
            SELECT (SELECT o.event_id FROM outcomes o WHERE o.status = '\(unescaped: held)' AND o.event_id > h.event_id ORDER BY o.event_id LIMIT 1)
            FROM holding h WHERE h.event_id IS NOT NULL
        ), owed(event_id) AS (
            SELECT h.event_id FROM holding h
            WHERE h.event_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM outcomes o
                WHERE o.event_id = h.event_id AND o.status = '\(unescaped: held)' AND o.expires_at <= statement_timestamp())
            UNION
            SELECT DISTINCT event_id FROM inventory_journal
        )
        SELECT inv.event_id, inv.capacity, inv.available, (SELECT e.hold_seconds FROM events e WHERE e.id = inv.event_id),
               inv.event_id IN (SELECT event_id FROM owed)
        FROM inventory inv
        WHERE inv.event_id IN (SELECT event_id FROM queued WHERE event_id IS NOT NULL) OR inv.event_id IN (SELECT event_id FROM owed)
        ORDER BY inv.event_id = ANY(\(deferring)::bigint[]), inv.served_at, inv.event_id
        LIMIT 1
        FOR NO KEY UPDATE SKIP LOCKED
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The oldest queued intents of one event: the claim.
///
/// No row locks: the claim runs under the event's allocation right (its inventory row, locked
/// `FOR NO KEY UPDATE SKIP LOCKED` by the pick), and only the holder of that right deletes an event's
/// intents (here, and the quarantine, which waits for the right), so no other transaction can claim or
/// settle these rows meanwhile; the statement's snapshot, taken after the right was granted, sees every
/// intent the previous holder settled. A `FOR UPDATE SKIP LOCKED` here wrote a lock record to the WAL
/// and to each tuple for nothing: measured on a fresh queue of 200,000 intents drained 4,096 at a
/// time (claim + delete only, one PostgreSQL 15 session), 23.4 MB of WAL with the row locks, 11.3 MB
/// without, and about 15% less time. The settle statement still checks that it deleted exactly the
/// claimed rows, so a writer that bypassed the right would fail the batch, not sell twice.
struct ClaimStatement: StoreStatement {
    typealias Row = (Int64, Int, String?, [String]?)
    static let sample = ClaimStatement(eventID: 0, after: 0, batchSizeMax: 1)
    let eventID: EventID
    /// Only intents with a larger id (0: all).
    let after: Int64
    let batchSizeMax: Int

    var query: PostgresQuery {
        """
        SELECT id, quantity, section, seats FROM intents
        WHERE event_id = \(eventID) AND id > \(after)
        ORDER BY id
        LIMIT \(batchSizeMax)
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The seat rows of an event that still have a free seat, and the rows named (section name, row
/// number: where returned seats go back), with their bitmaps.
struct SeatRowsStatement: StoreStatement {
    typealias Row = (Int, Int, Int, ByteBuffer)
    static let sample = SeatRowsStatement(eventID: 0, sections: [], rows: [])
    let eventID: EventID
    let sections: [String]
    let rows: [Int]

    var query: PostgresQuery {
        """
        SELECT r.section, r.row_number, s.seats_per_row, r.taken
        FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section
        WHERE r.event_id = \(eventID)
          AND (r.free > 0 OR (s.name, r.row_number) IN (SELECT * FROM unnest(\(sections)::text[], \(rows)::int[])))
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// Writes a decided batch: outcomes in (with the seats an exact-seat intent asked for), intents out,
/// rows that made no request recorded in `quarantine` (those with an error), changed seat rows and the
/// counters updated, waiters notified at commit; returns the row counts so the caller can check them.
struct SettleStatement: StoreStatement {
    typealias Row = (Int, Int, Int, Int, String, [Double])
    static let sample = SettleStatement(
        eventID: 0, intentIDs: [], statuses: [], reasons: [], seats: [], errors: [], changed: [], bitmaps: [], counters: CounterChange(),
        holdSeconds: 0)
    let eventID: EventID
    let intentIDs: [Int64]
    let statuses: [String]
    let reasons: [String]
    let seats: [String]
    /// Why a row made no request; empty for the intents the allocator decided.
    let errors: [String]
    let changed: [SeatRow]
    let bitmaps: [ByteBuffer]
    let counters: CounterChange
    /// How long a `held` outcome is held, from the statement's timestamp.
    let holdSeconds: Int

    var query: PostgresQuery {
        """
        WITH decided AS (
            SELECT * FROM unnest(\(intentIDs)::bigint[], \(statuses)::text[], \(reasons)::text[], \(seats)::text[], \(errors)::text[])
                AS d(intent_id, status, reason, seats, error)
        ), moved AS (
            -- By primary key alone, so the primary key is the only index that fits. A generic plan cached
            -- while the queue was small (statistics of a few rows) otherwise picks the (event_id, id) index
            -- and reads every queued intent of the event: 90 ms to 1.3 s a batch at a million queued. The
            -- event is checked below instead: a row of another event is not recorded, the counts differ,
            -- and the caller rolls the batch back.
            DELETE FROM intents i WHERE i.id = ANY(\(intentIDs)::bigint[])
            RETURNING i.id, i.public_id, i.event_id, i.customer, i.quantity, i.section, i.seats, i.created_at
        ), recorded AS (
            INSERT INTO outcomes (intent_id, public_id, event_id, customer, quantity, section, exact_seats, status, reason, seats,
                                  requested_seats, accepted_at, decided_at, expires_at)
            SELECT m.id, m.public_id, m.event_id, m.customer, m.quantity, m.section, m.seats IS NOT NULL, d.status, NULLIF(d.reason, ''),
                   coalesce(string_to_array(NULLIF(d.seats, ''), ','), '{}'), m.seats, m.created_at, statement_timestamp(),
                   CASE WHEN d.status = '\(unescaped: IntentStatusWord.held.rawValue)'
                        THEN statement_timestamp() + make_interval(secs => \(holdSeconds)::int) END
            FROM moved m JOIN decided d ON d.intent_id = m.id
            WHERE m.event_id = \(eventID)
            RETURNING extract(epoch FROM decided_at - accepted_at)::float8 AS waited
        ), kept AS (
            INSERT INTO quarantine (intent_id, public_id, event_id, reason, error, quarantined_at)
            SELECT m.id, m.public_id, m.event_id, d.reason, d.error, statement_timestamp()
            FROM moved m JOIN decided d ON d.intent_id = m.id
            WHERE m.event_id = \(eventID) AND d.error <> ''
            RETURNING 1
        ), rows_written AS (
            UPDATE seat_rows r SET taken = u.taken, free = u.free
            FROM unnest(\(changed.map(\.sectionIndex))::int[], \(changed.map(\.row))::int[], \(bitmaps)::bytea[], \(changed.map(\.free))::int[])
                AS u(section, row_number, taken, free)
            WHERE r.event_id = \(eventID) AND r.section = u.section AND r.row_number = u.row_number
            RETURNING 1
        ), counted AS (
            UPDATE inventory SET sold = sold + \(counters.sold), held = held + \(counters.held), available = available + \(counters.available),
                                 served_at = statement_timestamp()
            WHERE event_id = \(eventID)
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM recorded), (SELECT count(*) FROM kept), (SELECT count(*) FROM rows_written), (SELECT count(*) FROM counted),
               pg_notify(\(Store.outcomesChannel), \(eventID)::text),
               (SELECT coalesce(array_agg(waited), '{}') FROM recorded)
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// What one batch moves between an event's counters (`sold + held + available` stays `capacity`).
struct CounterChange: Sendable {
    var sold = 0
    var held = 0
    var available = 0
}
