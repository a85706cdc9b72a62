import BoxofficeCore
import BoxofficeStore
import Foundation
import PostgresNIO
import Testing

/// The KEDA query, read from the one place it is written: the `query: |-` block of the ScaledObject.
func scaledObjectQuery() throws -> String {
    let manifest = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/k8s/worker-scaledobject.yaml"), encoding: .utf8)
    let lines = manifest.split(separator: "\n", omittingEmptySubsequences: false)
    guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "query: |-" }) else { return "" }
    let keyIndent = lines[start].prefix { $0 == " " }.count
    let block = lines[(start + 1)...].prefix { $0.prefix { $0 == " " }.count > keyIndent || $0.allSatisfy(\.isWhitespace) }
    let indent = block.filter { !$0.allSatisfy(\.isWhitespace) }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
    return block.map { String($0.dropFirst(indent)) }.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
}

extension IntegrationTests {
    @Suite("Autoscaling query")
    struct AutoscalingQueryTests {
        @Test(
            "The ScaledObject's query counts the events with queued intents (0 when the queue is empty) and walks the index, never scanning intents"
        )
        func eventsWithQueuedWork() async throws {
            let query = try scaledObjectQuery()
            #expect(query.hasPrefix("WITH RECURSIVE") && query.hasSuffix("FROM queued"), "\(query)")
            let database = try await TestCluster.freshDatabase()
            try await withStore(database, logger: testLogger) { store in
                func scalar(_ sql: String) async throws -> Int {
                    var value = -1
                    for try await row in try await store.client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { value = row }
                    return value
                }
                func plan(_ sql: String) async throws -> String {
                    var lines: [String] = []
                    for try await line in try await store.client.query(PostgresQuery(unsafeSQL: "EXPLAIN \(sql)")).decode(String.self) {
                        lines.append(line)
                    }
                    return lines.joined(separator: "\n")
                }

                #expect(try await scalar(query) == 0, "an empty queue")
                var events: [Int64] = []
                for index in 0..<5 { events.append(try await store.createEvent(name: "E\(index)", layout: .generalAdmission(capacity: 100)).id) }
                // A long queue on one event, a few intents on two others, nothing on the last two.
                for (event, count) in [(events[0], 20_000), (events[2], 3), (events[3], 1)] {
                    for chunk in stride(from: 0, to: count, by: 1_000) {
                        let drafts = (chunk..<min(count, chunk + 1_000)).map {
                            IntentDraft(eventID: event, customer: "c-\($0)", request: .anywhere(quantity: 1), idempotencyKey: nil)
                        }
                        _ = try await store.enqueue(drafts, notify: false)
                    }
                }
                #expect(try await scalar(query) == 3, "three events with queued intents")
                _ = try await store.client.query("ANALYZE intents")
                #expect(try await scalar(query) == 3)

                let explained = try await plan(query)
                #expect(!explained.contains("Seq Scan on intents"), "\(explained)")
                #expect(explained.contains("intents_event_id_id"), "\(explained)")
                // Run, it reads a few index entries per event with work, not the 20,004 queued: a full
                // index scan (`count(DISTINCT event_id)`) would pass the checks above and fail this one.
                let analyzed = try await plan("(ANALYZE) " + query)
                let entriesRead = analyzed.split(separator: "\n").filter { $0.contains(" on intents ") }.map { line -> Int in
                    guard let match = line.firstMatch(of: #/actual time=[0-9.]+\.\.[0-9.]+ rows=([0-9]+) loops=([0-9]+)/#) else { return 0 }
                    return (Int(match.1) ?? 0) * (Int(match.2) ?? 0)
                }.reduce(0, +)
                #expect(entriesRead > 0 && entriesRead <= 20, "index entries read: \(entriesRead)\n\(analyzed)")

                // The events drain: one left, then none.
                _ = try await store.client.query("DELETE FROM intents WHERE event_id <> \(events[0])")
                #expect(try await scalar(query) == 1)
                _ = try await store.client.query("DELETE FROM intents")
                #expect(try await scalar(query) == 0)
            }
        }
    }
}
