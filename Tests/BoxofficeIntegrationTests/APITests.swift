import BoxofficeCore
import BoxofficeStore
import Foundation
import Testing

extension IntegrationTests {
    @Suite("HTTP API")
    struct APITests {
        @Test("Events: create general admission and seat maps, read them back")
        func createAndReadEvents() async throws {
            try await withLiveAPI { api in
                let ga = try await api.post("/events", #"{"name": "Gig", "capacity": 100}"#)
                #expect(ga.status == 201)
                #expect(ga["kind"] == "general_admission")
                #expect(ga["capacity"] == "100")
                let map = try await api.post(
                    "/events",
                    #"{"name": "Opera", "sections": [{"name": "A", "rows": 10, "seats_per_row": 20}, {"name": "B", "rows": 5, "seats_per_row": 30}]}"#
                )
                #expect(map.status == 201)
                #expect(map["capacity"] == "350")
                let read = try await api.get("/events/\(map["id"] ?? "")")
                #expect(read.status == 200)
                #expect(read["available"] == "350")
                #expect(read["sold"] == "0")
                #expect(read["pending"] == "0")
            }
        }

        @Test("Bad input gets a clear 4xx with a message and writes nothing")
        func badInputChangesNothing() async throws {
            try await withLiveAPI(configure: { $0.bodyBytesMax = 2_048 }) { api in
                let ga = try await api.createGeneralAdmission(10)
                let map = try await api.post("/events", #"{"name": "Hall", "sections": [{"name": "A", "rows": 2, "seats_per_row": 5}]}"#)
                let seatMap = map["id"] ?? ""
                let before = (try await api.count("events"), try await api.count("seat_rows"))
                let oversize = #"{"customer": "c", "quantity": 1, "pad": ""# + String(repeating: "x", count: 4_000) + #""}"#
                let cases: [(String, String, String?, Int, String)] = [
                    ("malformed JSON", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 2"#, 400, "malformed_json"),
                    ("not an object", "/events/\(ga)/intents", "[1, 2]", 400, "malformed_json"),
                    ("empty body", "/events/\(ga)/intents", "", 400, "malformed_json"),
                    ("unknown field", "/events/\(ga)/intents", #"{"customer": "c-1", "quantiy": 2}"#, 422, "invalid_request"),
                    ("quantity zero", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 0}"#, 422, "invalid_request"),
                    ("negative quantity", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": -3}"#, 422, "invalid_request"),
                    ("quantity above the maximum", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 11}"#, 422, "invalid_request"),
                    ("quantity as a string", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": "2"}"#, 422, "invalid_request"),
                    ("fractional quantity", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 1.5}"#, 422, "invalid_request"),
                    ("boolean quantity", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": true}"#, 422, "invalid_request"),
                    ("huge quantity", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 1e300}"#, 422, "invalid_request"),
                    (
                        "quantity at Int.max", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 9223372036854775807}"#, 422,
                        "invalid_request"
                    ),
                    (
                        "quantity at Int.min", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": -9223372036854775808}"#, 422,
                        "invalid_request"
                    ),
                    ("missing customer", "/events/\(ga)/intents", #"{"quantity": 1}"#, 422, "invalid_request"),
                    ("blank customer", "/events/\(ga)/intents", #"{"customer": "  ", "quantity": 1}"#, 422, "invalid_request"),
                    ("unknown event", "/events/999999/intents", #"{"customer": "c-1", "quantity": 1}"#, 404, "event_not_found"),
                    ("non-numeric event id", "/events/abc/intents", #"{"customer": "c-1", "quantity": 1}"#, 400, "invalid_id"),
                    ("negative event id", "/events/-4/intents", #"{"customer": "c-1", "quantity": 1}"#, 400, "invalid_id"),
                    ("seats on general admission", "/events/\(ga)/intents", #"{"customer": "c-1", "seats": ["A-1-1"]}"#, 422, "invalid_request"),
                    (
                        "section on general admission", "/events/\(ga)/intents", #"{"customer": "c-1", "quantity": 1, "section": "A"}"#, 422,
                        "invalid_request"
                    ),
                    ("unknown seat label", "/events/\(seatMap)/intents", #"{"customer": "c-1", "seats": ["A-9-1"]}"#, 422, "unknown_seat"),
                    ("malformed seat label", "/events/\(seatMap)/intents", #"{"customer": "c-1", "seats": ["A1"]}"#, 422, "invalid_request"),
                    ("seat listed twice", "/events/\(seatMap)/intents", #"{"customer": "c-1", "seats": ["A-1-1", "A-1-1"]}"#, 422, "invalid_request"),
                    (
                        "seats and a different quantity", "/events/\(seatMap)/intents", #"{"customer": "c-1", "quantity": 3, "seats": ["A-1-1"]}"#,
                        422, "invalid_request"
                    ),
                    ("unknown section", "/events/\(seatMap)/intents", #"{"customer": "c-1", "quantity": 1, "section": "Z"}"#, 422, "unknown_section"),
                    ("body too large", "/events/\(ga)/intents", oversize, 413, "body_too_large"),
                    ("event without capacity or sections", "/events", #"{"name": "x"}"#, 422, "invalid_request"),
                    (
                        "event with both", "/events", #"{"name": "x", "capacity": 5, "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}"#,
                        422, "invalid_request"
                    ),
                    ("event with negative capacity", "/events", #"{"name": "x", "capacity": -5}"#, 422, "invalid_request"),
                    (
                        "event with a bad section name", "/events", #"{"name": "x", "sections": [{"name": "A-1", "rows": 1, "seats_per_row": 1}]}"#,
                        422, "invalid_request"
                    ),
                    (
                        "event with zero rows", "/events", #"{"name": "x", "sections": [{"name": "A", "rows": 0, "seats_per_row": 1}]}"#, 422,
                        "invalid_request"
                    ),
                ]
                for (name, path, body, status, code) in cases {
                    let reply = try await api.post(path, body ?? "")
                    #expect(reply.status == status, "\(name): got \(reply.status) \(reply.fields)")
                    #expect(reply.error == code, "\(name): got \(reply.fields)")
                    #expect((reply["message"] ?? "").count > 5, "\(name): no message")
                }
                let reads: [(String, Int, String)] = [
                    ("/intents/not-a-uuid", 400, "invalid_id"),
                    ("/intents/\(UUID())", 404, "intent_not_found"),
                    ("/events/0", 400, "invalid_id"),
                    ("/events/123456", 404, "event_not_found"),
                    ("/no/such/route", 404, "not_found"),
                ]
                for (path, status, code) in reads {
                    let reply = try await api.get(path)
                    #expect(reply.status == status, "\(path): got \(reply.status)")
                    #expect(reply.error == code, "\(path): got \(reply.fields)")
                }
                let badKey = try await api.post(
                    "/events/\(ga)/intents", #"{"customer": "c", "quantity": 1}"#, headers: [("Idempotency-Key", String(repeating: "k", count: 300))])
                #expect(badKey.status == 400)
                let badWait = try await api.get("/intents/\(UUID())?wait=999")
                #expect(badWait.status == 400)

                #expect(try await api.count("intents") == 0)
                #expect(try await api.count("idempotency_keys") == 0)
                #expect(try await api.count("outcomes") == 0)
                #expect((try await api.count("events"), try await api.count("seat_rows")) == before)
            }
        }

        @Test("Intake: 202 with an id and status URL; the status reads pending with a queue position")
        func intakeAndStatus() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(10)
                let first = try await api.post("/events/\(event)/intents", #"{"customer": "c-1", "quantity": 2}"#)
                #expect(first.status == 202)
                #expect(first["status"] == "pending")
                let id = try #require(first["id"])
                #expect(first["status_url"] == "/intents/\(id)")
                _ = try await api.post("/events/\(event)/intents", #"{"customer": "c-2", "quantity": 1}"#)
                let second = try await api.post("/events/\(event)/intents", #"{"customer": "c-3", "quantity": 1}"#)
                let status = try await api.get("/intents/\(second["id"] ?? "")")
                #expect(status.status == 200)
                #expect(status["status"] == "pending")
                #expect(status["queue_position"] == "3")
                let summary = try await api.get("/events/\(event)")
                #expect(summary["pending"] == "3")
            }
        }

        @Test("Idempotency: 50 concurrent requests with one key make one intent; another body with that key is refused")
        func idempotency() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(10)
                let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                    for _ in 0..<50 {
                        group.addTask {
                            let reply = try await api.post(
                                "/events/\(event)/intents", #"{"customer": "c-1", "quantity": 2}"#, headers: [("Idempotency-Key", "order-77")])
                            #expect(reply.status == 202, "got \(reply.status) \(reply.fields)")
                            return reply["id"]
                        }
                    }
                    var ids: [String?] = []
                    for try await id in group { ids.append(id) }
                    return ids
                }
                #expect(Set(ids).count == 1)
                #expect(ids.allSatisfy { $0 != nil })
                #expect(try await api.count("intents") == 1)
                let reused = try await api.post(
                    "/events/\(event)/intents", #"{"customer": "c-1", "quantity": 3}"#, headers: [("Idempotency-Key", "order-77")])
                #expect(reused.status == 422)
                #expect(reused.error == "idempotency_key_reused")
                #expect(try await api.count("intents") == 1)
                // The key still finds the intent once it has left the queue for its outcome.
                _ = try await api.store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                let retry = try await api.post(
                    "/events/\(event)/intents", #"{"customer": "c-1", "quantity": 2}"#, headers: [("Idempotency-Key", "order-77")])
                #expect(retry.status == 202)
                #expect(retry["id"] == ids.first!)
                #expect(try await api.count("intents") == 0)
                #expect(try await api.count("outcomes") == 1)
            }
        }

        @Test("Long-poll: ?wait holds the request until the outcome exists, and answers it")
        func longPoll() async throws {
            try await withLiveAPI { api in
                let event = try await api.post("/events", #"{"name": "Hall", "sections": [{"name": "A", "rows": 2, "seats_per_row": 10}]}"#)
                let accepted = try await api.post("/events/\(event["id"] ?? "")/intents", #"{"customer": "c-1", "quantity": 2, "section": "A"}"#)
                let id = try #require(accepted["id"])
                let started = ContinuousClock.now
                async let answer = api.get("/intents/\(id)?wait=20")
                try await Task.sleep(for: .milliseconds(300))
                let report = try await api.store.allocateNextBatch(batchSizeMax: 10) { Allocator.allocate($1, from: &$0) }
                #expect(report?.confirmed == 1)
                let reply = try await answer
                #expect(ContinuousClock.now - started < .seconds(15), "the long-poll was not woken by the outcome")
                #expect(reply["status"] == "confirmed")
                #expect(reply.arrays["seats"] == ["A-1-5", "A-1-6"])
                let timedOut = try await api.post("/events/\(event["id"] ?? "")/intents", #"{"customer": "c-2", "quantity": 1}"#)
                let pending = try await api.get("/intents/\(timedOut["id"] ?? "")?wait=1")
                #expect(pending["status"] == "pending")
            }
        }

        @Test("Health and readiness")
        func health() async throws {
            try await withLiveAPI { api in
                let health = try await api.get("/health")
                let ready = try await api.get("/ready")
                #expect(health.status == 200)
                #expect(ready.status == 200)
            }
        }
    }
}
