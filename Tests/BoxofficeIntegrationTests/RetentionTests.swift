import BoxofficeCore
import BoxofficeHarness
import BoxofficeMetrics
import BoxofficeStore
import BoxofficeWorker
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// What the load test's producers and monitor share.
final class LoadTally: Sendable {
    let accepted = Atomic<Int>(0)
    let replayed = Atomic<Int>(0)
    let oldestSeen = Mutex<Double>(0)
    let stop = Atomic<Bool>(false)
}

extension IntegrationTests {
    @Suite("Retention: Idempotency-Keys expire and are swept, prune deletes old outcomes")
    struct RetentionTests {
        static func scalar(_ store: Store, _ sql: PostgresQuery) async throws -> Int {
            try await store.client.query(sql).decode(Int.self).all().first ?? -1
        }

        /// Settles every queued intent in process, one batch at a time.
        static func drain(_ store: Store, batchSize: Int = 64) async throws {
            while try await store.allocateNextBatch(batchSizeMax: batchSize, allocate: { Allocator.allocate($1, from: &$0) }) != nil {}
        }

        /// Makes every key of the database `seconds` older, as if that time had passed.
        static func age(_ store: Store, keysBy seconds: Int) async throws {
            try await store.client.query("UPDATE idempotency_keys SET created_at = created_at - make_interval(secs => \(Double(seconds)))")
        }

        @Test("An expired key is accepted as a new intent (new id) while an unexpired one replays; two intakes racing for it: one wins")
        func expiredKeyIsNew() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger, idempotencyKeyLifetime: .seconds(60)) { store in
                let event = try await store.createEvent(name: "Keys", layout: .generalAdmission(capacity: 1_000)).id
                func draft(_ customer: String, _ key: String, quantity: Int = 1) -> IntentDraft {
                    IntentDraft(eventID: event, customer: customer, request: .anywhere(quantity: quantity), idempotencyKey: key)
                }
                guard case .accepted(let first) = try await store.enqueue([draft("c", "k")])[0] else {
                    Issue.record("not accepted")
                    return
                }
                #expect(try await store.enqueue([draft("c", "k")]) == [.replayed(first)])
                #expect(try await store.enqueue([draft("c", "k", quantity: 2)]) == [.keyReused(first)])

                // 59 s old: still replays. 61 s old: a new intent, and the key now replays that one.
                try await Self.age(store, keysBy: 59)
                #expect(try await store.enqueue([draft("c", "k")]) == [.replayed(first)])
                try await Self.age(store, keysBy: 2)
                let again = draft("c", "k", quantity: 2)
                #expect(try await store.enqueue([again]) == [.accepted(again.publicID)])
                #expect(again.publicID != first)
                #expect(try await store.enqueue([draft("c", "k", quantity: 2)]) == [.replayed(again.publicID)])
                #expect(try await store.enqueue([draft("c", "k")]) == [.keyReused(again.publicID)])

                // 40 keys expire at once; two intakes per key race for each (separate groups, in parallel),
                // and a third draft rides in the same group as one of them: exactly one is accepted per key.
                let keys = (0..<40).map { "race-\($0)" }
                _ = try await store.enqueue(keys.map { draft("r", $0) })
                try await Self.age(store, keysBy: 61)
                let left = keys.map { draft("r", $0) }
                let right = keys.flatMap { [draft("r", $0), draft("r", $0)] }
                async let a = store.enqueue(left)
                async let b = store.enqueue(right)
                let results = try await a + b
                for key in keys {
                    let mine = zip(left + right, results).filter { $0.0.idempotencyKey == key }.map(\.1)
                    let accepted = mine.compactMap { if case .accepted(let id) = $0 { id } else { nil } }
                    #expect(accepted.count == 1, "\(key): \(mine)")
                    #expect(mine.allSatisfy { $0.publicID == accepted.first }, "\(key): \(mine)")
                }
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM idempotency_keys WHERE key LIKE 'race-%'") == 40)
                // 1 + 1 + 40 + 40 intents accepted; the expired keys' first intents are still there.
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM acceptances") == 82)
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        @Test("Over HTTP, single and bulk: a key past the API's lifetime (24 h by default) is a new intent, then replays that one")
        func expiredKeyOverHTTP() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(100)
                let body = #"{"customer": "c", "quantity": 1}"#
                let key = [("Idempotency-Key", "order-1")]
                let first = try await api.post("/events/\(event)/intents", body, headers: key)
                let bulk = "/events/\(event)/intents/batch"
                let item = #"[{"customer": "c", "quantity": 1, "idempotency_key": "bulk-1"}]"#
                let firstBulk = (try await api.sendJSON(.POST, bulk, body: item).object["results"] as? [[String: Any]])?.first
                #expect(try await api.post("/events/\(event)/intents", body, headers: key)["id"] == first["id"])

                try await Self.age(api.store, keysBy: 24 * 3_600 + 1)
                let second = try await api.post("/events/\(event)/intents", body, headers: key)
                #expect(second.status == 202 && second["id"] != nil && second["id"] != first["id"], "\(second.fields)")
                #expect(!second.headers.contains { $0.0.lowercased() == "idempotent-replayed" })
                #expect(try await api.post("/events/\(event)/intents", body, headers: key)["id"] == second["id"])
                let secondBulk = (try await api.sendJSON(.POST, bulk, body: item).object["results"] as? [[String: Any]])?.first
                #expect(secondBulk?["replayed"] as? Bool == false)
                #expect(secondBulk?["id"] as? String != nil && secondBulk?["id"] as? String != firstBulk?["id"] as? String)
                #expect(try await api.count("intents") == 4)
            }
        }

        @Test("The sweep deletes expired keys in batches and counts them; unexpired keys and everything else stay")
        func sweepDeletesOnlyExpiredKeys() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger, idempotencyKeyLifetime: .seconds(60)) { store in
                let event = try await store.createEvent(name: "Sweep", layout: .generalAdmission(capacity: 100)).id
                let drafts = (0..<250).map {
                    IntentDraft(eventID: event, customer: "c\($0 % 7)", request: .anywhere(quantity: 1), idempotencyKey: "old-\($0)")
                }
                _ = try await store.enqueue(drafts)
                try await Self.age(store, keysBy: 120)
                _ = try await store.enqueue(
                    (0..<30).map { IntentDraft(eventID: event, customer: "c", request: .anywhere(quantity: 1), idempotencyKey: "new-\($0)") })
                try await Self.drain(store)

                let metrics = BoxofficeMetrics()
                var configuration = KeySweeper.Configuration()
                configuration.batchSize = 100
                let sweeper = KeySweeper(store: store, configuration: configuration, logger: testLogger, metrics: RetentionMetrics(metrics))
                #expect(await sweeper.sweep() == 250)
                #expect(await sweeper.sweep() == 0)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM idempotency_keys WHERE key LIKE 'new-%'") == 30)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM idempotency_keys") == 30)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM outcomes") == 280)
                let text = String(decoding: await metrics.exposition(), as: UTF8.self)
                #expect(text.contains("\(BoxofficeMetrics.Names.keysSwept) 250"), "\(text)")
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        @Test(
            "Under load, with keys expiring after 2 s and two workers sweeping every 1 s: intake goes on, no key outlives 2 s + one interval (+20% jitter, + 2 s for one sweep on a loaded machine), nothing else is deleted"
        )
        func sweepUnderLoad() async throws {
            let lifetime = 2.0
            let interval = 1.0
            // The sweep's own time on a loaded two-core machine (four builds may share it), on top of
            // the lifetime and the jittered interval (+20%).
            let sweepSlack = 2.0
            let bound = lifetime + interval * 1.2 + sweepSlack
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger, idempotencyKeyLifetime: .seconds(2)) { store in
                let event = try await store.createEvent(name: "Load", layout: .generalAdmission(capacity: 1_000_000)).id
                let workers = workerProcesses(
                    database, batchSize: 256,
                    extra: ["--idempotency-key-lifetime-seconds", "2", "--key-sweep-interval-seconds", "1", "--key-sweep-batch-size", "200"])
                try workers.spawn(2)

                let tally = LoadTally()
                let started = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for producer in 0..<8 {
                        group.addTask {
                            var round = 0
                            while !tally.stop.load(ordering: .relaxed) {
                                // 25 new keys and, from the second round, 5 retries of the previous round's keys.
                                var drafts = (0..<25).map {
                                    IntentDraft(
                                        eventID: event, customer: "p\(producer)", request: .anywhere(quantity: 1),
                                        idempotencyKey: "p\(producer)-\(round)-\($0)")
                                }
                                if round > 0 {
                                    drafts += (0..<5).map {
                                        IntentDraft(
                                            eventID: event, customer: "p\(producer)", request: .anywhere(quantity: 1),
                                            idempotencyKey: "p\(producer)-\(round - 1)-\($0)")
                                    }
                                }
                                for result in try await store.enqueue(drafts) {
                                    switch result {
                                    case .accepted: tally.accepted.add(1, ordering: .relaxed)
                                    case .replayed: tally.replayed.add(1, ordering: .relaxed)
                                    case .keyReused: Issue.record("a retry with the same body was refused")
                                    }
                                }
                                round += 1
                                try await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                    group.addTask {
                        while !tally.stop.load(ordering: .relaxed) {
                            let oldest =
                                try await store.client.query(
                                    "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM idempotency_keys"
                                ).decode(Double.self).all().first ?? 0
                            tally.oldestSeen.withLock { $0 = max($0, oldest) }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    try await Task.sleep(for: .seconds(10))
                    tally.stop.store(true, ordering: .relaxed)
                    try await group.waitForAll()
                }
                let elapsed = ContinuousClock.now - started

                // Intake went on: every round of every producer was answered.
                #expect(tally.accepted.load(ordering: .relaxed) > 1_000)
                #expect(tally.replayed.load(ordering: .relaxed) > 100)
                let oldest = tally.oldestSeen.withLock { $0 }
                #expect(oldest <= bound, "a key \(oldest) s old survived (bound \(bound) s)\n\(workerLogTail())")
                // Keys did expire and were swept while intake ran.
                #expect(oldest >= lifetime, "no key reached its lifetime in \(elapsed)")
                let keysLeft = try await Self.scalar(store, "SELECT count(*)::int FROM idempotency_keys")
                #expect(keysLeft < tally.accepted.load(ordering: .relaxed))

                // Nothing else was deleted: every accepted intent is queued or settled, and verify is clean.
                try await waitUntil("the workers to drain the queue", every: .milliseconds(100), timeout: .seconds(60)) {
                    let pending = try await Self.scalar(store, "SELECT count(*)::int FROM intents")
                    return pending == 0 ? nil : "\(pending) queued"
                }
                let exits = await workers.terminateAll()
                #expect(exits.allSatisfy { $0 == 0 }, "\(exits)\n\(workerLogTail())")
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM acceptances") == tally.accepted.load(ordering: .relaxed))
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM outcomes") == tally.accepted.load(ordering: .relaxed))
                let report = try await store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        /// Runs `boxoffice prune` against `database`; returns its exit status and output.
        static func runPrune(_ database: DatabaseConfiguration, _ arguments: [String]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = ChildProcesses.siblingExecutable()
            process.arguments = ["prune", "--log-level", "warning"] + arguments
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = database.url
            process.environment = environment
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        @Test(
            "prune refuses an event with queued intents, prunes finished events in batches (keys, acceptances, quarantine too), and verify stays clean"
        )
        func pruneFinishedEvents() async throws {
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger, idempotencyKeyLifetime: .seconds(1)) { store in
                let finished = try await store.createEvent(name: "Done", layout: .generalAdmission(capacity: 50)).id
                let hall = try await store.createEvent(name: "Hall", layout: .seatMap([SectionLayout(name: "A", rows: 3, seatsPerRow: 4)])).id
                let live = try await store.createEvent(name: "Live", layout: .generalAdmission(capacity: 10)).id
                let finishedIntents = try await store.enqueue(
                    (0..<120).map {
                        IntentDraft(
                            eventID: finished, customer: "c\($0)", request: .anywhere(quantity: 1), idempotencyKey: $0 % 2 == 0 ? "k\($0)" : nil)
                    })
                _ = try await store.enqueue(
                    (0..<8).map { IntentDraft(eventID: hall, customer: "h\($0)", request: .anywhere(quantity: 2), idempotencyKey: nil) })
                // A seat label with row 0 does not parse at claim time: that intent is quarantined.
                _ = try await store.enqueue([
                    IntentDraft(eventID: hall, customer: "bad", request: .seats([SeatLabel(section: "A", row: 0, seat: 3)]), idempotencyKey: nil)
                ])
                // The live event has settled outcomes too, and then more intents queued: it is on sale.
                _ = try await store.enqueue(
                    (0..<5).map { IntentDraft(eventID: live, customer: "s\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil) })
                try await Self.drain(store)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM quarantine") == 1)
                _ = try await store.enqueue(
                    (0..<5).map { IntentDraft(eventID: live, customer: "l\($0)", request: .anywhere(quantity: 1), idempotencyKey: "l\($0)") })
                let before = try await store.audit()
                #expect(before.isClean, "\(before.violations)")
                try await Task.sleep(for: .milliseconds(1_500))

                // Refused: the live event is on sale; an --older-than below the key lifetime; an unknown event.
                let (refusedStatus, refusedOutput) = try Self.runPrune(
                    database, ["--older-than", "1s", "--event", "\(live)", "--idempotency-key-lifetime-seconds", "1"])
                #expect(refusedStatus == 1 && refusedOutput.contains("event \(live) is on sale"), "\(refusedOutput)")
                let (shortStatus, shortOutput) = try Self.runPrune(database, ["--older-than", "1s", "--idempotency-key-lifetime-seconds", "5"])
                #expect(shortStatus == 1 && shortOutput.contains("at least the Idempotency-Key lifetime"), "\(shortOutput)")
                await #expect(throws: PruneRefusal.noSuchEvent(999)) { try await store.prune(olderThan: .seconds(1), eventID: 999) }
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM outcomes") == 134)

                // Everything decided over a second ago, 7 outcomes per statement; the live event skipped.
                let (status, output) = try Self.runPrune(
                    database, ["--older-than", "1s", "--batch-size", "7", "--idempotency-key-lifetime-seconds", "1"])
                #expect(status == 0, "\(output)")
                #expect(output.contains("event \(live): on sale (queued intents), skipped"), "\(output)")
                #expect(output.contains("event \(finished): 7 outcomes"), "\(output)")
                #expect(output.contains("pruned 129 outcomes of 2 events in 20 batches"), "\(output)")
                for table in ["outcomes", "acceptances", "quarantine"] {
                    #expect(try await Self.scalar(store, "SELECT count(*)::int FROM \(unescaped: table) WHERE event_id <> \(live)") == 0, "\(table)")
                }
                // The live event's outcomes, queued intents and acceptances are untouched.
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM outcomes WHERE event_id = \(live)") == 5)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM intents WHERE event_id = \(live)") == 5)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM acceptances WHERE event_id = \(live)") == 10)
                #expect(try await Self.scalar(store, "SELECT count(*)::int FROM idempotency_keys WHERE event_id <> \(live)") == 0)
                #expect(try await Self.scalar(store, "SELECT tickets::int FROM pruned_outcomes WHERE event_id = \(finished)") == 50)
                #expect(try await Self.scalar(store, "SELECT tickets::int FROM pruned_outcomes WHERE event_id = \(hall)") == 12)
                // A buyer asking for a pruned intent finds none (the API answers 404 intent_not_found).
                #expect(try await store.status(of: finishedIntents[1].publicID) == nil)
                let after = try await store.audit()
                #expect(after.isClean, "\(after.violations)")
                #expect(after.ticketsSold == before.ticketsSold)

                // The pruned event's old key is free again: a new intent, and the event stays auditable.
                let retry = IntentDraft(eventID: finished, customer: "c0", request: .anywhere(quantity: 1), idempotencyKey: "k0")
                #expect(try await store.enqueue([retry]) == [.accepted(retry.publicID)])
                try await Self.drain(store)
                let last = try await store.audit()
                #expect(last.isClean, "\(last.violations)")
            }
        }
    }
}
