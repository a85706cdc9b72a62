import BoxofficeCore
import PostgresNIO

// Setting intents aside: why a batch failed, which rows a worker rejects without the allocator, and
// the quarantine of one intent whose batch keeps failing even alone.

/// A batch that failed after its event was picked (and rolled back): which event, which intents may
/// have caused it, and why. Lets a worker tell a batch that keeps failing on its own content from a
/// database that is away.
public struct BatchFailure: Error, CustomStringConvertible {
    public let eventID: EventID
    /// The intents being settled when the batch failed. Empty when it failed earlier (picking the
    /// event, claiming, loading or checking the seat rows): trouble of the event or the database, which
    /// no intent's quarantine would cure.
    public let suspectIntentIDs: [Int64]
    public let underlying: any Error

    public init(eventID: EventID, suspectIntentIDs: [Int64], underlying: any Error) {
        self.eventID = eventID
        self.suspectIntentIDs = suspectIntentIDs
        self.underlying = underlying
    }

    public var description: String {
        "event \(eventID), \(suspectIntentIDs.count) intents being settled: \(describeDatabaseError(underlying))"
    }

    /// True when the batch itself may be the cause, so retrying it unchanged may never succeed: a data
    /// or constraint error, a statement timeout (57014), an error raised by the server on the batch's
    /// rows, a row that does not decode, a broken invariant. False when the database is away or busy
    /// (connection lost or refused, shutdown, out of resources, client-side timeout, deadlock,
    /// serialization failure, lock timeout): those are backed off and retried as they are.
    public var mayBeTheBatch: Bool {
        guard !suspectIntentIDs.isEmpty else { return false }
        return Self.mayBeTheBatch(underlying)
    }

    /// True when the database answered and refused the event's batch (the errors of ``mayBeTheBatch``,
    /// whether or not intents were being settled yet): a broken invariant of the event's inventory or
    /// seat rows, a constraint, a statement timeout. Retrying that event at once will likely fail again,
    /// while other events may be fine; the worker picks the others first for a while.
    public var isTheEventsOwn: Bool { Self.mayBeTheBatch(underlying) }

    /// The batch was cut off by the server's `statement_timeout` (57014): its own doing, or a stalled
    /// database; the worker waits longer before it blames a lone intent for it.
    public var isStatementTimeout: Bool {
        (underlying as? PSQLError)?.serverInfo?[.sqlState] == "57014"
    }

    static func mayBeTheBatch(_ error: any Error) -> Bool {
        switch error {
        case let error as StoreError:
            if case .invariantBroken = error { return true }
            return false
        case let error as PSQLError:
            guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
            let transient = ["40001", "40P01", "55P03", "25P03", "57P01", "57P02", "57P03", "57P04", "57P05"]
            return !state.hasPrefix("08") && !state.hasPrefix("53") && !state.hasPrefix("58") && !transient.contains(state)
        case is PostgresDecodingError:
            return true
        default:
            return false
        }
    }
}

/// A claimed intent rejected without the allocator, with its reason (`invalid_request`: the row makes
/// no request of its event; `quarantined`: its batch kept failing even alone) and the error that
/// condemned it, kept in `quarantine`.
struct SetAside: Sendable {
    let intentID: Int64
    let reason: RejectionReason
    let error: String
}

extension Store {
    /// Longest error text kept with a quarantined intent.
    static let quarantineErrorLengthMax = 1_000

    /// Sets one queued intent aside, in its own transaction: rejected as `quarantined` with `error`
    /// recorded, so the event's other intents can be decided. For an intent whose batch kept failing
    /// even when claimed alone. Waits (within `lock_timeout`) for the event's allocation right, so no
    /// batch of the event is in flight, then settles it through the batch path (``settle``) as a batch
    /// with nothing allocated. False when the intent is no longer queued (settled meanwhile).
    public func quarantine(intentID: Int64, eventID: EventID, error: String) async throws -> Bool {
        try await transaction { connection in
            // Two statements: the queue is read after the lock is granted, with a snapshot that sees what
            // the batch it waited for has settled.
            _ = try await self.rows(AllocationRightStatement(eventID: eventID), on: connection)
            guard try await self.rows(IntentQueuedStatement(intentID: intentID), on: connection).first != nil else { return false }
            try await self.settle(
                eventID: eventID, batch: [], outcomes: [],
                setAside: [SetAside(intentID: intentID, reason: .quarantined, error: error)],
                changedRows: [], counters: CounterChange(), holdSeconds: 0, on: connection)
            return true
        }
    }
}

/// The event's allocation right, waited for (within `lock_timeout`) rather than skipped.
struct AllocationRightStatement: StoreStatement {
    typealias Row = Int64
    static let sample = AllocationRightStatement(eventID: 0)
    let eventID: EventID

    var query: PostgresQuery { "SELECT event_id FROM inventory WHERE event_id = \(eventID) FOR NO KEY UPDATE" }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A row when the intent is still queued.
struct IntentQueuedStatement: StoreStatement {
    typealias Row = Int64
    static let sample = IntentQueuedStatement(intentID: 0)
    let intentID: Int64

    var query: PostgresQuery { "SELECT id FROM intents WHERE id = \(intentID)" }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
