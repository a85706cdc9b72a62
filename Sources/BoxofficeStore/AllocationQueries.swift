import BoxofficeCore
import Foundation
import NIOCore
import PostgresNIO

/// What one settled batch did: the worker logs it, the benchmark sums it.
public struct BatchReport: Sendable, Equatable {
    public let eventID: EventID
    /// Intents claimed and settled, quarantined ones included.
    public let intents: Int
    public let confirmed: Int
    /// Rejected by the allocator or, for the ``quarantined`` ones, by the Store.
    public let rejected: Int
    /// Claimed rows that did not make a request: rejected as `invalid_request` and recorded in
    /// `quarantine`, in this same batch.
    public let quarantined: Int
    /// Tickets granted by this batch (seats, or general-admission tickets): sold, or held when the
    /// event has holds.
    public let ticketsSold: Int
    /// Of ``ticketsSold``, those held (the event has holds); 0 when the batch sold outright.
    public let ticketsHeld: Int
    /// Holds this batch found past their expiry and expired (their tickets are back in the sale).
    public var holdsExpired = 0
    /// Tickets back into the sale before this batch allocated, by how: released holds, expired holds,
    /// cancelled orders. The batch's grants may include them.
    public var ticketsReleased = 0
    public var ticketsExpired = 0
    public var ticketsCancelled = 0
    public var ticketsReturned: Int { ticketsReleased + ticketsExpired + ticketsCancelled }
    /// Tickets of holds confirmed since the last batch (moved from held to sold).
    public var ticketsConfirmed = 0
    /// The largest intent id settled: a worker that shrank this event's claims after failures knows
    /// from it when the batch it suspects has been worked through.
    public let intentIDMax: Int64
    /// Rejections by reason (quarantined rows included), for metrics.
    public var rejectedByReason: [String: Int] = [:]
    /// Seconds from each settled intent's acceptance to its decision (the settle statement's time), for metrics.
    public var decisionSeconds: [Double] = []
}

extension Store {
    /// Claims and settles one batch in one transaction; nil when no event has claimable work.
    ///
    /// Cost of one batch, whatever its size: BEGIN, pick the event and lock its allocation right,
    /// claim up to `batchSizeMax` intents, (seat maps: load rows with free seats), one set-based settle
    /// statement, COMMIT: 5–6 round trips and one WAL flush. `allocate` runs in between, with no I/O.
    /// When the pick says the event is owed returns (journal rows, due holds), one more statement takes
    /// them in first (``takeReturns(of:limit:on:)``), so returned tickets go back into the sale before
    /// the claimed intents are allocated, in this same transaction, at most `batchSizeMax` of each kind.
    /// An event with returns but no queued intents is picked too: its batch settles no intent.
    ///
    /// `claimAfterByEvent` starts the claim of the events named past an intent id (the largest this
    /// worker settled there: every intent below it that was committed by then is settled): the index
    /// range scan then starts there instead of stepping over the entries of every intent the sale
    /// settled before, which stay in the index until vacuum (measured: 1,500 buffers and 9.6 ms per
    /// claim on average over a million-intent drain without it). An intent committed late with a
    /// smaller id is skipped by such a claim, so the worker claims without the hint every 250 ms per
    /// event (``AllocationWorker/Configuration/claimHintLifetime``), and at once when the hinted claim
    /// finds nothing.
    ///
    /// `claimSizeMaxByEvent` claims fewer for the events named (a worker shrinks the claims of an
    /// event whose batches keep failing). A claimed row that does not make a request of its event is
    /// not given to `allocate`: it is settled in the same statement as rejected (`invalid_request`)
    /// and recorded in `quarantine` with the reason, so one bad row cannot fail its batch. A failure
    /// after the event is picked is thrown as a ``BatchFailure``.
    public func allocateNextBatch(
        batchSizeMax: Int,
        claimSizeMaxByEvent: [EventID: Int] = [:],
        claimAfterByEvent: [EventID: Int64] = [:],
        allocate: @Sendable (inout Inventory, [PendingIntent]) -> [Outcome]
    ) async throws -> BatchReport? {
        precondition(batchSizeMax >= 1)
        return try await transaction { connection -> BatchReport? in
            // The allocation right: the inventory row of an event with queued intents that no other worker
            // holds. The recursive CTE walks the distinct event ids of the queue through its index (a loose
            // index scan), so its cost follows the number of events with work, not the queue's length.
            guard let (eventID, capacity, available, holdSeconds, owed) = try await self.rows(PickEventStatement(), on: connection).first
            else { return nil }
            var claimed: [Int64] = []
            var suspects: [Int64] = []
            do {
                let claimSizeMax = max(1, min(batchSizeMax, claimSizeMaxByEvent[eventID] ?? batchSizeMax))
                let layout = try await self.layout(of: eventID, on: connection)
                let returns = owed ? try await self.takeReturns(of: eventID, limit: batchSizeMax, on: connection) : Returns()
                var batch: [PendingIntent] = []
                var invalid: [SetAside] = []
                batch.reserveCapacity(claimSizeMax)
                // A hinted claim that finds nothing claims again from the start: what is queued then committed
                // late with a smaller id, and must not wait for the hint to age.
                var claimRows = try await self.rows(
                    ClaimStatement(eventID: eventID, after: claimAfterByEvent[eventID] ?? 0, batchSizeMax: claimSizeMax), on: connection)
                if claimRows.isEmpty, claimAfterByEvent[eventID] != nil {
                    claimRows = try await self.rows(ClaimStatement(eventID: eventID, after: 0, batchSizeMax: claimSizeMax), on: connection)
                }
                for (id, quantity, section, seats) in claimRows {
                    claimed.append(id)
                    do {
                        let request = try PurchaseRequest(quantity: quantity, section: section, seats: seats)
                        if let problem = layout.problem(with: request) {
                            invalid.append(SetAside(intentID: id, reason: .invalidRequest, error: problem))
                        } else {
                            batch.append(PendingIntent(id: id, request: request))
                        }
                    } catch {
                        invalid.append(SetAside(intentID: id, reason: .invalidRequest, error: String(describing: error)))
                    }
                }
                // Nothing claimed and nothing owed: the due holds were all locked by confirms in flight.
                guard !claimed.isEmpty || !returns.isEmpty else { return nil }

                var inventory: Inventory
                switch layout {
                case .generalAdmission:
                    inventory = Inventory(generalAdmission: capacity, available: available)
                case .seatMap(let sections):
                    let rows = try await self.seatRows(of: eventID, freeOrHolding: returns.givenBack.flatMap(\.seats), on: connection)
                    inventory = Inventory(sections: sections, rows: rows)
                    guard inventory.available == available else {
                        throw StoreError.invariantBroken(
                            "event \(eventID): inventory says \(available) available, seat rows say \(inventory.available)")
                    }
                }
                for given in returns.givenBack {
                    do {
                        try inventory.giveBack(quantity: given.quantity, seats: given.seats)
                    } catch {
                        throw StoreError.invariantBroken("event \(eventID): returned tickets do not fit back: \(error)")
                    }
                }
                let availableBefore = inventory.available

                let outcomes = allocate(&inventory, batch)
                precondition(outcomes.count == batch.count, "the allocator must decide every intent of the batch")
                let granted = availableBefore - inventory.available
                let ticketsHeld = holdSeconds > 0 ? granted : 0
                let change = CounterChange(
                    sold: granted - ticketsHeld + returns.confirmed - returns.cancelled,
                    held: ticketsHeld - returns.confirmed - returns.released - returns.expired,
                    available: returns.ticketsReturned - granted)
                // From here on a failure may be the doing of an intent of the batch (a value the settle
                // statement refuses, a row that makes it run past the statement timeout).
                suspects = claimed
                let decisionSeconds = try await self.settle(
                    eventID: eventID, batch: batch, outcomes: outcomes, setAside: invalid, changedRows: inventory.changedRows,
                    counters: change, holdSeconds: holdSeconds, on: connection)
                let confirmed = outcomes.lazy.filter(\.isConfirmed).count
                var rejectedByReason: [String: Int] = [:]
                for case .rejected(let reason) in outcomes { rejectedByReason[reason.rawValue, default: 0] += 1 }
                for row in invalid { rejectedByReason[row.reason.rawValue, default: 0] += 1 }
                var report = BatchReport(
                    eventID: eventID, intents: claimed.count, confirmed: confirmed, rejected: claimed.count - confirmed,
                    quarantined: invalid.count, ticketsSold: granted, ticketsHeld: ticketsHeld, intentIDMax: claimed.max() ?? 0,
                    rejectedByReason: rejectedByReason, decisionSeconds: decisionSeconds)
                report.holdsExpired = returns.holdsExpired
                report.ticketsReleased = returns.released
                report.ticketsExpired = returns.expired
                report.ticketsCancelled = returns.cancelled
                report.ticketsConfirmed = returns.confirmed
                return report
            } catch {
                throw BatchFailure(eventID: eventID, suspectIntentIDs: suspects, underlying: error)
            }
        }
    }

    func layout(of eventID: EventID, on connection: PostgresConnection) async throws -> EventLayout {
        if let cached = cachedLayout(of: eventID) { return cached }
        guard let (_, layout) = try await loadEvent(eventID, on: connection) else {
            throw StoreError.invariantBroken("event \(eventID) has inventory but no events row")
        }
        remember(layout, of: eventID)
        return layout
    }

    /// The event's seat rows with a free seat, and those holding one of `returning` (seats coming back).
    func seatRows(of eventID: EventID, freeOrHolding returning: [SeatLabel], on connection: PostgresConnection) async throws -> [SeatRow] {
        var result: [SeatRow] = []
        let statement = SeatRowsStatement(eventID: eventID, sections: returning.map(\.section), rows: returning.map(\.row))
        for (section, rowNumber, width, taken) in try await rows(statement, on: connection) {
            let bits = try SeatBitmap.taken(taken, seats: width, of: "event \(eventID)'s seat row \(section)/\(rowNumber)")
            result.append(SeatRow(sectionIndex: section, row: rowNumber, taken: bits))
        }
        return result
    }

    /// Writes a decided batch with one statement: outcomes in, intents out, set-aside rows rejected
    /// with their reason and recorded in `quarantine`, changed seat rows and the counters updated,
    /// waiters notified at commit. Row counts are checked: the second place the "settled exactly once"
    /// invariant is asserted. With `holdSeconds` > 0 each grant is settled `held` until now + that many
    /// seconds. `counters` is what the batch moves between sold, held and available (its grants and the
    /// returns taken in before it). Returns each settled intent's decision latency (accepted → decided,
    /// seconds).
    @discardableResult
    func settle(
        eventID: EventID, batch: [PendingIntent], outcomes: [Outcome], setAside: [SetAside], changedRows changed: [SeatRow],
        counters: CounterChange, holdSeconds: Int, on connection: PostgresConnection
    ) async throws -> [Double] {
        let count = batch.count + setAside.count
        var statuses: [String] = []
        var reasons: [String] = []
        var seats: [String] = []
        var errors: [String] = []
        statuses.reserveCapacity(count)
        reasons.reserveCapacity(count)
        seats.reserveCapacity(count)
        errors.reserveCapacity(count)
        let granted = holdSeconds > 0 ? IntentStatusWord.held.rawValue : IntentStatusWord.confirmed.rawValue
        for outcome in outcomes {
            let columns = outcome.columns
            statuses.append(outcome.isConfirmed ? granted : columns.status)
            reasons.append(columns.reason)
            seats.append(columns.seats)
            errors.append("")
        }
        for row in setAside {
            let columns = Outcome.rejected(row.reason).columns
            statuses.append(columns.status)
            reasons.append(columns.reason)
            seats.append(columns.seats)
            errors.append(String(row.error.prefix(Self.quarantineErrorLengthMax)))
        }
        let bitmaps = changed.map { SeatBitmap.buffer($0.taken) }
        let statement = SettleStatement(
            eventID: eventID, intentIDs: batch.map(\.id) + setAside.map(\.intentID), statuses: statuses, reasons: reasons,
            seats: seats, errors: errors, changed: changed, bitmaps: bitmaps, counters: counters, holdSeconds: holdSeconds)
        var decisionSeconds: [Double] = []
        for (recorded, kept, rowsWritten, counted, _, waited) in try await rows(statement, on: connection) {
            decisionSeconds = waited
            guard recorded == count, kept == setAside.count, rowsWritten == changed.count, counted == 1 else {
                throw StoreError.invariantBroken(
                    "event \(eventID): settle wrote \(recorded)/\(count) outcomes, \(kept)/\(setAside.count) quarantine rows, \(rowsWritten)/\(changed.count) seat rows, \(counted)/1 inventory rows"
                )
            }
        }
        return decisionSeconds
    }
}

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
        ORDER BY inv.served_at, inv.event_id
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
