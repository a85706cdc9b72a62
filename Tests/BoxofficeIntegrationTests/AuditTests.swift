import BoxofficeBench
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import BoxofficeWorker
import Foundation
import PostgresNIO
import Synchronization
import Testing

// Long on purpose: each test breaks a finished sale one way (a lost row, a poisoned intent, a corrupt
// seat) and checks that `verify` names it, so the list of what the audit catches reads in one file.

extension IntegrationTests {
    @Suite("Audit: acceptance record, quarantine, what was asked for")
    struct AuditTests {
        /// Four intents of a five-ticket event, two settled and two still queued; the public ids, in arrival order.
        static func halfSettledSale(_ store: Store) async throws -> (EventID, [UUID]) {
            let event = try await store.createEvent(name: "Half", layout: .generalAdmission(capacity: 5))
            let drafts = (0..<4).map {
                IntentDraft(eventID: event.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: $0 == 0 ? "k-0" : nil)
            }
            let ids = try await store.enqueue(Array(drafts[..<1])).map(\.publicID) + store.enqueue(Array(drafts[1...])).map(\.publicID)
            #expect(try await store.allocateNextBatch(batchSizeMax: 2) { Allocator.allocate($1, from: &$0) }?.intents == 2)
            // A replay with the same key accepts nothing new.
            #expect(try await store.enqueue([drafts[0]]) == [.replayed(ids[0])])
            let report = try await store.audit()
            #expect(report.isClean, "\(report.violations)")
            #expect(report.accepted == 4 && report.outcomes == 2 && report.pending == 2)
            return (event.id, ids)
        }

        /// Makes every outcome of a customer named `poison` fail to be written, unless it is the quarantine
        /// itself: a batch holding such an intent fails to settle, as a row that always trips the
        /// statement timeout would.
        static func refusePoisonedOutcomes(_ store: Store) async throws {
            try await store.client.query(
                """
                CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.customer = 'poison' AND NEW.reason IS DISTINCT FROM 'quarantined' THEN RAISE EXCEPTION 'injected: poisoned row'; END IF;
                    RETURN NEW;
                END $$
                """)
            try await store.client.query("CREATE TRIGGER refuse_poison BEFORE INSERT ON outcomes FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
        }

        /// An in-process worker that polls quickly and retries faults at once.
        static func inProcessWorker(batchSize: Int) -> AllocationWorker.Configuration {
            var configuration = AllocationWorker.Configuration()
            configuration.batchSizeMax = batchSize
            configuration.listen = false
            configuration.pollInterval = .milliseconds(20)
            configuration.faultRetryPause = .milliseconds(10)
            return configuration
        }

        @Test("An accepted intent whose outcome row is deleted behind the application's back fails verify, named with its event")
        func deletedOutcome() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let (event, ids) = try await Self.halfSettledSale(store)
                try await store.client.query("DELETE FROM outcomes WHERE public_id = \(ids[1])")
                let report = try await store.audit()
                let line = report.violations.first { $0.hasPrefix("accepted intents are neither queued nor settled") }
                #expect(
                    line?.contains("event \(event): accepted 4, queued 2 + decided 1 + quarantined 0; 1 missing: \(ids[1].uuidString.lowercased())")
                        == true,
                    "\(report.violations)")
                #expect(try await store.audit(eventID: event).violations.contains { $0.hasPrefix("accepted intents are neither") })
            }
        }

        @Test("An accepted intent whose queued row is deleted behind the application's back fails verify, named with its event")
        func deletedQueuedRow() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let (event, ids) = try await Self.halfSettledSale(store)
                try await store.client.query("DELETE FROM intents WHERE public_id = \(ids[3])")
                let report = try await store.audit()
                let line = report.violations.first { $0.hasPrefix("accepted intents are neither queued nor settled") }
                #expect(
                    line?.contains("event \(event): accepted 4, queued 1 + decided 2 + quarantined 0; 1 missing: \(ids[3].uuidString.lowercased())")
                        == true,
                    "\(report.violations)")
                // Only that check fails: nothing else was touched.
                #expect(report.violations.count == 1, "\(report.violations)")
            }
        }

        @Test("Migration 0003 backfills acceptance records and key customers: verify passes on an upgraded database")
        func upgradedDatabase() async throws {
            let database = try await TestCluster.emptyDatabase()
            let migrations = Migration.embedded
            try await withStore(database, logger: testLogger) { store in
                try await store.migrate(migrations.filter { $0.version <= 2 })
                // What 0002-era event creation wrote (today's createEvent writes columns 0002 lacks).
                var eventID: EventID = 0
                for try await id in try await store.client.query(
                    "INSERT INTO events (name, kind, capacity) VALUES ('Old', 'general_admission', 5) RETURNING id"
                ).decode(EventID.self) { eventID = id }
                try await store.client.query("INSERT INTO inventory (event_id, capacity, available) VALUES (\(eventID), 5, 5)")
                // What 0002-era intake and settle wrote: three intents and a key, one of them settled.
                try await store.client.query(
                    """
                    INSERT INTO intents (public_id, event_id, customer, quantity)
                    SELECT gen_random_uuid(), \(eventID), 'old-' || g, 1 FROM generate_series(1, 3) g
                    """)
                try await store.client.query(
                    """
                    INSERT INTO idempotency_keys (event_id, key, public_id, fingerprint)
                    SELECT event_id, 'old-key', public_id, customer || chr(31) || '1' || chr(31) || chr(31) FROM intents WHERE customer = 'old-1'
                    """)
                try await store.client.query(
                    """
                    WITH moved AS (DELETE FROM intents WHERE customer = 'old-1' RETURNING *),
                    sold AS (UPDATE inventory SET sold = 1, available = 4 WHERE event_id = \(eventID))
                    INSERT INTO outcomes (intent_id, public_id, event_id, customer, quantity, exact_seats, status, accepted_at, decided_at)
                    SELECT id, public_id, event_id, customer, quantity, false, 'confirmed', created_at, now() FROM moved
                    """)
                #expect(try await store.migrate(migrations) == migrations.filter { $0.version > 2 }.map(\.name))
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.accepted == 3 && report.outcomes == 1 && report.pending == 2)
                #expect(try await store.client.query("SELECT customer FROM idempotency_keys").decode(String.self).all() == ["old-1"])
                // Settled after the upgrade, by the new code.
                #expect(try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }?.intents == 2)
                #expect(try await store.audit().isClean)
            }
        }

        @Test("Idempotency-Keys are scoped per event and customer; verify checks each key's event and customer against its intent")
        func keysPerCustomer() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Keys", layout: .generalAdmission(capacity: 5))
                let mine = IntentDraft(eventID: event.id, customer: "alice", request: .anywhere(quantity: 1), idempotencyKey: "same")
                let theirs = IntentDraft(eventID: event.id, customer: "bob", request: .anywhere(quantity: 1), idempotencyKey: "same")
                let first = try await store.enqueue([mine, theirs])
                #expect(first == [.accepted(mine.publicID), .accepted(theirs.publicID)], "another buyer's key collided")
                #expect(
                    try await store.enqueue([
                        IntentDraft(eventID: event.id, customer: "alice", request: .anywhere(quantity: 1), idempotencyKey: "same")
                    ])
                        == [.replayed(mine.publicID)])
                #expect(
                    try await store.enqueue([
                        IntentDraft(eventID: event.id, customer: "alice", request: .anywhere(quantity: 2), idempotencyKey: "same")
                    ])
                        == [.keyReused(mine.publicID)])
                let report = try await store.audit()
                #expect(report.isClean && report.accepted == 2, "\(report.violations)")

                try await store.client.query("UPDATE idempotency_keys SET customer = 'mallory' WHERE public_id = \(theirs.publicID)")
                #expect(
                    try await store.audit().violations.contains {
                        $0.hasPrefix("an Idempotency-Key's event or customer differs") && $0.contains("mallory")
                    })
                try await store.client.query("UPDATE idempotency_keys SET customer = 'bob' WHERE public_id = \(theirs.publicID)")
                let other = try await store.createEvent(name: "Other", layout: .generalAdmission(capacity: 5))
                try await store.client.query("UPDATE idempotency_keys SET event_id = \(other.id) WHERE public_id = \(theirs.publicID)")
                #expect(try await store.audit().violations.contains { $0.hasPrefix("an Idempotency-Key's event or customer differs") })
            }
        }

        @Test("Rows that make no request are rejected as invalid_request at claim time, in the same batch, and verify lists them")
        func invalidRowsAtClaim() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Hall", layout: .seatMap([SectionLayout(name: "A", rows: 2, seatsPerRow: 4)]))
                _ = try await store.enqueue(
                    (0..<3).map { IntentDraft(eventID: event.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                // Written past intake, with the acceptance record intake would have written: labels that do not parse,
                // a seat the event does not have, a section it does not have.
                for (seats, section) in [("'{not-a-seat}'", "NULL"), ("'{Z-1-1}'", "NULL"), ("NULL", "'Q'")] {
                    try await store.client.query(
                        """
                        WITH queued AS (
                            INSERT INTO intents (public_id, event_id, customer, quantity, section, seats)
                            VALUES (gen_random_uuid(), \(event.id), 'poison', 1, \(unescaped: section), \(unescaped: seats))
                            RETURNING id, public_id, event_id, created_at)
                        INSERT INTO acceptances SELECT * FROM queued
                        """)
                }
                _ = try await store.enqueue([IntentDraft(eventID: event.id, customer: "late", request: .anywhere(quantity: 1), idempotencyKey: nil)])
                let batch = try #require(try await store.allocateNextBatch(batchSizeMax: 100) { Allocator.allocate($1, from: &$0) })
                #expect(batch.intents == 7 && batch.confirmed == 4 && batch.quarantined == 3)
                #expect(try await store.totalQueued() == 0)
                var reasons: [String] = []
                for try await (reason, error) in try await store.client.query(
                    """
                    SELECT o.reason, q.error FROM outcomes o JOIN quarantine q USING (intent_id) WHERE o.customer = 'poison' ORDER BY o.intent_id
                    """
                ).decode((String, String).self) {
                    reasons.append(reason)
                    #expect(!error.isEmpty)
                }
                #expect(reasons == ["invalid_request", "invalid_request", "invalid_request"])
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.quarantined == 3 && report.quarantinedIntents.count == 3 && report.accepted == 7)
                #expect(report.quarantinedIntents.contains { $0.contains("invalid_request") && $0.contains("Z-1-1") })

                // A row written with no acceptance record is named too.
                try await store.client.query(
                    "INSERT INTO intents (public_id, event_id, customer, quantity) VALUES (gen_random_uuid(), \(event.id), 'sneaky', 1)")
                #expect(try await store.audit().violations.contains { $0.hasPrefix("a queued or settled intent has no acceptance record") })
                // And a quarantined outcome whose record is gone.
                try await store.client.query("DELETE FROM quarantine WHERE intent_id = (SELECT min(intent_id) FROM quarantine)")
                #expect(try await store.audit().violations.contains { $0.hasPrefix("a quarantined outcome and the quarantine table disagree") })
            }
        }

        @Test("Database errors the batch may cause count toward quarantine; a database that is away does not")
        func failureClassification() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                func serverError(_ sql: String) async -> (any Error)? {
                    do {
                        try await store.client.withConnection { connection in
                            try await connection.query("SET statement_timeout = 100", logger: testLogger)
                            // Read the rows: an error raised while the statement runs arrives with them.
                            for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: testLogger) {}
                        }
                        return nil
                    } catch { return error }
                }
                let claimed: [Int64] = [1]
                let division = try #require(await serverError("SELECT 1 / 0"))
                #expect(BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: division).mayBeTheBatch)
                let timeout = try #require(await serverError("SELECT pg_sleep(5)"))
                #expect(BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: timeout).mayBeTheBatch)
                // A timeout may be a stalled database: the worker waits before it quarantines a lone intent for one.
                #expect(BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: timeout).isStatementTimeout)
                #expect(!BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: division).isStatementTimeout)
                let terminated = try #require(await serverError("SELECT pg_terminate_backend(pg_backend_pid())"))
                #expect(!BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: terminated).mayBeTheBatch)
                #expect(!BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: StoreError.connectionLost).mayBeTheBatch)
                #expect(BatchFailure(eventID: 1, suspectIntentIDs: claimed, underlying: StoreError.invariantBroken("x")).mayBeTheBatch)
                #expect(!BatchFailure(eventID: 1, suspectIntentIDs: [], underlying: division).mayBeTheBatch, "nothing claimed, nothing to suspect")
            }
        }

        @Test("A batch that always fails is retried with halved claims down to one intent, which is quarantined; the event moves on")
        func failingBatchIsSplit() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Poisoned", layout: .generalAdmission(capacity: 30))
                _ = try await store.enqueue(
                    (0..<40).map {
                        IntentDraft(
                            eventID: event.id, customer: $0 == 11 ? "poison" : "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil)
                    })
                // Any batch holding the poisoned intent fails to settle, as a row that always trips the statement timeout would.
                try await Self.refusePoisonedOutcomes(store)
                let configuration = Self.inProcessWorker(batchSize: 16)
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Task { try await worker.run() }
                _ = try await poll(every: .milliseconds(50), timeout: .seconds(60)) { try await store.totalQueued() > 0 ? "intents queued" : nil }
                running.cancel()
                _ = await running.result
                #expect(try await store.totalQueued() == 0, "the event never moved past the poisoned intent")
                let totals = worker.totals
                // 16 → 8 → 4 → 2 → 1, two failures each, the poisoned intent (12th) in every failing claim.
                #expect(totals.quarantined == 1 && totals.intents == 39, "\(totals.quarantined) quarantined, \(totals.intents) settled")
                #expect(totals.failedClaims >= 2 && totals.failedClaims <= 10, "\(totals.failedClaims) failed claims")
                let quarantined = try await store.client.query(
                    """
                    SELECT o.reason, q.error FROM outcomes o JOIN quarantine q USING (intent_id) WHERE o.customer = 'poison'
                    """
                ).decode((String, String).self).all()
                #expect(quarantined.count == 1, "\(quarantined)")
                for (reason, error) in quarantined {
                    #expect(reason == "quarantined")
                    #expect(error.contains("injected: poisoned row"), "\(error)")
                }
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.quarantined == 1 && report.accepted == 40 && report.ticketsSold == 30)
            }
        }

        @Test("An event whose seat rows disagree with its inventory fails before the settle: no intent is suspected, none quarantined")
        func eventTroubleIsNotAnIntents() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Hall", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 4)]))
                _ = try await store.enqueue([IntentDraft(eventID: event.id, customer: "c", request: .anywhere(quantity: 1), idempotencyKey: nil)])
                try await store.client.query("UPDATE inventory SET sold = 1, available = 3 WHERE event_id = \(event.id)")
                do {
                    _ = try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                    Issue.record("the batch settled against an inconsistent inventory")
                } catch let failure as BatchFailure {
                    #expect(failure.eventID == event.id && failure.suspectIntentIDs.isEmpty && !failure.mayBeTheBatch, "\(failure)")
                }
            }
        }

        /// Creates an event `name` with one intent of `customer` (created first, so the pick's first choice
        /// whenever it is not deferred), then a general-admission event of 100 with 50 intents queued.
        static func troubledAndHealthy(
            _ store: Store, _ name: String, layout: EventLayout, customer: String
        ) async throws -> (troubled: EventID, healthy: EventID) {
            let troubled = try await store.createEvent(name: name, layout: layout)
            let healthy = try await store.createEvent(name: "Open air", layout: .generalAdmission(capacity: 100))
            _ = try await store.enqueue([IntentDraft(eventID: troubled.id, customer: customer, request: .anywhere(quantity: 1), idempotencyKey: nil)])
            _ = try await store.enqueue(
                (0..<50).map { IntentDraft(eventID: healthy.id, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
            return (troubled.id, healthy.id)
        }

        /// Waits (bounded) until `event` has nothing queued.
        static func waitUntilServed(_ store: Store, _ event: EventID, _ what: String, timeout: Duration) async throws {
            try await waitUntil(what, every: .milliseconds(20), timeout: timeout) {
                let pending = try await store.eventSummary(event)?.pending
                return pending == 0 ? nil : "\(pending.map { "\($0)" } ?? "no event") pending"
            }
        }

        @Test(
            "An event whose batches the database refuses is deferred, not picked first forever: another event's sale goes on, and the broken one is served once repaired"
        )
        func brokenEventDoesNotStallOthers() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let (broken, healthy) = try await Self.troubledAndHealthy(
                    store, "Broken hall", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 4)]), customer: "waits")
                // Its seat rows now disagree with its inventory: every batch of it fails before settling anything.
                try await store.client.query("UPDATE inventory SET sold = 1, available = 3 WHERE event_id = \(broken)")
                var configuration = Self.inProcessWorker(batchSize: 8)
                configuration.eventDeferMin = .milliseconds(100)
                configuration.eventDeferMax = .milliseconds(400)
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Task { try await worker.run() }
                try await Self.waitUntilServed(store, healthy, "the other event's sale to complete", timeout: .seconds(20))
                #expect(worker.totals.failedClaims >= 1)
                #expect(try await store.eventSummary(broken)?.pending == 1, "the broken event's intent waits, queued")
                // Repaired, it is picked again (the only event with work), and served.
                try await store.client.query("UPDATE inventory SET sold = 0, available = 4 WHERE event_id = \(broken)")
                try await Self.waitUntilServed(store, broken, "the repaired event to be served", timeout: .seconds(10))
                running.cancel()
                _ = await running.result
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.accepted == 51 && report.ticketsSold == 51)
            }
        }

        @Test("An event climbing its quarantine ladder is deferred between the steps: another event's sale is served meanwhile")
        func quarantineLadderDoesNotStallOthers() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let (poisoned, healthy) = try await Self.troubledAndHealthy(
                    store, "Poisoned", layout: .generalAdmission(capacity: 30), customer: "poison")
                try await Self.refusePoisonedOutcomes(store)
                var configuration = Self.inProcessWorker(batchSize: 8)
                // A ladder this long keeps the poisoned event failing for the whole test: picked first every time,
                // it would leave the other event waiting to the end.
                configuration.failuresPerClaimSize = 100_000
                configuration.eventDeferMin = .seconds(5)
                configuration.eventDeferMax = .seconds(5)
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Task { try await worker.run() }
                try await Self.waitUntilServed(store, healthy, "the other event's sale to complete", timeout: .seconds(10))
                running.cancel()
                _ = await running.result
                #expect(worker.totals.failedClaims >= 1)
                #expect(try await store.eventSummary(poisoned)?.pending == 1, "the poisoned intent waits, queued, not yet quarantined")
                #expect(worker.totals.quarantined == 0)
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        @Test("A worker quarantines at most quarantinesPerEventMax intents of one event; past it the event's failures are deferred and backed off")
        func quarantineBound() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(name: "Poisoned", layout: .generalAdmission(capacity: 30))
                _ = try await store.enqueue(
                    (0..<10).map {
                        IntentDraft(
                            eventID: event.id, customer: [2, 6].contains($0) ? "poison" : "c-\($0)", request: .anywhere(quantity: 1),
                            idempotencyKey: nil)
                    })
                try await Self.refusePoisonedOutcomes(store)
                var configuration = Self.inProcessWorker(batchSize: 4)
                configuration.errorBackoffMax = .milliseconds(50)
                configuration.quarantinesPerEventMax = 1
                let worker = AllocationWorker(store: store, configuration: configuration, logger: testLogger)
                let running = Task { try await worker.run() }
                _ = try await poll(every: .milliseconds(20), timeout: .seconds(30)) {
                    worker.totals.quarantined == 0 ? "nothing quarantined yet" : nil
                }
                // Time for several more ladders, had the bound not held.
                try await Task.sleep(for: .seconds(2))
                running.cancel()
                _ = await running.result
                let totals = worker.totals
                #expect(totals.quarantined == 1, "\(totals.quarantined) quarantined")
                // The two intents before the first poisoned one were settled; the next full claim holds the second
                // poisoned one, is no longer split, and it and everything after it wait for an operator.
                #expect(try await store.totalQueued() == 7)
                #expect(totals.intents == 2)
                #expect(try await store.audit().isClean)
            }
        }

        @Test(
            "Poisoned rows written straight into the queue during a sale: the sale completes, each is quarantined with a reason, verify lists them and passes"
        )
        func poisonedRowsDuringSale() async throws {
            try await withLiveAPI { api in
                let capacity = 600
                let event = try await api.createGeneralAdmission(capacity)
                // Settling this customer's intent always fails, as a row whose batch always hits the statement timeout would.
                try await api.store.client.query(
                    """
                    CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.customer = 'poison-settle' AND NEW.reason IS DISTINCT FROM 'quarantined' THEN RAISE EXCEPTION 'injected: poisoned row'; END IF;
                        RETURN NEW;
                    END $$
                    """)
                try await api.store.client.query(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON outcomes FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
                let workers = workerProcesses(api.database, batchSize: 32)
                try workers.spawn(2)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 1_200)
                load.clients = 32
                load.quantities = 1...2
                let sale = load
                async let sold = SaleLoad(sale).run(client: api.http)
                try await Task.sleep(for: .milliseconds(300))
                // Written past intake mid-sale, with the acceptance records intake writes: seat labels that do not
                // parse (at a general-admission event), and the row no settle accepts.
                for (customer, seats) in [("poison-parse", "'{not-a-seat}'"), ("poison-settle", "NULL")] {
                    try await api.store.client.query(
                        """
                        WITH queued AS (
                            INSERT INTO intents (public_id, event_id, customer, quantity, seats)
                            VALUES (gen_random_uuid(), \(event), \(customer), 1, \(unescaped: seats))
                            RETURNING id, public_id, event_id, created_at)
                        INSERT INTO acceptances SELECT * FROM queued
                        """)
                }
                let result = await sold
                _ = try await poll(every: .milliseconds(50), timeout: .seconds(60)) { try await api.count("intents") > 0 ? "intents queued" : nil }
                let codes = await workers.terminateAll()
                #expect(codes == [0, 0], "\(workerLogTail())")
                #expect(
                    result.intakeFailures.isEmpty && result.transportErrors == 0 && result.undecided == 0,
                    "failures \(result.intakeFailures), transport \(result.transportErrors), undecided \(result.undecided)")
                #expect(try await api.count("intents") == 0, "the event never moved past a poisoned row")
                var reasons: [String: String] = [:]
                for try await (customer, reason) in try await api.store.client.query(
                    """
                    SELECT o.customer, q.reason FROM outcomes o JOIN quarantine q USING (intent_id) WHERE o.reason = q.reason
                    """
                ).decode((String, String).self) {
                    reasons[customer] = reason
                }
                #expect(reasons == ["poison-parse": "invalid_request", "poison-settle": "quarantined"])
                let audit = try await api.store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.quarantined == 2 && audit.quarantinedIntents.count == 2, "\(audit.quarantinedIntents)")
                #expect(audit.accepted == result.accepted.count + 2 && audit.outcomes == audit.accepted)
                #expect(audit.ticketsSold == capacity && result.ticketsConfirmed == capacity)
            }
        }

        @Test("verify checks exact seats, sections, reasons, inventory rows and bitmap lengths: each corruption is found, untouched it passes")
        func whatWasAskedFor() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                let event = try await store.createEvent(
                    name: "Hall",
                    layout: .seatMap([
                        SectionLayout(name: "A", rows: 2, seatsPerRow: 10), SectionLayout(name: "B", rows: 1, seatsPerRow: 10),
                    ]))
                let exact = IntentDraft(
                    eventID: event.id, customer: "exact",
                    request: .seats([SeatLabel(section: "A", row: 1, seat: 1), SeatLabel(section: "A", row: 1, seat: 2)]), idempotencyKey: nil)
                let inB = IntentDraft(eventID: event.id, customer: "in-b", request: .inSection("B", quantity: 2), idempotencyKey: nil)
                let again = IntentDraft(
                    eventID: event.id, customer: "again", request: .seats([SeatLabel(section: "A", row: 1, seat: 1)]), idempotencyKey: nil)
                _ = try await store.enqueue([exact, inB, again])
                #expect(try await store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }?.confirmed == 2)
                let requested = try await store.client.query("SELECT requested_seats FROM outcomes WHERE public_id = \(exact.publicID)")
                    .decode([String].self).all()
                #expect(requested == [["A-1-1", "A-1-2"]])
                #expect(try await store.audit().isClean)

                // Swapped for two other seats (the bitmap too, so only the request check can tell).
                try await expectAuditCatches(
                    store,
                    """
                    WITH o AS (UPDATE outcomes SET seats = '{A-2-1,A-2-2}' WHERE customer = 'exact' RETURNING 1)
                    UPDATE seat_rows SET taken = CASE row_number WHEN 1 THEN '\\x00'::bytea ELSE '\\x03'::bytea END || '\\x00'::bytea
                    WHERE event_id = \(event.id) AND section = 0
                    """,
                    """
                    WITH o AS (UPDATE outcomes SET seats = '{A-1-1,A-1-2}' WHERE customer = 'exact' RETURNING 1)
                    UPDATE seat_rows SET taken = CASE row_number WHEN 1 THEN '\\x03'::bytea ELSE '\\x00'::bytea END || '\\x00'::bytea
                    WHERE event_id = \(event.id) AND section = 0
                    """, "an exact-seat intent got seats other than those it asked for")
                var sectionSeats: [String] = []
                for try await seats in try await store.client.query("SELECT seats FROM outcomes WHERE customer = 'in-b'").decode([String].self) {
                    sectionSeats = seats
                }
                #expect(sectionSeats.count == 2 && sectionSeats.allSatisfy { $0.hasPrefix("B-") })
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET section = 'A' WHERE customer = 'in-b'",
                    "UPDATE outcomes SET section = 'B' WHERE customer = 'in-b'",
                    "a section request got seats outside its section")
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET reason = 'bogus' WHERE customer = 'again'",
                    "UPDATE outcomes SET reason = 'seats_unavailable' WHERE customer = 'again'",
                    "an outcome's reason is not one Boxoffice gives")
                // The table's CHECK is the first place "NULL exactly when confirmed" holds; without it, verify is the second.
                try await store.client.query("ALTER TABLE outcomes DROP CONSTRAINT outcomes_status_words")
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET reason = NULL WHERE customer = 'again'",
                    "UPDATE outcomes SET reason = 'seats_unavailable' WHERE customer = 'again'",
                    "an outcome's reason is not one Boxoffice gives")
                try await expectAuditCatches(
                    store,
                    "UPDATE seat_rows SET taken = taken || '\\x00'::bytea WHERE event_id = \(event.id) AND section = 1",
                    "UPDATE seat_rows SET taken = substring(taken FROM 1 FOR 2) WHERE event_id = \(event.id) AND section = 1",
                    "a seat row's bitmap is not ceil(seats_per_row / 8) bytes long")
                try await expectAuditCatches(
                    store,
                    "DELETE FROM inventory WHERE event_id = \(event.id)",
                    "INSERT INTO inventory (event_id, capacity, sold, available) VALUES (\(event.id), 30, 4, 26)",
                    "an event has no inventory row")
            }
        }
    }
}
