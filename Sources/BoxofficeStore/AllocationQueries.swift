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
    /// after the event is picked is thrown as a ``BatchFailure``. `deferring` names events to pick only when no other has work.
    public func allocateNextBatch(
        batchSizeMax: Int,
        claimSizeMaxByEvent: [EventID: Int] = [:],
        claimAfterByEvent: [EventID: Int64] = [:],
        deferring: [EventID] = [],
        allocate: @Sendable (inout Inventory, [PendingIntent]) -> [Outcome]
    ) async throws -> BatchReport? {
        precondition(batchSizeMax >= 1)
        return try await transaction { connection -> BatchReport? in
            // The allocation right: the inventory row of an event with queued intents that no other worker
            // holds. The recursive CTE walks the distinct event ids of the queue through its index (a loose
            // index scan), so its cost follows the number of events with work, not the queue's length.
            guard
                let (eventID, capacity, available, holdSeconds, owed) = try await self.rows(PickEventStatement(deferring: deferring), on: connection)
                    .first
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
