import BoxofficeCore
import Foundation
import PostgresNIO

/// A change a storefront (confirm, release) or an administrator (cancel) asks of a decided intent.
public enum Transition: Sendable, Equatable {
    /// held → confirmed, while the hold has not expired; `paymentReference` is kept on the outcome.
    case confirm(paymentReference: String?)
    /// held → released: the buyer gave up; the seats go back into the sale.
    case release
    /// confirmed → cancelled (refunded by the producer); the seats go back into the sale.
    case cancel(reason: String?)

    /// The status it starts from.
    public var from: IntentStatusWord {
        switch self {
        case .confirm, .release: .held
        case .cancel: .confirmed
        }
    }

    /// The status it ends in.
    public var to: IntentStatusWord {
        switch self {
        case .confirm: .confirmed
        case .release: .released
        case .cancel: .cancelled
        }
    }

    var change: JournalChange {
        switch self {
        case .confirm: .confirm
        case .release: .release
        case .cancel: .cancel
        }
    }

    /// Longest payment reference or cancel reason kept (the schema's CHECK says the same).
    public static let noteLengthMax = 200
}

/// What became of a transition.
public enum TransitionResult: Sendable, Equatable {
    /// Made now, or made before (a repeat): the status after it.
    case done(IntentStatus)
    /// Impossible from where the intent stands (`status`); `pastExpiry` when it is a hold whose
    /// `expires_at` has passed (no worker has expired it yet, but nothing can confirm it any more).
    case refused(IntentStatus, pastExpiry: Bool)
    /// A confirm repeating one that happened with another payment reference.
    case paymentReferenceDiffers(IntentStatus)
    /// The caller named a customer and the intent is another customer's.
    case anotherCustomer
}

/// Why a transition is impossible from where the intent stands, as a code (the API's 409 `error`, the
/// CLI's message) and a sentence that says what it means and what to do.
public struct TransitionRefusal: Sendable, Equatable {
    public let code: String
    public let message: String

    public init(_ status: IntentStatus, pastExpiry: Bool) {
        let id = status.publicID.uuidString.lowercased()
        (code, message) =
            switch status.word {
            case .pending: ("intent_pending", "intent \(id) is still queued; wait for its outcome (GET /intents/\(id)?wait=30)")
            case .rejected: ("intent_rejected", "intent \(id) was rejected; it holds nothing")
            case .held where pastExpiry: ("hold_expired", "the hold of intent \(id) expired; it can no longer be confirmed")
            case .held: ("intent_held", "intent \(id) is held, not confirmed; release the hold instead, or confirm it first")
            case .confirmed: ("intent_confirmed", "intent \(id) is confirmed; an administrator cancels a confirmed order")
            case .expired: ("hold_expired", "the hold of intent \(id) expired; its seats went back into the sale")
            case .released: ("hold_released", "the hold of intent \(id) was released; its seats went back into the sale")
            case .cancelled: ("intent_cancelled", "intent \(id) was cancelled")
            }
    }

    /// Every code a refusal may carry (for the API's documentation and tests).
    public static let codes = [
        "intent_pending", "intent_rejected", "hold_expired", "intent_held", "intent_confirmed", "hold_released", "intent_cancelled",
    ]
}

extension Store {
    /// Makes `transition` of the intent `publicID` (nil when the id is unknown). One conditional UPDATE
    /// of the outcome row decides: it changes the row only from the transition's starting status (and,
    /// for a confirm, only before `expires_at`, by the database's clock), so of a confirm racing an
    /// expiry, a release or another confirm exactly one wins, whatever the callers' clocks say. In the
    /// same transaction it appends what the counters owe to `inventory_journal` (the worker holding the
    /// event's allocation right applies it, and puts returned seats back) and notifies the workers and
    /// the long-polls. A transition that already happened answers `.done` again (idempotent).
    ///
    /// `customer`, when given, must be the intent's: a storefront passing its buyer's id cannot change
    /// another buyer's intent by a mistaken id.
    public func transition(_ transition: Transition, of publicID: UUID, customer: String?) async throws -> TransitionResult? {
        // Twice at most: an intent still queued at the UPDATE's snapshot may have been decided (held)
        // by the time its status is read; the second attempt sees the hold.
        for attempt in 1...2 {
            let statement = TransitionStatement(publicID: publicID, transition: transition, customer: customer)
            let made = try await rows(statement).count == 1
            guard let (status, owner, pastExpiry, reference) = try await transitionStatus(of: publicID) else { return nil }
            if made { return .done(status) }
            // A queued intent's customer is not read: it answers intent_pending whoever asks.
            if let customer, status.isDecided, customer != owner { return .anotherCustomer }
            if status.word == transition.to {
                if case .confirm(let wanted?) = transition, reference != wanted { return .paymentReferenceDiffers(status) }
                return .done(status)
            }
            let mayStillWin = status.word == transition.from && !(transition.to == .confirmed && pastExpiry)
            if mayStillWin && attempt == 1 { continue }
            return .refused(status, pastExpiry: pastExpiry)
        }
        return nil
    }

    /// An intent's status with its customer, whether it is a hold past its expiry (by the database's
    /// clock) and its payment reference.
    func transitionStatus(of publicID: UUID) async throws -> (IntentStatus, String, Bool, String?)? {
        guard let status = try await status(of: publicID) else { return nil }
        guard status.isDecided else { return (status, "", false, nil) }
        guard let (customer, pastExpiry) = try await rows(OwnerStatement(publicID: publicID)).first else { return nil }
        return (status, customer, pastExpiry, status.paymentReference)
    }
}

/// One transition: the outcome row changed only from the starting status (a confirm only before its
/// expiry), the journal row that the counters owe appended, workers and long-polls notified at commit.
/// A row comes back when the transition was made.
struct TransitionStatement: StoreStatement {
    typealias Row = (EventID, Int)
    static let sample = TransitionStatement(publicID: UUID(), transition: .release, customer: nil)
    let publicID: UUID
    let transition: Transition
    let customer: String?

    var query: PostgresQuery {
        let (payment, reason): (String?, String?) =
            switch transition {
            case .confirm(let reference): (reference, nil)
            case .release: (nil, nil)
            case .cancel(let why): (nil, why)
            }
        let beforeExpiry = transition.to == .confirmed
        return """
            WITH changed AS (
                UPDATE outcomes o
                SET status = \(transition.to.rawValue), changed_at = statement_timestamp(),
                    payment_reference = coalesce(\(payment)::text, o.payment_reference), cancel_reason = \(reason)::text
                WHERE o.public_id = \(publicID) AND o.status = \(transition.from.rawValue)
                  AND (NOT \(beforeExpiry) OR o.expires_at > statement_timestamp())
                  AND (\(customer)::text IS NULL OR o.customer = \(customer)::text)
                RETURNING o.intent_id, o.event_id, o.quantity, o.seats
            ), journal AS (
                INSERT INTO inventory_journal (event_id, intent_id, change, quantity, seats)
                SELECT event_id, intent_id, \(transition.change.rawValue), quantity, seats FROM changed
                RETURNING event_id
            )
            SELECT j.event_id,
                   (SELECT count(*) FROM (SELECT pg_notify(\(Store.intentsChannel), ''), pg_notify(\(Store.outcomesChannel), j.event_id::text)) sent)
            FROM journal j
            """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A decided intent's customer, and whether it is a hold past its expiry by the database's clock.
struct OwnerStatement: StoreStatement {
    typealias Row = (String, Bool)
    static let sample = OwnerStatement(publicID: UUID())
    let publicID: UUID

    var query: PostgresQuery {
        """
        SELECT customer, status = '\(unescaped: IntentStatusWord.held.rawValue)' AND expires_at <= statement_timestamp()
        FROM outcomes WHERE public_id = \(publicID)
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
