import BoxofficeCore
import Foundation
import PostgresNIO

/// The result of checking every invariant against the database.
public struct AuditReport: Sendable, Equatable {
    /// One line per broken invariant; empty when all hold.
    public var violations: [String] = []
    public var events = 0
    public var outcomes = 0
    public var confirmed = 0
    public var rejected = 0
    public var pending = 0
    public var ticketsSold = 0

    public var isClean: Bool { violations.isEmpty }
}

extension Store {
    /// Checks every invariant of the design from the database alone: the second place each one is
    /// asserted (the first is the allocator and the settle row counts).
    ///
    /// `eventID` limits the audit to one event. Each check is one aggregate statement.
    public func audit(eventID: EventID? = nil) async throws -> AuditReport {
        var report = AuditReport()
        // A NULL filter means every event.
        let scope = eventID

        for try await (events, outcomes, confirmed, rejected, pending, sold) in try await client.query("""
            SELECT (SELECT count(*) FROM events WHERE \(scope)::bigint IS NULL OR id = \(scope)),
                   (SELECT count(*) FROM outcomes WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT count(*) FROM outcomes WHERE status = 'confirmed' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM outcomes WHERE status = 'rejected' AND (\(scope)::bigint IS NULL OR event_id = \(scope))),
                   (SELECT count(*) FROM intents WHERE \(scope)::bigint IS NULL OR event_id = \(scope)),
                   (SELECT coalesce(sum(sold), 0) FROM inventory WHERE \(scope)::bigint IS NULL OR event_id = \(scope))
            """, logger: logger).decode((Int, Int, Int, Int, Int, Int).self) {
            report.events = events; report.outcomes = outcomes; report.confirmed = confirmed
            report.rejected = rejected; report.pending = pending; report.ticketsSold = sold
        }

        let checks: [(String, PostgresQuery)] = [
            ("event sells more than its capacity, or sold + available != capacity", """
                SELECT format('event %s: sold %s + available %s, capacity %s (events.capacity %s)', inv.event_id, inv.sold, inv.available, inv.capacity, e.capacity)
                FROM inventory inv JOIN events e ON e.id = inv.event_id
                WHERE (\(scope)::bigint IS NULL OR inv.event_id = \(scope))
                  AND (inv.sold > inv.capacity OR inv.sold + inv.available <> inv.capacity OR inv.capacity <> e.capacity OR inv.available < 0)
                """),
            ("inventory.sold differs from the tickets in confirmed outcomes", """
                SELECT format('event %s: inventory sold %s, confirmed outcomes hold %s', inv.event_id, inv.sold, coalesce(o.tickets, 0))
                FROM inventory inv
                LEFT JOIN (SELECT event_id, sum(quantity) AS tickets FROM outcomes WHERE status = 'confirmed' GROUP BY event_id) o
                  ON o.event_id = inv.event_id
                WHERE (\(scope)::bigint IS NULL OR inv.event_id = \(scope)) AND inv.sold <> coalesce(o.tickets, 0)
                """),
            ("a seat is in two orders", """
                SELECT format('event %s: seat %s is in %s confirmed outcomes', event_id, seat, count(*))
                FROM outcomes, unnest(seats) AS seat
                WHERE status = 'confirmed' AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                GROUP BY event_id, seat HAVING count(*) > 1
                """),
            ("a confirmed seat-map outcome holds a number of seats other than its quantity", """
                SELECT format('intent %s: quantity %s, %s seats', o.public_id, o.quantity, cardinality(o.seats))
                FROM outcomes o JOIN events e ON e.id = o.event_id
                WHERE o.status = 'confirmed' AND e.kind = 'seat_map' AND cardinality(o.seats) <> o.quantity
                  AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                """),
            ("the seat map's sold seats differ from the seats in confirmed outcomes", """
                WITH marked AS (
                    SELECT r.event_id, s.name || '-' || r.row_number || '-' || (n + 1) AS seat
                    FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section,
                         generate_series(0, s.seats_per_row - 1) AS n
                    WHERE get_bit(r.taken, n) = 1 AND (\(scope)::bigint IS NULL OR r.event_id = \(scope))
                ), sold AS (
                    SELECT o.event_id, seat FROM outcomes o, unnest(o.seats) AS seat
                    WHERE o.status = 'confirmed' AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                )
                SELECT format('event %s: seat %s is %s', coalesce(m.event_id, s.event_id), coalesce(m.seat, s.seat),
                              CASE WHEN m.seat IS NULL THEN 'in an order but not marked sold' ELSE 'marked sold but in no order' END)
                FROM marked m FULL JOIN sold s ON s.event_id = m.event_id AND s.seat = m.seat
                WHERE m.seat IS NULL OR s.seat IS NULL
                """),
            ("a seat row's free count disagrees with its bitmap", """
                SELECT format('event %s section %s row %s: free %s, bitmap says %s', r.event_id, r.section, r.row_number, r.free,
                              s.seats_per_row - bit_count(r.taken))
                FROM seat_rows r JOIN sections s ON s.event_id = r.event_id AND s.position = r.section
                WHERE r.free <> s.seats_per_row - bit_count(r.taken) AND (\(scope)::bigint IS NULL OR r.event_id = \(scope))
                """),
            ("an intent is both queued and settled", """
                SELECT format('intent %s is in the queue and has an outcome', i.public_id)
                FROM intents i JOIN outcomes o ON o.intent_id = i.id OR o.public_id = i.public_id
                WHERE \(scope)::bigint IS NULL OR i.event_id = \(scope)
                """),
            // Intents and outcomes carry no foreign key to events (migration 0002: events are permanent instead).
            ("an intent or outcome names no event", """
                SELECT format('%s %s names event %s, which does not exist', kind, public_id, event_id)
                FROM (SELECT 'intent' AS kind, public_id, event_id FROM intents
                      UNION ALL SELECT 'outcome', public_id, event_id FROM outcomes) AS rows
                WHERE (\(scope)::bigint IS NULL OR event_id = \(scope))
                  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = rows.event_id)
                """),
            ("an Idempotency-Key points at no intent", """
                SELECT format('key %s of event %s points at %s, which is neither queued nor settled', k.key, k.event_id, k.public_id)
                FROM idempotency_keys k
                WHERE (\(scope)::bigint IS NULL OR k.event_id = \(scope))
                  AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.public_id = k.public_id)
                  AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.public_id = k.public_id)
                """),
            // Inventory only shrinks, so once a request for n tickets in a scope is refused for lack of
            // stock, no request decided later in that scope may get n or more.
            ("a later intent got what an earlier one, asking for as much, was refused", """
                WITH refused AS (
                    SELECT DISTINCT ON (event_id, coalesce(section, ''), quantity) event_id, coalesce(section, '') AS scope, quantity, decided_at, intent_id, public_id
                    FROM outcomes
                    WHERE status = 'rejected' AND reason IN ('sold_out', 'not_enough_available') AND (\(scope)::bigint IS NULL OR event_id = \(scope))
                    ORDER BY event_id, coalesce(section, ''), quantity, decided_at, intent_id
                ), granted AS (
                    SELECT DISTINCT ON (o.event_id, coalesce(o.section, ''), o.quantity) o.event_id, coalesce(o.section, '') AS scope, o.quantity, o.decided_at, o.intent_id, o.public_id
                    FROM outcomes o
                    WHERE o.status = 'confirmed' AND NOT o.exact_seats AND (\(scope)::bigint IS NULL OR o.event_id = \(scope))
                    ORDER BY o.event_id, coalesce(o.section, ''), o.quantity, o.decided_at DESC, o.intent_id DESC
                )
                SELECT format('event %s: intent %s got %s after intent %s was refused %s', g.event_id, g.public_id, g.quantity, r.public_id, r.quantity)
                FROM refused r JOIN granted g ON g.event_id = r.event_id AND g.scope = r.scope AND g.quantity >= r.quantity
                 AND (g.decided_at, g.intent_id) > (r.decided_at, r.intent_id)
                """),
        ]
        for (invariant, query) in checks {
            for try await detail in try await client.query(query, logger: logger).decode(String.self) {
                if report.violations.count < 1_000 { report.violations.append("\(invariant): \(detail)") }
            }
        }
        return report
    }
}
