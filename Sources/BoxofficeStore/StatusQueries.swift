import BoxofficeCore
import Foundation
import PostgresNIO

/// Where one intent stands, as a client sees it.
public struct IntentStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Still queued; `ahead` intents of the same event are before it (counted up to ``Store/queuePositionCountMax``).
        case pending(ahead: Int)
        case decided(Outcome)
    }

    public let publicID: UUID
    public let eventID: EventID
    public let quantity: Int
    public let state: State
}

extension Store {
    /// Counting the queue ahead of an intent costs one index entry each; past this it reports the bound.
    public static let queuePositionCountMax = 100_000

    /// The outcome, or the queue position, of one intent; nil when the id is unknown.
    /// One statement, so an intent settling meanwhile is seen either pending or decided, never neither.
    public func status(of publicID: UUID) async throws -> IntentStatus? {
        let rows = try await client.query("""
            SELECT o.event_id, o.quantity, o.status, o.reason, o.seats, 0::bigint
            FROM outcomes o WHERE o.public_id = \(publicID)
            UNION ALL
            SELECT i.event_id, i.quantity, 'pending', NULL, '{}'::text[],
                   (SELECT count(*) FROM (SELECT 1 FROM intents q WHERE q.event_id = i.event_id AND q.id < i.id
                                          LIMIT \(Self.queuePositionCountMax)) ahead)
            FROM intents i WHERE i.public_id = \(publicID)
            LIMIT 1
            """, logger: logger)
        for try await (eventID, quantity, status, reason, seats, ahead) in rows.decode((EventID, Int, String, String?, [String], Int).self) {
            let state: IntentStatus.State
            switch status {
            case "pending":
                state = .pending(ahead: ahead)
            case "confirmed":
                state = .decided(.confirmed(quantity: quantity, seats: seats.compactMap { SeatLabel(parsing: $0) }))
            default:
                guard let reason = reason.flatMap(RejectionReason.init(rawValue:)) else {
                    throw StoreError.invariantBroken("outcome of \(publicID) has unknown reason \(reason ?? "null")")
                }
                state = .decided(.rejected(reason))
            }
            return IntentStatus(publicID: publicID, eventID: eventID, quantity: quantity, state: state)
        }
        return nil
    }
}

extension Store {
    /// Which of `publicIDs` have an outcome: one indexed lookup for a whole set of long-polls.
    public func decided(among publicIDs: [UUID]) async throws -> Set<UUID> {
        guard !publicIDs.isEmpty else { return [] }
        var decided = Set<UUID>()
        let rows = try await client.query("SELECT public_id FROM outcomes WHERE public_id = ANY(\(publicIDs)::uuid[])", logger: logger)
        for try await id in rows.decode(UUID.self) { decided.insert(id) }
        return decided
    }
}
