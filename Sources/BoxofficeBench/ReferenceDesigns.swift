import BoxofficeCore
import BoxofficeStore
import Foundation
import PostgresNIO

/// The usual designs a flash sale is built with, one purchase per transaction, for comparison.
enum ReferenceStrategy: String, CaseIterable, Sendable {
    /// (a) Lock the event's inventory row (`SELECT … FOR UPDATE`), check, update, record the order, commit.
    case rowLock = "row_lock"
    /// (b) Take one free seat row with `FOR UPDATE SKIP LOCKED`, fail fast when none is free.
    case skipLockedSeat = "skip_locked_seat"
    /// (c) One atomic `UPDATE … SET available = available - 1 WHERE available > 0`, recording the order.
    case atomicDecrement = "atomic_decrement"

    var title: String {
        switch self {
        case .rowLock: "(a) SELECT … FOR UPDATE per purchase"
        case .skipLockedSeat: "(b) one seat row FOR UPDATE SKIP LOCKED per purchase"
        case .atomicDecrement: "(c) atomic UPDATE … WHERE available > 0"
        }
    }
}

extension Store {
    /// Creates the per-seat table design (b) needs, with one row per ticket of `eventID`.
    func prepareReferenceSeats(eventID: EventID, capacity: Int) async throws {
        try await client.query(
            """
            CREATE TABLE IF NOT EXISTS reference_seats (
                event_id bigint NOT NULL, seat_no integer NOT NULL, sold boolean NOT NULL DEFAULT false,
                PRIMARY KEY (event_id, seat_no))
            """, logger: logger)
        try await client.query(
            """
            INSERT INTO reference_seats (event_id, seat_no) SELECT \(eventID), g FROM generate_series(1, \(capacity)) g
            """, logger: logger)
        try await client.query(
            "CREATE INDEX IF NOT EXISTS reference_seats_free ON reference_seats (event_id, seat_no) WHERE NOT sold", logger: logger)
    }

    /// Design (b) counts nothing on the hot inventory row (that is its point); bring the counters in
    /// line with its seats afterwards so the audit can check the run.
    func reconcileReferenceSeats(eventID: EventID) async throws {
        try await client.query(
            """
            UPDATE inventory SET sold = s.sold, available = capacity - s.sold
            FROM (SELECT count(*)::int AS sold FROM reference_seats WHERE event_id = \(eventID) AND sold) s
            WHERE event_id = \(eventID)
            """, logger: logger)
    }

    /// One purchase of one ticket with `strategy`, in its own transaction; true when a ticket was sold.
    /// Each writes an outcome row and its acceptance record like Boxoffice does, so the comparison is
    /// like for like (and the audit finds every outcome accepted).
    func referencePurchase(_ strategy: ReferenceStrategy, eventID: EventID, customer: String) async throws -> Bool {
        let publicID = RandomUUID.make()
        switch strategy {
        case .rowLock:
            return try await client.withTransaction(logger: logger) { connection in
                var available = 0
                for try await value in try await connection.query(
                    "SELECT available FROM inventory WHERE event_id = \(eventID) FOR UPDATE", logger: logger
                ).decode(Int.self) { available = value }
                guard available > 0 else { return false }
                try await connection.query(
                    """
                    WITH sold AS (UPDATE inventory SET available = available - 1, sold = sold + 1 WHERE event_id = \(eventID) RETURNING event_id),
                    recorded AS (
                        INSERT INTO outcomes (intent_id, public_id, event_id, customer, quantity, exact_seats, status, accepted_at, decided_at)
                        SELECT -nextval('intents_id_seq'), \(publicID), event_id, \(customer), 1, false, 'confirmed', now(), now() FROM sold
                        RETURNING intent_id, public_id, event_id, accepted_at
                    )
                    INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at) SELECT * FROM recorded
                    """, logger: logger)
                return true
            }
        case .skipLockedSeat:
            return try await client.withTransaction(logger: logger) { connection in
                var seat: Int?
                for try await value in try await connection.query(
                    """
                    SELECT seat_no FROM reference_seats WHERE event_id = \(eventID) AND NOT sold LIMIT 1 FOR UPDATE SKIP LOCKED
                    """, logger: logger
                ).decode(Int.self) { seat = value }
                guard let seat else { return false }
                try await connection.query(
                    """
                    WITH taken AS (UPDATE reference_seats SET sold = true WHERE event_id = \(eventID) AND seat_no = \(seat) RETURNING event_id),
                    recorded AS (
                        INSERT INTO outcomes (intent_id, public_id, event_id, customer, quantity, exact_seats, status, accepted_at, decided_at)
                        SELECT -nextval('intents_id_seq'), \(publicID), event_id, \(customer), 1, false, 'confirmed', now(), now()
                        FROM taken
                        RETURNING intent_id, public_id, event_id, accepted_at
                    )
                    INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at) SELECT * FROM recorded
                    """, logger: logger)
                return true
            }
        case .atomicDecrement:
            var sold = false
            for try await _ in try await client.query(
                """
                WITH sold AS (UPDATE inventory SET available = available - 1, sold = sold + 1
                              WHERE event_id = \(eventID) AND available > 0 RETURNING event_id),
                recorded AS (
                    INSERT INTO outcomes (intent_id, public_id, event_id, customer, quantity, exact_seats, status, accepted_at, decided_at)
                    SELECT -nextval('intents_id_seq'), \(publicID), event_id, \(customer), 1, false, 'confirmed', now(), now() FROM sold
                    RETURNING intent_id, public_id, event_id, accepted_at
                )
                INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at) SELECT * FROM recorded
                RETURNING 1
                """, logger: logger
            ).decode(Int.self) { sold = true }
            return sold
        }
    }
}
