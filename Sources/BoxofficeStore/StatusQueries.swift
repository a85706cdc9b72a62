import BoxofficeCore
import Foundation
import PostgresNIO

/// Where one intent stands, as a client sees it.
public struct IntentStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Still queued; `ahead` intents of the same event are before it (counted exactly up to
        /// ``Store/queuePositionCountMax``, estimated from the ids past it).
        case pending(ahead: Int)
        case decided(Outcome)
    }

    public let publicID: UUID
    public let eventID: EventID
    public let quantity: Int
    public let state: State
    /// The status as stored, or `pending`: a decided grant is `.decided(.confirmed)` in ``state``
    /// whatever became of it since (held, confirmed, released, expired, cancelled).
    public let word: IntentStatusWord
    /// When its hold ends or ended; nil for an intent that was never held.
    public var expiresAt: Date? = nil
    /// What the storefront recorded when it confirmed the hold (its payment's id), if anything.
    public var paymentReference: String? = nil
    /// Why an order was cancelled, if the administrator said.
    public var cancelReason: String? = nil

    public var isDecided: Bool {
        if case .decided = state { return true }
        return false
    }
}

/// One intent's outcome or queue position. One statement, so an intent settling meanwhile is seen
/// either pending or decided, never neither.
struct StatusStatement: StoreStatement {
    typealias Row = (EventID, Int, String, String?, [String], Int, Date?, String?, String?)
    static let sample = StatusStatement(publicID: UUID())
    let publicID: UUID

    var query: PostgresQuery {
        """
        SELECT o.event_id, o.quantity, o.status, o.reason, o.seats, 0::bigint, o.expires_at, o.payment_reference, o.cancel_reason
        FROM outcomes o WHERE o.public_id = \(publicID)
        UNION ALL
        SELECT i.event_id, i.quantity, '\(unescaped: IntentStatusWord.pending.rawValue)', NULL, '{}'::text[],
               \(unescaped: Store.queuedCountSQL(event: "i.event_id", below: "i.id")), NULL::timestamptz, NULL, NULL
        FROM intents i
        WHERE i.public_id = \(publicID)
        LIMIT 1
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The outcomes of a set of intents: one indexed lookup for many long-polls at once.
struct OutcomesStatement: StoreStatement {
    typealias Row = (UUID, EventID, Int, String, String?, [String], Date?, String?, String?)
    static let sample = OutcomesStatement(publicIDs: [])
    /// An array lookup like the settle's, whose cached generic plan seq-scanned a million intents
    /// (measured). This one runs once per settle notification, so planning it each time costs little
    /// and takes that risk away.
    static let plansPerExecution = true
    let publicIDs: [UUID]

    var query: PostgresQuery {
        """
        SELECT public_id, event_id, quantity, status, reason, seats, expires_at, payment_reference, cancel_reason
        FROM outcomes WHERE public_id = ANY(\(publicIDs)::uuid[])
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

extension IntentStatus {
    /// A decided intent from its `outcomes` row; throws ``StoreError/invariantBroken(_:)`` for a row
    /// outside the schema's words.
    init(
        decided publicID: UUID, eventID: EventID, quantity: Int, status: String, reason: String?, seats: [String], expiresAt: Date?,
        paymentReference: String?, cancelReason: String?
    ) throws {
        let outcome = try Outcome(status: status, quantity: quantity, reason: reason, seats: seats, of: publicID)
        let word = IntentStatusWord(rawValue: status) ?? .rejected
        self.init(
            publicID: publicID, eventID: eventID, quantity: quantity, state: .decided(outcome), word: word, expiresAt: expiresAt,
            paymentReference: paymentReference, cancelReason: cancelReason)
    }
}

extension Store {
    /// Counting the queue ahead of an intent costs one index entry each (about 0.25 µs, plus any dead
    /// entries a drained sale left before vacuum): exact up to this many, then estimated in O(1) from the
    /// ids, as the distance to the event's oldest queued intent. The estimate is an upper bound (ids are
    /// shared by all events), exact while one event is on sale. Counting to 100,000 cost 28 ms per status.
    public static let queuePositionCountMax = 1_000

    /// SQL (a scalar subquery) for the queued intents of `event` whose ids are below `below` (both SQL
    /// expressions; nil `below`: all of the event's), by the rule of ``queuePositionCountMax``: counted
    /// up to it, past it estimated from the ids (`below`, or the event's newest id + 1, minus its oldest).
    /// The one spelling of a queue position (`below`: the intent's id) and an event's pending count.
    static func queuedCountSQL(event: String, below: String?) -> String {
        let bound = below ?? "(SELECT max(q.id) + 1 FROM intents q WHERE q.event_id = \(event))"
        let ahead = below.map { " AND q.id < \($0)" } ?? ""
        return """
            (SELECT CASE WHEN counted.n < \(queuePositionCountMax) THEN counted.n
                         ELSE greatest(counted.n, \(bound) - (SELECT min(q.id) FROM intents q WHERE q.event_id = \(event))) END
             FROM (SELECT count(*) AS n FROM (SELECT 1 FROM intents q WHERE q.event_id = \(event)\(ahead)
                                              LIMIT \(queuePositionCountMax)) limited) counted)
            """
    }

    /// The outcome, or the queue position, of one intent; nil when the id is unknown.
    public func status(of publicID: UUID) async throws -> IntentStatus? {
        guard
            let (eventID, quantity, status, reason, seats, ahead, expiresAt, payment, cancelReason) = try await rows(
                StatusStatement(publicID: publicID)
            ).first
        else { return nil }
        guard status != IntentStatusWord.pending.rawValue else {
            return IntentStatus(publicID: publicID, eventID: eventID, quantity: quantity, state: .pending(ahead: ahead), word: .pending)
        }
        return try IntentStatus(
            decided: publicID, eventID: eventID, quantity: quantity, status: status, reason: reason, seats: seats, expiresAt: expiresAt,
            paymentReference: payment, cancelReason: cancelReason)
    }

    /// The decided intents among `publicIDs`, with their outcomes; undecided or unknown ids are absent.
    public func decidedStatuses(among publicIDs: [UUID]) async throws -> [UUID: IntentStatus] {
        guard !publicIDs.isEmpty else { return [:] }
        var result: [UUID: IntentStatus] = [:]
        for (publicID, eventID, quantity, status, reason, seats, expiresAt, payment, cancelReason) in try await rows(
            OutcomesStatement(publicIDs: publicIDs))
        {
            result[publicID] = try IntentStatus(
                decided: publicID, eventID: eventID, quantity: quantity, status: status, reason: reason, seats: seats, expiresAt: expiresAt,
                paymentReference: payment, cancelReason: cancelReason)
        }
        return result
    }
}
