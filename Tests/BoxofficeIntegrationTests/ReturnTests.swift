import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation
import PostgresNIO
import Testing

extension IntegrationTests {
    @Suite("Sale lifecycle: transitions and returns through the allocator")
    struct ReturnTests {
        static func drain(_ store: Store) async throws {
            while try await store.allocateNextBatch(batchSizeMax: 64, allocate: { Allocator.allocate($1, from: &$0) }) != nil {}
        }

        static func enqueue(_ store: Store, _ event: EventID, _ customers: [String], _ request: PurchaseRequest) async throws -> [UUID] {
            try await store.enqueue(customers.map { IntentDraft(eventID: event, customer: $0, request: request, idempotencyKey: nil) })
                .map { result in
                    guard case .accepted(let id) = result else { throw StoreError.invariantBroken("not accepted: \(result)") }
                    return id
                }
        }

        static func word(_ store: Store, _ id: UUID) async throws -> IntentStatusWord? { try await store.status(of: id)?.word }

        static func counts(_ store: Store, _ event: EventID) async throws -> (sold: Int, held: Int, available: Int) {
            let summary = try #require(try await store.eventSummary(event))
            return (summary.sold, summary.held, summary.available)
        }

        static func expectClean(_ store: Store, _ where: String) async throws {
            let report = try await store.audit()
            #expect(report.isClean, "\(`where`): \(report.violations)")
        }

        @Test("Released, cancelled and expired seats go back into the sale once, before the next batch allocates, to the intents still queued")
        func seatsComeBackOnce() async throws {
            try await withLiveAPI { api in
                let store = api.store
                let event = try await store.createEvent(
                    name: "Returns", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 2)]), holdSeconds: 600
                ).id
                let first = try await Self.enqueue(store, event, ["a", "b", "c"], .anywhere(quantity: 1))
                try await Self.drain(store)
                #expect(try await Self.word(store, first[0]) == .held)
                #expect(try await Self.word(store, first[1]) == .held)
                #expect(try await store.status(of: first[2])?.state == .decided(.rejected(.soldOut)))
                let seatOfA = try #require(try await store.status(of: first[0])).seatLabels

                // Released: the outcome changes at once; the counters when a worker takes the journal in.
                #expect(try await store.transition(.release, of: first[0], customer: "a").map(\.word) == .released)
                #expect(try await Self.counts(store, event) == (0, 2, 0))
                try await Self.expectClean(store, "a release waiting for a worker")
                // A repeat is the same answer; a confirm of a released hold is refused.
                #expect(try await store.transition(.release, of: first[0], customer: nil).map(\.word) == .released)
                guard case .refused(let released, _)? = try await store.transition(.confirm(paymentReference: nil), of: first[0], customer: nil)
                else {
                    Issue.record("a confirm of a released hold must be refused")
                    return
                }
                #expect(released.word == .released)

                // The next buyer gets exactly that seat, in the batch that takes the release in.
                let second = try await Self.enqueue(store, event, ["d", "e"], .anywhere(quantity: 1))
                try await Self.drain(store)
                #expect(try await Self.word(store, second[0]) == .held)
                #expect(try #require(try await store.status(of: second[0])).seatLabels == seatOfA)
                #expect(try await store.status(of: second[1])?.state == .decided(.rejected(.soldOut)))
                #expect(try await Self.counts(store, event) == (0, 2, 0))
                try await Self.expectClean(store, "after the release was resold")

                // Confirm (idempotent; another payment reference is refused), then cancel: back once more.
                #expect(try await store.transition(.confirm(paymentReference: "pay-1"), of: first[1], customer: "b").map(\.word) == .confirmed)
                #expect(try await store.transition(.confirm(paymentReference: "pay-1"), of: first[1], customer: "b").map(\.word) == .confirmed)
                #expect(try await store.transition(.confirm(paymentReference: nil), of: first[1], customer: nil).map(\.word) == .confirmed)
                guard case .paymentReferenceDiffers? = try await store.transition(.confirm(paymentReference: "pay-2"), of: first[1], customer: nil)
                else {
                    Issue.record("a second confirm with another payment reference must be refused")
                    return
                }
                #expect(try await store.transition(.release, of: first[1], customer: "someone-else") == .anotherCustomer)
                guard case .refused(let confirmed, _)? = try await store.transition(.release, of: first[1], customer: "b") else {
                    Issue.record("a release of a confirmed order must be refused")
                    return
                }
                #expect(confirmed.word == .confirmed && confirmed.paymentReference == "pay-1")
                try await Self.drain(store)
                #expect(try await Self.counts(store, event) == (1, 1, 0))
                #expect(try await store.transition(.cancel(reason: "refund"), of: first[1], customer: nil).map(\.word) == .cancelled)
                try await Self.expectClean(store, "a cancel waiting for a worker")
                try await Self.drain(store)
                #expect(try await Self.counts(store, event) == (0, 1, 1), "a cancel gives its seat back with no intent queued")
                try await Self.expectClean(store, "after the cancel")

                // Expiry: the database's clock decides. A hold past expires_at cannot be confirmed; the
                // worker expires it and its seat comes back.
                try await store.client.query(
                    "UPDATE outcomes SET expires_at = statement_timestamp() - interval '1 second' WHERE public_id = \(second[0])")
                guard
                    case .refused(let due, let pastExpiry)? = try await store.transition(
                        .confirm(paymentReference: nil), of: second[0], customer: nil)
                else {
                    Issue.record("a confirm after expires_at must be refused")
                    return
                }
                #expect(due.word == .held && pastExpiry)
                try await Self.drain(store)
                #expect(try await Self.word(store, second[0]) == .expired)
                #expect(try await Self.counts(store, event) == (0, 0, 2))
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.released == 1 && report.expired == 1 && report.cancelled == 1 && report.journalPending == 0)
                #expect(report.expiryLatenessMaxSeconds < 60)
            }
        }

        @Test("General admission: returned tickets are counted back once and resold in arrival order")
        func generalAdmissionReturns() async throws {
            try await withLiveAPI { api in
                let store = api.store
                let event = try await store.createEvent(name: "GA returns", layout: .generalAdmission(capacity: 5), holdSeconds: 600).id
                let held = try await Self.enqueue(store, event, ["a", "b"], .anywhere(quantity: 2))
                let late = try await Self.enqueue(store, event, ["c"], .anywhere(quantity: 2))
                try await Self.drain(store)
                #expect(try await Self.word(store, late[0]) == .rejected)
                #expect(try await Self.counts(store, event) == (0, 4, 1))
                #expect(try await store.transition(.release, of: held[0], customer: nil).map(\.word) == .released)
                let next = try await Self.enqueue(store, event, ["d", "e"], .anywhere(quantity: 3))
                try await Self.drain(store)
                #expect(try await Self.word(store, next[0]) == .held, "the 2 released + 1 left make 3")
                #expect(try await Self.word(store, next[1]) == .rejected)
                #expect(try await Self.counts(store, event) == (0, 5, 0))
                try await Self.expectClean(store, "general admission after a resale")
            }
        }

        @Test("verify catches a seat returned twice, a journal row that disagrees with its outcome, and a hold left past its expiry")
        func auditCatchesBrokenReturns() async throws {
            try await withLiveAPI { api in
                let store = api.store
                let event = try await store.createEvent(
                    name: "Broken returns", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 3)]), holdSeconds: 600
                ).id
                let ids = try await Self.enqueue(store, event, ["a", "b"], .anywhere(quantity: 1))
                try await Self.drain(store)
                #expect(try await store.transition(.release, of: ids[0], customer: nil).map(\.word) == .released)
                try await Self.drain(store)
                try await Self.expectClean(store, "before corrupting")

                try await expectAuditCatches(
                    store,
                    """
                    INSERT INTO inventory_journal (event_id, intent_id, change, quantity, seats)
                    SELECT event_id, intent_id, 'release', quantity, seats FROM outcomes WHERE public_id = '\(ids[0])'
                    """,
                    "DELETE FROM inventory_journal",
                    "a released, expired or cancelled grant was returned to the sale other than exactly once")
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET returned_at = NULL WHERE public_id = '\(ids[0])'",
                    "UPDATE outcomes SET returned_at = changed_at WHERE public_id = '\(ids[0])'",
                    "a released, expired or cancelled grant was returned to the sale other than exactly once")
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET expires_at = statement_timestamp() - interval '1 minute' WHERE public_id = '\(ids[1])'",
                    "UPDATE outcomes SET expires_at = statement_timestamp() + interval '10 minutes' WHERE public_id = '\(ids[1])'",
                    "a hold is still held past its expiry by more than the bound")
                #expect(try await store.audit(holdLatenessMax: nil).isClean)
            }
        }
    }
}

extension IntentStatus {
    var seatLabels: [SeatLabel] {
        if case .decided(.confirmed(_, let seats)) = state { return seats }
        return []
    }
}

extension TransitionResult {
    /// The status word a `.done` transition left; nil for any refusal.
    var word: IntentStatusWord? {
        if case .done(let status) = self { return status.word }
        return nil
    }
}
