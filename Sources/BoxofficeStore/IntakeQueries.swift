import BoxofficeCore
import Foundation
import PostgresNIO

/// A validated purchase intent on its way into the queue.
public struct IntentDraft: Sendable, Equatable {
    public let publicID: UUID
    public let eventID: EventID
    public let customer: String
    public let request: PurchaseRequest
    public let idempotencyKey: String?

    public init(publicID: UUID = RandomUUID.make(), eventID: EventID, customer: String, request: PurchaseRequest, idempotencyKey: String?) {
        self.publicID = publicID
        self.eventID = eventID
        self.customer = customer
        self.request = request
        self.idempotencyKey = idempotencyKey
    }

    /// What makes two requests "the same" for an Idempotency-Key: a retry must repeat the body exactly.
    public var fingerprint: String {
        "\(customer)\u{1F}\(request.quantity)\u{1F}\(request.sectionColumn ?? "")\u{1F}\(request.seatsColumn ?? "")"
    }
}

/// What intake did with one draft.
public enum IntakeResult: Sendable, Equatable {
    /// Committed to the queue now.
    case accepted(UUID)
    /// The Idempotency-Key was used before with the same request: this is that intent.
    case replayed(UUID)
    /// The Idempotency-Key was used before, by the same customer for the same event, with a different
    /// request: refused, nothing written. Carries that earlier intent's id, which belongs to the same
    /// buyer (keys are scoped per customer), for logs; the API does not reveal it.
    case keyReused(UUID)

    public var publicID: UUID {
        switch self {
        case .accepted(let id), .replayed(let id), .keyReused(let id): id
        }
    }
}

/// Inserts a group of intents, their acceptance records and their Idempotency-Keys in one statement,
/// and notifies workers if asked. A key already taken (same event, customer and key) makes its row
/// skip the queue and the acceptance record, so a replay accepts nothing new; the caller looks the
/// key up afterwards. The ids returned are those of the acceptance records written.
///
/// A key older than `keyLifetimeSeconds` is taken over instead: the conflicting row is updated to
/// the new intent (`ON CONFLICT DO UPDATE … WHERE` it is expired), so an expired key the sweep has
/// not deleted yet behaves as absent. The update locks the row, and a second intake with the same
/// expired key waits for it and then finds a fresh key: exactly one of them is accepted. Keys are
/// inserted once per scope (the first draft of the group wins, later ones look it up) and in one
/// sorted order, so two groups taking over keys in opposite orders cannot deadlock.
struct EnqueueStatement: StoreStatement {
    typealias Row = ([UUID], Int)
    static let sample = EnqueueStatement(drafts: [], notify: true, keyLifetimeSeconds: 0)
    let drafts: [IntentDraft]
    let notify: Bool
    let keyLifetimeSeconds: Double

    var query: PostgresQuery {
        """
        WITH input AS (
            SELECT * FROM unnest(
                \(drafts.map(\.publicID))::uuid[], \(drafts.map(\.eventID))::bigint[], \(drafts.map(\.customer))::text[],
                \(drafts.map(\.request.quantity))::int[], \(drafts.map { $0.request.sectionColumn ?? "" })::text[],
                \(drafts.map { $0.request.seatsColumn ?? "" })::text[], \(drafts.map { $0.idempotencyKey ?? "" })::text[],
                \(drafts.map(\.fingerprint))::text[]
            ) WITH ORDINALITY AS t(public_id, event_id, customer, quantity, section, seats, idempotency_key, fingerprint, ord)
        ), keyed AS (
            INSERT INTO idempotency_keys AS k (event_id, customer, key, public_id, fingerprint)
            SELECT DISTINCT ON (event_id, customer, idempotency_key) event_id, customer, idempotency_key, public_id, fingerprint
            FROM input WHERE idempotency_key <> ''
            ORDER BY event_id, customer, idempotency_key, ord
            ON CONFLICT (event_id, customer, key) DO UPDATE
                SET public_id = excluded.public_id, fingerprint = excluded.fingerprint, created_at = excluded.created_at
                WHERE k.created_at < now() - make_interval(secs => \(keyLifetimeSeconds)::float8)
            RETURNING public_id
        ), queued AS (
            INSERT INTO intents (public_id, event_id, customer, quantity, section, seats)
            SELECT public_id, event_id, customer, quantity, NULLIF(section, ''), string_to_array(NULLIF(seats, ''), ',')
            FROM input
            WHERE idempotency_key = '' OR public_id IN (SELECT public_id FROM keyed)
            ORDER BY ord
            RETURNING id, public_id, event_id, created_at
        ), accepted AS (
            INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at)
            SELECT id, public_id, event_id, created_at FROM queued
            RETURNING public_id
        )
        SELECT coalesce(array_agg(public_id), '{}'), (SELECT count(*) FROM (SELECT pg_notify(\(Store.intentsChannel), '') WHERE \(notify)::boolean) sent)::int FROM accepted
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The common case: no intent of the group carries an Idempotency-Key, so nothing can conflict. Six
/// arrays instead of eight, no key CTE, and a count back instead of every id: the count of acceptance
/// records, each written from a queued row of the same statement.
struct EnqueueUnkeyedStatement: StoreStatement {
    typealias Row = (Int, Int)
    static let sample = EnqueueUnkeyedStatement(drafts: [], notify: true)
    let drafts: [IntentDraft]
    let notify: Bool

    var query: PostgresQuery {
        """
        WITH queued AS (
            INSERT INTO intents (public_id, event_id, customer, quantity, section, seats)
            SELECT public_id, event_id, customer, quantity, NULLIF(section, ''), string_to_array(NULLIF(seats, ''), ',')
            FROM unnest(
                \(drafts.map(\.publicID))::uuid[], \(drafts.map(\.eventID))::bigint[], \(drafts.map(\.customer))::text[],
                \(drafts.map(\.request.quantity))::int[], \(drafts.map { $0.request.sectionColumn ?? "" })::text[],
                \(drafts.map { $0.request.seatsColumn ?? "" })::text[]
            ) WITH ORDINALITY AS t(public_id, event_id, customer, quantity, section, seats, ord)
            ORDER BY ord
            RETURNING id, public_id, event_id, created_at
        ), accepted AS (
            INSERT INTO acceptances (intent_id, public_id, event_id, accepted_at)
            SELECT id, public_id, event_id, created_at FROM queued
            RETURNING 1
        )
        SELECT count(*)::int, (SELECT count(*) FROM (SELECT pg_notify(\(Store.intentsChannel), '') WHERE \(notify)::boolean) sent)::int FROM accepted
        """
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// What an Idempotency-Key is unique within: one buyer's keys never meet another buyer's.
struct IdempotencyScope: Hashable {
    let eventID: EventID
    let customer: String
    let key: String
}

extension Store {
    /// Commits a group of intents and their acceptance records with one statement (one round trip,
    /// one fsync), honouring Idempotency-Keys per event and customer, and tells workers there is work. Results come back in the order given.
    ///
    /// Group commit is how intake keeps up with HTTP: one INSERT per request tops out far lower.
    ///
    /// `notify: false` skips the NOTIFY that wakes idle workers. PostgreSQL serializes the commits of
    /// notifying transactions (a global lock held through the WAL flush), so intake's group commit
    /// notifies at most once per ``IntakeGroupCommit/Configuration/notifyIntervalMin`` and busy workers
    /// find the rest by looking again.
    ///
    /// `sendBefore`: the statement is not sent once this instant has passed (see ``rows(_:on:sendBefore:)``).
    public func enqueue(_ drafts: [IntentDraft], notify: Bool = true, sendBefore: ContinuousClock.Instant? = nil) async throws -> [IntakeResult] {
        guard !drafts.isEmpty else { return [] }
        if drafts.allSatisfy({ $0.idempotencyKey == nil }) {
            let written = try await rows(EnqueueUnkeyedStatement(drafts: drafts, notify: notify), sendBefore: sendBefore).first?.0 ?? 0
            guard written == drafts.count else {
                throw StoreError.invariantBroken("intake wrote \(written) of \(drafts.count) intents")
            }
            return drafts.map { .accepted($0.publicID) }
        }
        var results: [UUID: IntakeResult] = [:]
        var remaining = drafts
        // A key seen taken by the insert can be swept before the lookup reads it (it expired in
        // between): its draft was not written, so it goes round again, now as a new key. Later rounds
        // ignore `sendBefore`: the first one committed the rest of the group, whose callers must get
        // their answers, not a 503 for rows that exist.
        for round in 0..<Self.keyedIntakeAttemptsMax where !remaining.isEmpty {
            for (draft, result) in try await enqueueKeyed(remaining, notify: notify, sendBefore: round == 0 ? sendBefore : nil) {
                results[draft.publicID] = result
            }
            remaining = remaining.filter { results[$0.publicID] == nil }
        }
        return try drafts.map { draft in
            guard let result = results[draft.publicID] else {
                throw StoreError.invariantBroken("intent \(draft.publicID) was neither queued nor matched an idempotency key")
            }
            return result
        }
    }

    /// Rounds of the keyed insert for one group: a draft goes round again only if its key vanished
    /// between the insert and the lookup (swept at its expiry), which the next round cannot repeat.
    static let keyedIntakeAttemptsMax = 3

    /// One keyed insert and the lookup of the keys it found taken; drafts whose key was found neither
    /// taken nor free (deleted meanwhile) get no result.
    private func enqueueKeyed(
        _ drafts: [IntentDraft], notify: Bool, sendBefore: ContinuousClock.Instant?
    ) async throws -> [(IntentDraft, IntakeResult)] {
        var queued = Set<UUID>()
        let statement = EnqueueStatement(drafts: drafts, notify: notify, keyLifetimeSeconds: idempotencyKeyLifetime.secondsDouble)
        for (ids, _) in try await rows(statement, sendBefore: sendBefore) { queued.formUnion(ids) }

        let conflicted = drafts.filter { !queued.contains($0.publicID) }
        guard !conflicted.isEmpty else { return drafts.map { ($0, .accepted($0.publicID)) } }

        var existing: [IdempotencyScope: (UUID, String)] = [:]
        let keyRows = try await fetch(
            """
            SELECT k.event_id, k.customer, k.key, k.public_id, k.fingerprint
            FROM idempotency_keys k
            JOIN unnest(\(conflicted.map(\.eventID))::bigint[], \(conflicted.map(\.customer))::text[],
                        \(conflicted.map { $0.idempotencyKey ?? "" })::text[]) AS c(event_id, customer, key)
              ON k.event_id = c.event_id AND k.customer = c.customer AND k.key = c.key
            """)
        for row in keyRows {
            let (eventID, customer, key, publicID, fingerprint) = try row.decode((EventID, String, String, UUID, String).self)
            existing[IdempotencyScope(eventID: eventID, customer: customer, key: key)] = (publicID, fingerprint)
        }
        return drafts.compactMap { draft in
            if queued.contains(draft.publicID) { return (draft, .accepted(draft.publicID)) }
            guard let key = draft.idempotencyKey,
                let (publicID, fingerprint) = existing[IdempotencyScope(eventID: draft.eventID, customer: draft.customer, key: key)]
            else { return nil }
            return (draft, fingerprint == draft.fingerprint ? .replayed(publicID) : .keyReused(publicID))
        }
    }
}

extension Duration {
    /// Whole and fractional seconds, for a statement's interval parameter.
    var secondsDouble: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
