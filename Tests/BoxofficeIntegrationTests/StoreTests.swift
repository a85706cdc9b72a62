import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation
import Synchronization
import Testing

extension IntegrationTests {
    @Suite("Store")
    struct StoreTests {
        @Test("migrate twice is a no-op")
        func migrateTwice() async throws {
            let database = try await TestCluster.freshDatabase()
            let again = try await withStore(database, logger: testLogger) { store in
                try await store.migrate(Migration.embedded)
            }
            #expect(again.isEmpty)
        }

        @Test("`boxoffice migrate` run from a folder with no db/ applies the migrations built into the binary")
        func migrateWithoutACheckout() async throws {
            let database = try await TestCluster.emptyDatabase()
            let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-no-checkout-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: elsewhere) }
            let migrate = Process()
            migrate.executableURL = ChildProcesses.siblingExecutable()
            migrate.arguments = ["migrate", "--log-format", "json"]
            var environment = ProcessInfo.processInfo.environment.merging(["DATABASE_URL": database.url]) { $1 }
            environment["BOXOFFICE_MIGRATIONS_DIR"] = nil
            migrate.environment = environment
            migrate.currentDirectoryURL = elsewhere
            migrate.standardOutput = FileHandle.nullDevice
            migrate.standardError = FileHandle.nullDevice
            try migrate.run()
            // Polled: Foundation's waitUntilExit spins a core on Linux and holds a cooperative thread.
            while migrate.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            #expect(migrate.terminationStatus == 0)
            let applied = try await withStore(database, logger: testLogger) { store in
                var versions: [Int] = []
                for try await version in try await store.client.query("SELECT version FROM schema_migrations ORDER BY version").decode(Int.self) {
                    versions.append(version)
                }
                return versions
            }
            #expect(applied == Migration.embedded.map(\.version) && !applied.isEmpty, "applied: \(applied)")
        }

        @Test("The audit catches a broken invariant (it can fail)")
        func auditCatchesCorruption() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Hall", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 4)]))
                let drafts = (0..<2).map { IntentDraft(eventID: event.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) }
                _ = try await store.enqueue(drafts)
                _ = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                #expect(try await store.audit().isClean)

                // Give the second order the first order's seat: a seat in two orders, and a sold seat in no order.
                try await store.client.query(
                    """
                    UPDATE outcomes SET seats = (SELECT seats FROM outcomes WHERE status = 'confirmed' ORDER BY intent_id LIMIT 1)
                    WHERE intent_id = (SELECT max(intent_id) FROM outcomes)
                    """)
                let report = try await store.audit()
                #expect(report.violations.contains { $0.hasPrefix("a seat is in two live (held or confirmed) outcomes") })
                #expect(report.violations.contains { $0.hasPrefix("the seat map's taken seats differ") })

                try await store.client.query("UPDATE inventory SET sold = sold + 1, available = available - 1")
                #expect(try await store.audit().violations.contains { $0.hasPrefix("inventory.sold or inventory.held differs") })
            }
        }

        @Test("A seat label that does not parse fails every read of its outcome, never shown with the seat missing (it can fail)")
        func unparsableSeatLabel() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Hall", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 4)]))
                let request = PurchaseRequest.seats([SeatLabel(section: "A", row: 1, seat: 1), SeatLabel(section: "A", row: 1, seat: 2)])
                let id = try await store.enqueue([IntentDraft(eventID: event.id, customer: "c", request: request, idempotencyKey: nil)])[0].publicID
                _ = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                guard case .decided(.confirmed(2, _)) = try await store.status(of: id)?.state else {
                    Issue.record("not confirmed")
                    return
                }

                // A writer that skipped the Store: row 0 does not exist, so the label does not parse.
                try await store.client.query("UPDATE outcomes SET seats = '{A-1-1,A-0-2}'")
                for read in ["status", "long-poll lookup"] {
                    do {
                        let status = read == "status" ? try await store.status(of: id) : try await store.decidedStatuses(among: [id])[id]
                        Issue.record("the \(read) read answered \(String(describing: status))")
                    } catch let error as StoreError {
                        guard case .invariantBroken(let message) = error else {
                            Issue.record("\(read): \(error)")
                            continue
                        }
                        #expect(message.contains("\(id)") && message.contains("A-0-2"), "\(read): \(message)")
                    }
                }
                // The claim path uses the same conversion: a queued row with such a label is set aside.
                try await store.client.query(
                    """
                    INSERT INTO intents (public_id, event_id, customer, quantity, seats) VALUES (gen_random_uuid(), \(event.id), 'x', 1, '{A-0-3}')
                    """)
                let report = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                #expect(report?.quarantined == 1)
            }
        }

        @Test("Events are permanent (intents and outcomes carry no foreign key) and the audit finds an orphan")
        func eventsArePermanent() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Kept", layout: .generalAdmission(capacity: 5))
                _ = try await store.enqueue([IntentDraft(eventID: event.id, customer: "c", request: .anywhere(quantity: 1), idempotencyKey: nil)])
                await #expect(throws: (any Error).self, "DELETE was allowed") { try await store.client.query("DELETE FROM events") }
                await #expect(throws: (any Error).self, "TRUNCATE was allowed") { try await store.client.query("TRUNCATE events CASCADE") }
                #expect(try await store.eventSummary(event.id)?.pending == 1)
                #expect(try await store.audit().isClean)

                // Only a writer that skips the API can queue an intent for no event; verify names it.
                try await store.client.query("INSERT INTO intents (public_id, event_id, customer, quantity) VALUES (gen_random_uuid(), 999, 'x', 1)")
                #expect(try await store.audit().violations.contains { $0.hasPrefix("an intent or outcome names no event") })
            }
        }

        @Test("Queue position and an event's pending: exact up to the count bound, then estimated from ids (exact for one event, never low)")
        func queuePosition() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let hot = try await store.createEvent(name: "Hot", layout: .generalAdmission(capacity: 5))
                let other = try await store.createEvent(name: "Other", layout: .generalAdmission(capacity: 5))
                let bound = Store.queuePositionCountMax
                var hotIDs: [UUID] = []
                // One event alone, past the bound: every position is exact.
                for _ in 0..<3 {
                    let drafts = (0..<bound / 2 + 1).map {
                        IntentDraft(eventID: hot.id, customer: "h-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil)
                    }
                    hotIDs += try await store.enqueue(drafts).map(\.publicID)
                }
                for index in [0, 1, bound - 1, bound, bound + 1, hotIDs.count - 1] {
                    guard case .pending(let ahead) = try await store.status(of: hotIDs[index])?.state else {
                        Issue.record("not pending")
                        continue
                    }
                    #expect(ahead == index, "intent \(index) of one event")
                }
                // The event's pending count follows the same rule.
                #expect(try await store.eventSummary(hot.id)?.pending == hotIDs.count)
                // Another event's intents interleave with later ones: the estimate may only overstate.
                _ = try await store.enqueue(
                    (0..<500).map { IntentDraft(eventID: other.id, customer: "o-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                let late = try await store.enqueue([
                    IntentDraft(eventID: hot.id, customer: "late", request: .anywhere(quantity: 1), idempotencyKey: nil)
                ])
                guard case .pending(let ahead) = try await store.status(of: late[0].publicID)?.state else {
                    Issue.record("not pending")
                    return
                }
                #expect(ahead >= hotIDs.count && ahead <= hotIDs.count + 500)
                let pending = try await store.eventSummary(hot.id)?.pending ?? -1
                #expect(pending >= hotIDs.count + 1 && pending <= hotIDs.count + 501, "pending \(pending)")
                #expect(try await store.eventSummary(other.id)?.pending == 500)
            }
        }

        @Test("Intake notifies the workers only when asked to (the intake group commit throttles NOTIFY)")
        func intakeNotifyFlag() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Quiet", layout: .generalAdmission(capacity: 5))
                // Intake's notifications, and markers: PostgreSQL delivers notifications in commit order, so
                // once a marker sent after some statements is heard, whatever those statements sent was heard too.
                let heard = Atomic<Int>(0)
                let markersHeard = Atomic<Int>(0)
                let listener = Task {
                    try await store.listen(on: Store.intentsChannel) { payload in
                        if payload.hasPrefix("marker-") { markersHeard.add(1, ordering: .relaxed) } else { heard.add(1, ordering: .relaxed) }
                    }
                }
                defer { listener.cancel() }
                let sendMarkerAndWait: @Sendable (String) async throws -> Void = { marker in
                    let count = markersHeard.load(ordering: .relaxed) + 1
                    try await store.client.query("SELECT pg_notify(\(Store.intentsChannel), \(marker))")
                    let deadline = ContinuousClock.now + .seconds(10)
                    while markersHeard.load(ordering: .relaxed) < count, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    try #require(markersHeard.load(ordering: .relaxed) == count, "the listener never heard \(marker)")
                }
                // The LISTEN is in place once a notification sent now is heard.
                let draft = { (keyed: Bool) in
                    IntentDraft(eventID: event.id, customer: "c", request: .anywhere(quantity: 1), idempotencyKey: keyed ? "k-\(UUID())" : nil)
                }
                _ = try await poll(timeout: .seconds(10)) {
                    guard heard.load(ordering: .relaxed) == 0 else { return nil }
                    _ = try await store.enqueue([draft(false)], notify: true)
                    return "nothing heard"
                }
                try #require(heard.load(ordering: .relaxed) > 0, "the listener never heard intake")
                try await sendMarkerAndWait("marker-listening")
                let before = heard.load(ordering: .relaxed)
                // Silent groups, keyed and unkeyed (two statements), then one that notifies.
                _ = try await store.enqueue([draft(false), draft(false)], notify: false)
                _ = try await store.enqueue([draft(true)], notify: false)
                _ = try await store.enqueue([draft(false)], notify: true)
                _ = try await poll(every: .milliseconds(20), timeout: .seconds(10)) {
                    heard.load(ordering: .relaxed) == before ? "nothing heard" : nil
                }
                try await Task.sleep(for: .milliseconds(300))
                #expect(heard.load(ordering: .relaxed) == before + 1)
            }
        }

        @Test("A batch that fails mid-settle rolls back entirely and the intents are claimed again")
        func failedBatchRollsBack() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Gig", layout: .generalAdmission(capacity: 5))
                let drafts = (0..<3).map { IntentDraft(eventID: event.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) }
                _ = try await store.enqueue(drafts)
                // A trigger that fails the settle statement halfway, as a crash or a timeout would.
                try await store.client.query(
                    """
                    CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$
                    """)
                try await store.client.query("CREATE TRIGGER fail_settle BEFORE INSERT ON outcomes FOR EACH ROW EXECUTE FUNCTION fail_once()")
                await #expect(throws: (any Error).self) {
                    try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                }
                #expect(try await store.eventSummary(event.id)?.pending == 3)
                #expect(try await store.eventSummary(event.id)?.sold == 0)
                try await store.client.query("DROP TRIGGER fail_settle ON outcomes")
                let report = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                #expect(report?.confirmed == 3)
                #expect(try await store.audit().isClean)
            }
        }

        @Test("Workers skip an event whose allocation right another transaction holds, and serve the next")
        func busyEventIsSkipped() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let busy = try await store.createEvent(name: "Busy", layout: .generalAdmission(capacity: 5))
                let free = try await store.createEvent(name: "Free", layout: .generalAdmission(capacity: 5))
                _ = try await store.enqueue(
                    [busy, free].map { IntentDraft(eventID: $0.id, customer: "c", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                try await store.client.withTransaction(logger: testLogger) { connection in
                    try await connection.query("SELECT 1 FROM inventory WHERE event_id = \(busy.id) FOR NO KEY UPDATE", logger: testLogger)
                    let report = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                    #expect(report?.eventID == free.id)
                    // Intake is not blocked by the held allocation right.
                    let accepted = try await store.enqueue([
                        IntentDraft(eventID: busy.id, customer: "d", request: .anywhere(quantity: 1), idempotencyKey: nil)
                    ])
                    #expect(accepted.count == 1)
                    #expect(try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) } == nil)
                }
                let report = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                #expect(report?.eventID == busy.id)
                #expect(report?.intents == 2)
            }
        }
    }
}
