import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation
import PostgresNIO
import Testing

extension IntegrationTests {
    @Suite("Sale lifecycle: holds")
    struct LifecycleTests {
        /// Settles everything queued with the in-process Store (one batch per event pick).
        static func drain(_ store: Store) async throws {
            while try await store.allocateNextBatch(batchSizeMax: 64, allocate: { Allocator.allocate($1, from: &$0) }) != nil {}
        }

        @Test("An event with holds settles each grant as held (seats, expires_at), counted in held; without holds, sold as before")
        func grantsAreHeld() async throws {
            try await withLiveAPI { api in
                let created = try await api.post(
                    "/events", #"{"name": "Held hall", "sections": [{"name": "A", "rows": 2, "seats_per_row": 3}], "hold_seconds": 600}"#)
                #expect(created.status == 201)
                #expect(created["hold_seconds"] == "600" && created["held"] == "0")
                let event = try #require(Int64(created["id"] ?? ""))
                let plain = try await api.createGeneralAdmission(4)
                #expect(try await api.get("/events/\(plain)")["hold_seconds"] == "0")

                var ids: [String] = []
                for (customer, body) in [("a", #""quantity": 2"#), ("b", #""seats": ["A-2-1"]"#), ("c", #""quantity": 5"#)] {
                    let reply = try await api.post("/events/\(event)/intents", #"{"customer": "\#(customer)", \#(body)}"#)
                    #expect(reply.status == 202)
                    ids.append(reply["id"] ?? "")
                }
                let sold = try await api.post("/events/\(plain)/intents", #"{"customer": "d", "quantity": 3}"#)
                let before = Date()
                try await Self.drain(api.store)

                let first = try await api.get("/intents/\(ids[0])")
                #expect(first["status"] == "held")
                #expect(first.arrays["seats"]?.count == 2)
                let expiresAt = try #require(first["expires_at"].flatMap { try? Date($0, strategy: .iso8601) })
                #expect(abs(expiresAt.timeIntervalSince(before) - 600) < 30, "expires_at \(expiresAt) is not 600 s after the settle")
                let exact = try await api.get("/intents/\(ids[1])")
                #expect(exact["status"] == "held" && exact.arrays["seats"] == ["A-2-1"])
                let refused = try await api.get("/intents/\(ids[2])")
                #expect(refused["status"] == "rejected" && refused["expires_at"] == nil)
                let plainStatus = try await api.get("/intents/\(sold["id"] ?? "")")
                #expect(plainStatus["status"] == "confirmed" && plainStatus["expires_at"] == nil)

                let counts = try await api.get("/events/\(event)")
                #expect(counts["sold"] == "0" && counts["held"] == "3" && counts["available"] == "3" && counts["capacity"] == "6")
                let plainCounts = try await api.get("/events/\(plain)")
                #expect(plainCounts["sold"] == "3" && plainCounts["held"] == "0" && plainCounts["available"] == "1")
                let report = try await api.store.audit()
                #expect(report.isClean, "\(report.violations)")
                #expect(report.held == 2 && report.confirmed == 1 && report.rejected == 1)
            }
        }

        @Test("hold_seconds out of bounds or mistyped is a 422 that writes nothing")
        func holdSecondsBounds() async throws {
            try await withLiveAPI { api in
                for value in ["-1", "3601", #""60""#, "1.5", "true"] {
                    let reply = try await api.post("/events", #"{"name": "X", "capacity": 5, "hold_seconds": \#(value)}"#)
                    #expect(reply.status == 422 && reply.error == "invalid_request", "hold_seconds \(value): \(reply.status)")
                }
                #expect(try await api.count("events") == 0)
                #expect(try await api.post("/events", #"{"name": "X", "capacity": 5, "hold_seconds": 3600}"#).status == 201)
            }
        }

        @Test("verify catches held counters and held outcomes that disagree, and the schema refuses sold + held + available != capacity")
        func auditCatchesBrokenHolds() async throws {
            try await withLiveAPI { api in
                let store = api.store
                let event = try await store.createEvent(
                    name: "Holds", layout: .seatMap([SectionLayout(name: "A", rows: 1, seatsPerRow: 4)]), holdSeconds: 60)
                _ = try await store.enqueue([
                    IntentDraft(eventID: event.id, customer: "h-1", request: .anywhere(quantity: 2), idempotencyKey: nil),
                    IntentDraft(eventID: event.id, customer: "h-2", request: .anywhere(quantity: 1), idempotencyKey: nil),
                ])
                try await Self.drain(store)
                #expect(try await store.audit().isClean)

                try await expectAuditCatches(
                    store,
                    "UPDATE inventory SET held = held - 1, available = available + 1 WHERE event_id = \(event.id)",
                    "UPDATE inventory SET held = held + 1, available = available - 1 WHERE event_id = \(event.id)",
                    "inventory.sold or inventory.held differs")
                try await expectAuditCatches(
                    store,
                    "UPDATE inventory SET held = held - 2, sold = sold + 2 WHERE event_id = \(event.id)",
                    "UPDATE inventory SET held = held + 2, sold = sold - 2 WHERE event_id = \(event.id)",
                    "inventory.sold or inventory.held differs")
                // A held seat given to a second live outcome.
                var second: [String] = []
                for try await seats in try await store.client.query("SELECT seats FROM outcomes WHERE customer = 'h-2'").decode([String].self) {
                    second = seats
                }
                #expect(second.count == 1)
                try await expectAuditCatches(
                    store,
                    "UPDATE outcomes SET seats = (SELECT seats[1:1] FROM outcomes WHERE customer = 'h-1') WHERE customer = 'h-2'",
                    "UPDATE outcomes SET seats = '{\(second.first ?? "")}' WHERE customer = 'h-2'",
                    "a seat is in two live (held or confirmed) outcomes")
                try await expectAuditCatches(
                    store,
                    "UPDATE events SET hold_seconds = 0 WHERE id = \(event.id)",
                    "UPDATE events SET hold_seconds = 60 WHERE id = \(event.id)",
                    "an event without holds has a held outcome")
                // The table's CHECK refuses counters that do not add up; without it, verify is the second line.
                await #expect(throws: (any Error).self) {
                    try await store.client.query("UPDATE inventory SET held = held + 1 WHERE event_id = \(event.id)")
                }
                await #expect(throws: (any Error).self) {
                    try await store.client.query("UPDATE outcomes SET expires_at = NULL WHERE customer = 'h-1'")
                }
                try await store.client.query("ALTER TABLE inventory DROP CONSTRAINT inventory_counts")
                try await expectAuditCatches(
                    store,
                    "UPDATE inventory SET held = held + 1 WHERE event_id = \(event.id)",
                    "UPDATE inventory SET held = held - 1 WHERE event_id = \(event.id)",
                    "event sells more than its capacity, or sold + held + available != capacity")
            }
        }

        @Test("A seat-map sale with holds through 4 worker processes and long-polling buyers: every grant held once, held = capacity, verify clean")
        func heldSaleAcrossWorkers() async throws {
            try await withLiveAPI { api in
                let created = try await api.post(
                    "/events",
                    #"{"name": "Held", "sections": [{"name": "A", "rows": 10, "seats_per_row": 10}, {"name": "B", "rows": 10, "seats_per_row": 10}], "hold_seconds": 900}"#
                )
                let event = try #require(Int64(created["id"] ?? ""))
                let workers = workerProcesses(api.database, batchSize: 16)
                try workers.spawn(4)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 400)
                load.clients = 32
                load.quantities = 1...3
                load.sections = [nil, "A", "B"]
                let result = await SaleLoad(load).run(client: api.http)
                #expect(await workers.terminateAll() == [0, 0, 0, 0])
                #expect(result.undecided == 0 && result.transportErrors == 0 && result.intakeFailures.isEmpty)
                #expect(result.accepted.count == 400)
                #expect(result.held == result.confirmed && result.confirmed > 0, "every grant of an event with holds is held")
                #expect(result.ticketsConfirmed == 200, "400 intents of 1–3 seats must take all 200 seats")
                #expect(result.seats.count == Set(result.seats).count, "a seat was held twice")
                let counts = try await api.get("/events/\(event)")
                #expect(counts["held"] == "200" && counts["sold"] == "0" && counts["available"] == "0")
                let audit = try await api.store.audit(eventID: event)
                #expect(audit.isClean, "\(audit.violations)")
                #expect(audit.held == result.held && audit.outcomes == 400 && audit.pending == 0)
            }
        }
    }
}
