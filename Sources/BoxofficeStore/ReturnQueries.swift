import BoxofficeCore
import Foundation
import PostgresNIO

/// What the holder of an event's allocation right takes in before it allocates a batch: the
/// transitions the API made since (from `inventory_journal`) and the holds it expired itself. The
/// counters move by these quantities; the seats of released, expired and cancelled grants go back
/// into the sale, in this same transaction, before the claimed intents are allocated.
struct Returns: Sendable {
    /// Tickets of holds confirmed (held → sold).
    var confirmed = 0
    /// Tickets of holds released by their buyers (held → available).
    var released = 0
    /// Tickets of holds this batch expired (held → available).
    var expired = 0
    /// Tickets of orders cancelled (sold → available).
    var cancelled = 0
    /// Outcomes expired by this batch.
    var holdsExpired = 0
    /// Outcomes whose tickets come back (released, expired, cancelled).
    var outcomesReturned = 0
    /// The seats coming back (seat maps), and the quantity each came with.
    var givenBack: [(quantity: Int, seats: [SeatLabel])] = []

    var isEmpty: Bool { confirmed == 0 && released == 0 && expired == 0 && cancelled == 0 }
    /// Tickets back into the sale.
    var ticketsReturned: Int { released + expired + cancelled }
}

extension Store {
    /// Takes in what an event's counters are owed, under its allocation right: at most `limit` journal
    /// rows (oldest first) and at most `limit` due holds (earliest expiry first; holds a confirm has
    /// locked are skipped: if that confirm commits it won, if it rolls back the next sweep expires
    /// them). One statement: journal rows deleted, due holds set `expired`, every outcome whose tickets
    /// come back stamped `returned_at`. A row count that disagrees throws: returned exactly once.
    func takeReturns(of eventID: EventID, limit: Int, on connection: PostgresConnection) async throws -> Returns {
        var returns = Returns()
        var expectedMarks = 0
        var marked = 0
        for (change, quantity, seats, marks) in try await rows(ReturnsStatement(eventID: eventID, limit: limit), on: connection) {
            marked = marks
            let labels = try SeatColumn.labels(seats, of: "event \(eventID)'s \(change) return")
            switch change {
            case JournalChange.confirm.rawValue:
                returns.confirmed += quantity
                continue
            case JournalChange.release.rawValue:
                returns.released += quantity
                expectedMarks += 1
            case JournalChange.cancel.rawValue:
                returns.cancelled += quantity
                expectedMarks += 1
            case IntentStatusWord.expired.rawValue:
                returns.expired += quantity
                returns.holdsExpired += 1
            default:
                throw StoreError.invariantBroken("event \(eventID): unknown inventory change \(change)")
            }
            returns.outcomesReturned += 1
            returns.givenBack.append((quantity, labels))
        }
        guard marked == expectedMarks else {
            throw StoreError.invariantBroken(
                "event \(eventID): \(expectedMarks) released or cancelled outcomes to stamp returned, \(marked) stamped (returned twice, or lost?)")
        }
        return returns
    }
}

/// The journal rows of one event (deleted) and its due holds (expired), with what each gives back;
/// each row also carries how many released or cancelled outcomes were stamped `returned_at`.
///
/// A released or cancelled outcome is stamped only while its `returned_at` is null: a second return
/// of the same outcome would stamp nothing, and the count check above fails the batch.
struct ReturnsStatement: StoreStatement {
    typealias Row = (String, Int, [String], Int)
    static let sample = ReturnsStatement(eventID: 0, limit: 1)
    let eventID: EventID
    let limit: Int

    var query: PostgresQuery {
        """
        WITH journal AS (
            DELETE FROM inventory_journal j
            WHERE j.id IN (SELECT id FROM inventory_journal WHERE event_id = \(eventID) ORDER BY id LIMIT \(limit))
            RETURNING j.intent_id, j.change, j.quantity, j.seats
        ), expired AS (
            UPDATE outcomes o SET status = '\(unescaped: IntentStatusWord.expired.rawValue)', changed_at = statement_timestamp(),
                                  returned_at = statement_timestamp()
            WHERE o.intent_id IN (
                SELECT h.intent_id FROM outcomes h
                WHERE h.event_id = \(eventID) AND h.status = '\(unescaped: IntentStatusWord.held.rawValue)' AND h.expires_at <= statement_timestamp()
                ORDER BY h.expires_at
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED)
              AND o.status = '\(unescaped: IntentStatusWord.held.rawValue)'
            RETURNING o.quantity, o.seats
        ), marked AS (
            UPDATE outcomes o SET returned_at = statement_timestamp()
            FROM journal j
            WHERE o.intent_id = j.intent_id AND j.change <> '\(unescaped: JournalChange.confirm.rawValue)' AND o.returned_at IS NULL
              AND o.event_id = \(eventID)
            RETURNING 1
        )
        SELECT r.change, r.quantity, r.seats, (SELECT count(*) FROM marked)::int
        FROM (SELECT change, quantity, seats FROM journal
              UNION ALL
              SELECT '\(unescaped: IntentStatusWord.expired.rawValue)', quantity, seats FROM expired) r
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
