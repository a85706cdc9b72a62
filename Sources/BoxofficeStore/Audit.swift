import BoxofficeCore
import Foundation
import PostgresNIO

// Long on purpose: every invariant `verify` checks is one SQL statement in the one list below, read
// in one snapshot; splitting the list across files would scatter what an auditor reads together.

/// The result of checking every invariant against the database.
public struct AuditReport: Sendable, Equatable {
    /// One line per broken invariant; empty when all hold.
    public var violations: [String] = []
    public var events = 0
    /// Intents accepted by intake (acceptance records): queued + settled, quarantined included.
    public var accepted = 0
    public var outcomes = 0
    public var confirmed = 0
    /// Outcomes in a live hold (events with `hold_seconds` > 0).
    public var held = 0
    /// Grants that gave their tickets back: holds released by their buyers, holds expired by a worker,
    /// orders cancelled.
    public var released = 0
    public var expired = 0
    public var cancelled = 0
    /// Transitions whose counters a worker has yet to apply (`inventory_journal` rows).
    public var journalPending = 0
    /// The latest an expired hold was expired after its `expires_at`, in seconds (0 when none expired).
    public var expiryLatenessMaxSeconds = 0.0
    /// Rejected outcomes, quarantined ones included.
    public var rejected = 0
    /// Outcomes rejected as `invalid_request` or `quarantined`: set aside, not decided. Reported,
    /// not a violation.
    public var quarantined = 0
    /// The first ``Store/auditQuarantineListMax`` quarantined intents: event, public id, reason, error.
    public var quarantinedIntents: [String] = []
    public var pending = 0
    public var ticketsSold = 0

    public var isClean: Bool { violations.isEmpty }
}

/// How late a hold may be expired: a running worker looks for due holds at least every idle poll
/// (250 ms) and expires them in its next batch, so a hold is expired well within this once the
/// workers keep up; `verify` reports a live hold further past its expiry as a violation (no worker
/// running, or workers far behind).
public enum HoldExpiry {
    public static let latenessMax: Duration = .seconds(5)
}

extension Store {
    /// Quarantined intents listed by name in an audit report; the count covers them all.
    public static let auditQuarantineListMax = 100
    /// Intent ids named per event in one "missing" or "unrecorded" violation; the count covers them all.
    public static let auditIntentsNamedMax = 20
    /// Violation lines kept in a report.
    public static let auditViolationsMax = 1_000

    /// Checks every invariant of the design from the database alone: the second place each one is
    /// asserted (the first is the allocator and the settle row counts).
    ///
    /// `eventID` limits the audit to one event. Each check is one aggregate statement; all of them run
    /// in one transaction, `REPEATABLE READ READ ONLY`, so they see one snapshot even while intake and
    /// workers keep writing (a sale can be audited live), and without a statement timeout: the pool's
    /// bound is sized for a batch, and an audit reads whole tables.
    ///
    /// `holdLatenessMax` is how far past its expiry a hold may still be held (nil: not checked, for an
    /// audit of a database whose workers are stopped on purpose).
    public func audit(eventID: EventID? = nil, holdLatenessMax: Duration? = HoldExpiry.latenessMax) async throws -> AuditReport {
        try await transaction(snapshot: true) { connection in
            try await connection.query("SET LOCAL statement_timeout = 0", logger: self.logger)
            return try await self.audit(eventID: eventID, holdLatenessMax: holdLatenessMax, on: connection)
        }
    }

    func audit(eventID: EventID?, holdLatenessMax: Duration?, on connection: PostgresConnection) async throws -> AuditReport {
        var report = AuditReport()
        // A NULL filter means every event.
        let scope = eventID
        let quarantineReasons = RejectionReason.allCases.filter(\.isQuarantine).map(\.rawValue)
        let knownReasons = RejectionReason.allCases.map(\.rawValue)
        let named = Self.auditIntentsNamedMax
        // Granted: held or confirmed (a hold's seats are as taken as a sale's).
        let live = IntentStatusWord.liveSQL("status")
        let liveO = IntentStatusWord.liveSQL("o.status")
        let returned = IntentStatusWord.inSQL("status", IntentStatusWord.returned)
        let allWords = IntentStatusWord.inSQL("status", IntentStatusWord.allCases.filter { $0 != .pending })
        let latenessSeconds = holdLatenessMax.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }

        for try await (released, expired, cancelled, journal, lateness) in try await connection.query(
            """
            SELECT (SELECT count(*) FROM outcomes WHERE status = 'released' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE status = 'expired' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE status = 'cancelled' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM inventory_journal WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT coalesce(extract(epoch FROM max(changed_at - expires_at)), 0)::float8 FROM outcomes
                    WHERE status = 'expired' AND (\(scope)::bigint IS NULL OR event_id = \(scope)))
            """, logger: logger
        ).decode((Int, Int, Int, Int, Double).self) {
            report.released = released
            report.expired = expired
            report.cancelled = cancelled
            report.journalPending = journal
            report.expiryLatenessMaxSeconds = lateness
        }

        for try await (events, accepted, outcomes, confirmed, held, rejected, quarantined, pending, sold) in try await connection.query(
            """
            SELECT (SELECT count(*) FROM events WHERE \(scope)::bigint IS NULL OR id = \(scope)),
                   (SELECT count(*) FROM acceptances WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT count(*) FROM outcomes WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT count(*) FROM outcomes WHERE status = 'confirmed' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE status = 'held' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE status = 'rejected' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE reason = ANY(\(quarantineReasons)::text[]) AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM intents WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT coalesce(sum(sold), 0) FROM inventory WHERE \(scope)::bigint IS NULL OR event_id = \(scope))
            """, logger: logger
        ).decode((Int, Int, Int, Int, Int, Int, Int, Int, Int).self) {
            report.events = events
            report.accepted = accepted
            report.outcomes = outcomes
            report.confirmed = confirmed
            report.held = held
            report.rejected = rejected
            report.quarantined = quarantined
            report.pending = pending
            report.ticketsSold = sold
        }
        for try await line in try await connection.query(
            """
            SELECT format('event %s intent %s: %s: %s', event_id, public_id, reason, error)
            FROM quarantine
            WHERE \(scope)::bigint IS NULL OR event_id = \(scope)
            ORDER BY quarantined_at, intent_id
            LIMIT \(Self.auditQuarantineListMax)
            """, logger: logger
        ).decode(String.self) {
            report.quarantinedIntents.append(line)
        }

        let checks: [(String, PostgresQuery)] = [
            (
                "event sells more than its capacity, or sold + held + available != capacity",
                """
                SELECT format('event %s: sold %s + held %s + available %s, capacity %s (events.capacity %s)', inv.event_id, inv.sold, inv.held,
                              inv.available, inv.capacity, e.capacity)
                FROM inventory inv JOIN events e ON e.id = inv.event_id
                WHERE (\(scope)::bigint IS NULL OR inv.event_id = \(scope))
                  AND (inv.sold + inv.held > inv.capacity OR inv.sold + inv.held + inv.available <> inv.capacity OR inv.capacity <> e.capacity
                       OR inv.available < 0 OR inv.held < 0 OR inv.sold < 0)
                """
            ),
            // The API's transitions change outcomes at once and owe the counters a journal row, which the
            // worker holding the event's allocation right applies: counted in until it does.
            (
                "inventory.sold or inventory.held differs from the tickets in confirmed or held outcomes (journal rows not yet applied, and tickets `prune` deleted, counted in)",
                """
                SELECT format('event %s: inventory sold %s, held %s; outcomes, journal and pruned say sold %s, held %s', inv.event_id, inv.sold, inv.held,
                              coalesce(o.sold, 0) + coalesce(j.sold, 0) + coalesce(p.tickets, 0), coalesce(o.held, 0) + coalesce(j.held, 0))
                FROM inventory inv
                LEFT JOIN (SELECT event_id, sum(quantity) FILTER (WHERE status = 'confirmed') AS sold,
                                  sum(quantity) FILTER (WHERE status = 'held') AS held
                           FROM outcomes GROUP BY event_id) o
                  ON o.event_id = inv.event_id
                LEFT JOIN (SELECT event_id,
                                  sum(CASE change WHEN 'confirm' THEN -quantity WHEN 'cancel' THEN quantity ELSE 0 END) AS sold,
                                  sum(CASE change WHEN 'confirm' THEN quantity WHEN 'release' THEN quantity ELSE 0 END) AS held
                           FROM inventory_journal GROUP BY event_id) j
                  ON j.event_id = inv.event_id
                LEFT JOIN pruned_outcomes p ON p.event_id = inv.event_id
                WHERE (\(scope)::bigint IS NULL OR inv.event_id = \(scope))
                  AND (inv.sold <> coalesce(o.sold, 0) + coalesce(j.sold, 0) + coalesce(p.tickets, 0) OR inv.held <> coalesce(o.held, 0) + coalesce(j.held, 0))
                """
            ),
            (
                "a released, expired or cancelled grant was returned to the sale other than exactly once",
                """
                SELECT format('intent %s (%s): returned_at %s, %s journal rows waiting to return it', o.public_id, o.status,
                              coalesce(o.returned_at::text, 'null'), coalesce(j.n, 0))
                FROM outcomes o
                LEFT JOIN (SELECT intent_id, count(*) AS n FROM inventory_journal WHERE change IN ('release', 'cancel') GROUP BY intent_id) j
                  ON j.intent_id = o.intent_id
                WHERE (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                  AND (CASE WHEN o.returned_at IS NULL THEN 0 ELSE 1 END + coalesce(j.n, 0))
                      <> CASE WHEN \(unescaped: returned.replacingOccurrences(of: "status", with: "o.status")) THEN 1 ELSE 0 END
                """
            ),
            (
                "an inventory journal row disagrees with its outcome",
                """
                SELECT format('journal %s (%s of intent %s, event %s, %s tickets): outcome %s', j.id, j.change, j.intent_id, j.event_id, j.quantity,
                              coalesce(o.status || ' of event ' || o.event_id || ', ' || o.quantity || ' tickets', 'missing'))
                FROM inventory_journal j LEFT JOIN outcomes o ON o.intent_id = j.intent_id
                WHERE (\(scope)::bigint IS NULL OR j.event_id = \(scope))
                  AND (o.intent_id IS NULL OR o.event_id <> j.event_id OR o.quantity <> j.quantity OR o.seats <> j.seats
                       OR NOT (j.change = 'confirm' AND o.status IN ('confirmed', 'cancelled') OR j.change = 'release' AND o.status = 'released'
                               OR j.change = 'cancel' AND o.status = 'cancelled'))
                """
            ),
            (
                "a hold is still held past its expiry by more than the bound (are the workers running?)",
                """
                SELECT format('intent %s of event %s: held, expired at %s, %s s before this audit began', public_id, event_id, expires_at,
                              round(extract(epoch FROM transaction_timestamp() - expires_at)::numeric, 3))
                FROM outcomes
                WHERE status = 'held' AND \(latenessSeconds)::float8 IS NOT NULL
                  -- The snapshot's time, not this statement's: a long audit must not count its own runtime.
                  AND expires_at < transaction_timestamp() - make_interval(secs => \(latenessSeconds)::float8)
                  AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                """
            ),
            (
                "an event without holds has a held outcome",
                """
                SELECT format('event %s (hold_seconds 0): intent %s is held', o.event_id, o.public_id)
                FROM outcomes o JOIN events e ON e.id = o.event_id
                WHERE o.status = 'held' AND e.hold_seconds = 0 AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                """
            ),
            (
                "a seat is in two live (held or confirmed) outcomes",
                """
                SELECT format('event %s: seat %s is in %s live outcomes', event_id, seat, count(*))
                FROM outcomes, unnest(seats) AS seat
                WHERE \(unescaped: live) AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                GROUP BY event_id, seat HAVING count(*) > 1
                """
            ),
            (
                "a live seat-map outcome holds a number of seats other than its quantity",
                """
                SELECT format('intent %s: quantity %s, %s seats', o.public_id, o.quantity, cardinality(o.seats))
                FROM outcomes o JOIN events e ON e.id = o.event_id
                WHERE \(unescaped: liveO) AND e.kind = 'seat_map' AND cardinality(o.seats) <> o.quantity
                  AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                """
            ),
            (
                "the seat map's taken seats differ from the seats in live (held or confirmed) outcomes and in returns not yet applied",
                """
                WITH marked AS (
                    SELECT r.event_id, s.name || '-' || r.row_number || '-' || (n + 1) AS seat
                    FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section,
                         generate_series(0, s.seats_per_row - 1) AS n
                    WHERE get_bit(r.taken, n) = 1 AND (\(scope)::bigint IS NULL OR r.event_id = \(scope))
                ), sold AS (
                    SELECT o.event_id, seat FROM outcomes o, unnest(o.seats) AS seat
                    WHERE \(unescaped: liveO) AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                    UNION ALL
                    SELECT j.event_id, seat FROM inventory_journal j, unnest(j.seats) AS seat
                    WHERE j.change IN ('release', 'cancel') AND (\(scope)::bigint IS NULL OR j.event_id = \(scope))
                )
                SELECT format('event %s: seat %s is %s', coalesce(m.event_id, s.event_id), coalesce(m.seat, s.seat),
                              CASE WHEN m.seat IS NULL THEN 'in an order but not marked taken' ELSE 'marked taken but in no order' END)
                FROM marked m FULL JOIN sold s ON s.event_id = m.event_id AND s.seat = m.seat
                WHERE m.seat IS NULL
                   -- Once `prune` deleted confirmed outcomes of an event, their seats stay marked with no order to name.
                   OR (s.seat IS NULL AND NOT EXISTS (SELECT 1 FROM pruned_outcomes p WHERE p.event_id = m.event_id AND p.tickets > 0))
                """
            ),
            (
                "a seat row's free count disagrees with its bitmap",
                """
                SELECT format('event %s section %s row %s: free %s, bitmap says %s', r.event_id, r.section, r.row_number, r.free,
                              s.seats_per_row - bit_count(r.taken))
                FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section
                WHERE r.free <> s.seats_per_row - bit_count(r.taken) AND (\(scope)::bigint IS NULL OR r.event_id = \(scope))
                """
            ),
            (
                "an intent is both queued and settled",
                """
                SELECT format('intent %s is in the queue and has an outcome', i.public_id)
                FROM intents i JOIN outcomes o ON o.intent_id = i.id OR o.public_id = i.public_id
                WHERE \(scope)::bigint IS NULL OR i.event_id = \(scope)
                """
            ),
            // Intents and outcomes carry no foreign key to events (migration 0002: events are permanent instead).
            (
                "an intent or outcome names no event",
                """
                SELECT format('%s %s names event %s, which does not exist', kind, public_id, event_id)
                FROM (SELECT 'intent' AS kind, public_id, event_id FROM intents
                      UNION ALL SELECT 'outcome', public_id, event_id FROM outcomes) AS rows
                WHERE (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = rows.event_id)
                """
            ),
            // The acceptance record is written by the intake statement and never changed: every intent it
            // names is either still queued or settled (decided or quarantined).
            (
                "accepted intents are neither queued nor settled (accepted = queued + decided + quarantined fails)",
                """
                WITH accepted AS (
                    SELECT event_id, count(*) AS n FROM acceptances WHERE \(scope)::bigint IS NULL OR event_id = \(scope) GROUP BY event_id
                ), queued AS (
                    SELECT event_id, count(*) AS n FROM intents WHERE \(scope)::bigint IS NULL OR event_id = \(scope) GROUP BY event_id
                ), settled AS (
                    SELECT event_id, count(*) FILTER (WHERE reason IS NULL OR reason <> ALL(\(quarantineReasons)::text[])) AS decided,
                           count(*) FILTER (WHERE reason = ANY(\(quarantineReasons)::text[])) AS quarantined
                    FROM outcomes WHERE \(scope)::bigint IS NULL OR event_id = \(scope) GROUP BY event_id
                ), missing AS (
                    SELECT a.event_id, count(*) AS n, (array_agg(a.public_id ORDER BY a.intent_id))[1:\(named)] AS ids
                    FROM acceptances a
                    WHERE (\(scope)::bigint IS NULL OR a.event_id = \(scope))
                      AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.id = a.intent_id)
                      AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.intent_id = a.intent_id)
                    GROUP BY a.event_id
                )
                SELECT format('event %s: accepted %s, queued %s + decided %s + quarantined %s; %s missing: %s',
                              e.id, coalesce(a.n, 0), coalesce(q.n, 0), coalesce(s.decided, 0), coalesce(s.quarantined, 0),
                              coalesce(m.n, 0), coalesce(array_to_string(m.ids, ', ') || CASE WHEN m.n > \(named) THEN ', …' ELSE '' END, 'none'))
                FROM events e
                LEFT JOIN accepted a ON a.event_id = e.id LEFT JOIN queued q ON q.event_id = e.id
                LEFT JOIN settled s ON s.event_id = e.id LEFT JOIN missing m ON m.event_id = e.id
                WHERE (\(scope)::bigint IS NULL OR e.id = \(scope))
                  AND (m.n IS NOT NULL OR coalesce(a.n, 0) <> coalesce(q.n, 0) + coalesce(s.decided, 0) + coalesce(s.quarantined, 0))
                """
            ),
            (
                "a queued or settled intent has no acceptance record (written past intake)",
                """
                SELECT format('event %s: %s intents with no acceptance record: %s', event_id, count(*),
                              array_to_string((array_agg(public_id ORDER BY intent_id))[1:\(named)], ', ') || CASE WHEN count(*) > \(named) THEN ', …' ELSE '' END)
                FROM (SELECT id AS intent_id, public_id, event_id FROM intents
                      UNION ALL SELECT intent_id, public_id, event_id FROM outcomes) AS rows
                WHERE (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND NOT EXISTS (SELECT 1 FROM acceptances a WHERE a.intent_id = rows.intent_id)
                GROUP BY event_id
                """
            ),
            (
                "an intent has two acceptance records",
                """
                SELECT format('intent %s (id %s) is accepted %s times', min(public_id::text), intent_id, count(*))
                FROM acceptances
                WHERE \(scope)::bigint IS NULL OR event_id = \(scope)
                GROUP BY intent_id HAVING count(*) > 1
                """
            ),
            (
                "a quarantined outcome and the quarantine table disagree",
                """
                SELECT format('intent %s: outcome says %s, quarantine table says %s', coalesce(o.public_id, q.public_id),
                              coalesce(o.reason, 'no quarantine outcome'), coalesce(q.reason, 'nothing'))
                FROM (SELECT intent_id, public_id, reason FROM outcomes
                      WHERE reason = ANY(\(quarantineReasons)::text[]) AND (\(scope)::bigint IS NULL OR event_id = \(scope))) o
                FULL JOIN (SELECT intent_id, public_id, reason FROM quarantine WHERE \(scope)::bigint IS NULL OR event_id = \(scope)) q
                  ON q.intent_id = o.intent_id
                WHERE o.intent_id IS NULL OR q.intent_id IS NULL OR o.reason <> q.reason
                """
            ),
            (
                "an outcome's reason is not one Boxoffice gives, or is not NULL exactly when granted (held or confirmed)",
                """
                SELECT format('intent %s: status %s, reason %s', public_id, status, coalesce(reason, 'NULL'))
                FROM outcomes
                WHERE (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND ((status = 'rejected') <> (reason IS NOT NULL) OR NOT \(unescaped: allWords)
                       OR (status IN ('held', 'released', 'expired') AND expires_at IS NULL)
                       OR (status = 'rejected' AND reason <> ALL(\(knownReasons)::text[])))
                """
            ),
            (
                "an exact-seat intent got seats other than those it asked for",
                """
                SELECT format('intent %s asked for %s, got %s', public_id, requested_seats, seats)
                FROM outcomes
                WHERE \(unescaped: live) AND requested_seats IS NOT NULL AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND NOT (seats @> requested_seats AND requested_seats @> seats AND cardinality(seats) = cardinality(requested_seats))
                """
            ),
            (
                "a section request got seats outside its section",
                """
                SELECT format('intent %s asked for section %s, got %s', public_id, section, seats)
                FROM outcomes
                WHERE \(unescaped: live) AND section IS NOT NULL AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND EXISTS (SELECT 1 FROM unnest(seats) AS seat WHERE split_part(seat, '-', 1) <> section)
                """
            ),
            (
                "an event has no inventory row",
                """
                SELECT format('event %s (%s) has no inventory row', e.id, e.name)
                FROM events e
                WHERE (\(scope)::bigint IS NULL OR e.id = \(scope)) AND NOT EXISTS (SELECT 1 FROM inventory inv WHERE inv.event_id = e.id)
                """
            ),
            (
                "a seat row's bitmap is not ceil(seats_per_row / 8) bytes long",
                """
                SELECT format('event %s section %s row %s: %s bytes for %s seats', r.event_id, r.section, r.row_number,
                              octet_length(r.taken), s.seats_per_row)
                FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section
                WHERE octet_length(r.taken) <> (s.seats_per_row + 7) / 8 AND (\(scope)::bigint IS NULL OR r.event_id = \(scope))
                """
            ),
            (
                "an Idempotency-Key's event or customer differs from its intent's",
                """
                SELECT format('key %s of event %s, customer %s, points at intent %s of event %s, customer %s',
                              k.key, k.event_id, k.customer, x.public_id, x.event_id, x.customer)
                FROM idempotency_keys k
                JOIN (SELECT public_id, event_id, customer FROM intents UNION ALL SELECT public_id, event_id, customer FROM outcomes) x
                  ON x.public_id = k.public_id
                WHERE (\(scope)::bigint IS NULL OR k.event_id = \(scope)) AND (x.event_id <> k.event_id OR x.customer <> k.customer)
                """
            ),
            (
                "an Idempotency-Key points at no intent",
                """
                SELECT format('key %s of event %s points at %s, which is neither queued nor settled', k.key, k.event_id, k.public_id)
                FROM idempotency_keys k
                WHERE (\(scope)::bigint IS NULL OR k.event_id = \(scope))
                  AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.public_id = k.public_id)
                  AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.public_id = k.public_id)
                """
            ),
            // Between two returns inventory only shrinks, so once a request for n tickets in a scope is
            // refused for lack of stock, no request decided later in that scope may be granted n or more
            // until tickets come back (the first `returned_at` after the refusal: the worker stamps it in
            // the batch that puts them back, before that batch's grants). Whatever became of a grant
            // since (released, expired, cancelled), it was granted.
            (
                "a later intent got what an earlier one, asking for as much, was refused (no tickets came back in between)",
                """
                WITH refused AS (
                    SELECT DISTINCT ON (event_id, coalesce(section, ''), quantity) event_id, coalesce(section, '') AS scope, quantity, decided_at, intent_id, public_id
                    FROM outcomes
                    WHERE status = 'rejected' AND reason IN ('sold_out', 'not_enough_available') AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                      -- Outcomes `prune` deleted took their return times with them: only refusals after them are checked.
                      AND decided_at > coalesce((SELECT p.decided_through FROM pruned_outcomes p WHERE p.event_id = outcomes.event_id), '-infinity')
                    ORDER BY event_id, coalesce(section, ''), quantity, decided_at, intent_id
                ), returns AS MATERIALIZED (
                    SELECT event_id, returned_at FROM outcomes
                    WHERE returned_at IS NOT NULL AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                ), windows AS (
                    SELECT r.*, (SELECT min(x.returned_at) FROM returns x WHERE x.event_id = r.event_id AND x.returned_at > r.decided_at) AS refilled_at
                    FROM refused r
                )
                SELECT format('event %s: intent %s got %s after intent %s was refused %s', w.event_id, g.public_id, g.quantity, w.public_id, w.quantity)
                FROM windows w
                JOIN LATERAL (
                    SELECT o.public_id, o.quantity FROM outcomes o
                    WHERE o.event_id = w.event_id AND (o.decided_at, o.intent_id) > (w.decided_at, w.intent_id)
                      AND o.decided_at < coalesce(w.refilled_at, 'infinity') AND o.status <> 'rejected' AND NOT o.exact_seats
                      AND coalesce(o.section, '') = w.scope AND o.quantity >= w.quantity
                    LIMIT 1
                ) g ON true
                """
            ),
        ]
        for (invariant, query) in checks {
            for try await detail in try await connection.query(query, logger: logger).decode(String.self) {
                if report.violations.count < Self.auditViolationsMax { report.violations.append("\(invariant): \(detail)") }
            }
        }
        return report
    }
}
