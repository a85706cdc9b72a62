import BoxofficeAPI
import BoxofficeCore
import BoxofficeStore
import Foundation
import Testing

extension IntegrationTests {
    @Suite("Sale lifecycle over HTTP: confirm, release, cancel, long-polls on transitions")
    struct TransitionAPITests {
        static let producer = AccessAndBatchTests.producer
        static let admin = AccessAndBatchTests.admin
        static func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

        func withTokens(_ body: @Sendable @escaping (LiveAPI) async throws -> Void) async throws {
            try await withLiveAPI(configure: { $0.access = .tokens(producer: Self.producer, admin: Self.admin) }, body)
        }

        /// An event with holds (`capacity` seats in one row) and `customers` intents of one seat each, decided.
        static func heldSale(_ api: LiveAPI, capacity: Int, customers: [String]) async throws -> (EventID, [String]) {
            let created = try await api.post(
                "/events", #"{"name": "Held", "sections": [{"name": "A", "rows": 1, "seats_per_row": \#(capacity)}], "hold_seconds": 600}"#,
                headers: bearer(admin))
            let event = try #require(Int64(created["id"] ?? ""))
            var ids: [String] = []
            for customer in customers {
                let reply = try await api.post("/events/\(event)/intents", #"{"customer": "\#(customer)", "quantity": 1}"#, headers: bearer(producer))
                #expect(reply.status == 202)
                ids.append(reply["id"] ?? "")
            }
            try await ReturnTests.drain(api.store)
            return (event, ids)
        }

        @Test("confirm → 200 with payment_reference, repeats are 200 with the same body, impossible transitions are 409s with a code that says why")
        func transitionsAnswer() async throws {
            try await withTokens { api in
                let (event, ids) = try await Self.heldSale(api, capacity: 2, customers: ["a", "b", "c"])
                let (a, b, c) = (ids[0], ids[1], ids[2])
                let producer = Self.bearer(Self.producer)
                let confirmed = try await api.post("/intents/\(a)/confirm", #"{"payment_reference": "pi_123", "customer": "a"}"#, headers: producer)
                #expect(confirmed.status == 200 && confirmed["status"] == "confirmed" && confirmed["payment_reference"] == "pi_123")
                #expect(confirmed.arrays["seats"]?.count == 1 && confirmed["expires_at"] != nil)
                let again = try await api.post("/intents/\(a)/confirm", #"{"payment_reference": "pi_123"}"#, headers: producer)
                #expect(again.status == 200 && again.fields == confirmed.fields && again.arrays == confirmed.arrays)
                #expect(try await api.post("/intents/\(a)/confirm", "", headers: producer).status == 200)
                #expect(
                    try await api.post("/intents/\(a)/confirm", #"{"payment_reference": "pi_999"}"#, headers: producer).error
                        == "payment_reference_differs")
                #expect(try await api.post("/intents/\(a)/release", "{}", headers: producer).error == "intent_confirmed")
                #expect(try await api.post("/intents/\(b)/cancel", "{}", headers: Self.bearer(Self.admin)).error == "intent_held")
                #expect(try await api.post("/intents/\(c)/confirm", "{}", headers: producer).error == "intent_rejected")
                // Released: 200, again 200, then confirm is 409 hold_released.
                let released = try await api.post("/intents/\(b)/release", "", headers: producer)
                #expect(released.status == 200 && released["status"] == "released" && released.arrays["seats"] == [])
                #expect(try await api.post("/intents/\(b)/release", "", headers: producer).status == 200)
                let late = try await api.post("/intents/\(b)/confirm", "", headers: producer)
                #expect(late.status == 409 && late.error == "hold_released")
                // Cancel is the administrator's.
                #expect(try await api.post("/intents/\(a)/cancel", #"{"reason": "refund"}"#, headers: producer).status == 403)
                let cancelled = try await api.post("/intents/\(a)/cancel", #"{"reason": "refund"}"#, headers: Self.bearer(Self.admin))
                #expect(cancelled.status == 200 && cancelled["status"] == "cancelled" && cancelled["cancel_reason"] == "refund")
                #expect(try await api.post("/intents/\(a)/cancel", "", headers: Self.bearer(Self.admin)).status == 200)
                #expect(try await api.post("/intents/\(a)/confirm", "", headers: producer).error == "intent_cancelled")
                try await ReturnTests.drain(api.store)
                let counts = try await api.get("/events/\(event)")
                #expect(counts["sold"] == "0" && counts["held"] == "0" && counts["available"] == "2")
                let report = try await api.store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        @Test("Bad transitions: unknown, malformed, pending, foreign, wrong token, malformed body: the right 4xx, nothing written")
        func badTransitionsWriteNothing() async throws {
            try await withTokens { api in
                let (event, ids) = try await Self.heldSale(api, capacity: 1, customers: ["a"])
                let producer = Self.bearer(Self.producer)
                let pending = try await api.post("/events/\(event)/intents", #"{"customer": "p", "quantity": 1}"#, headers: producer)
                let pendingID = pending["id"] ?? ""
                let unknown = UUID().uuidString.lowercased()
                let long = String(repeating: "x", count: 201)
                let cases: [(String, String, String, [(String, String)], Int, String?)] = [
                    ("unknown id", "/intents/\(unknown)/confirm", "", producer, 404, "intent_not_found"),
                    ("malformed id", "/intents/not-a-uuid/confirm", "", producer, 400, "invalid_id"),
                    ("pending", "/intents/\(pendingID)/confirm", "", producer, 409, "intent_pending"),
                    ("pending release", "/intents/\(pendingID)/release", "", producer, 409, "intent_pending"),
                    ("pending, naming a customer", "/intents/\(pendingID)/confirm", #"{"customer": "someone"}"#, producer, 409, "intent_pending"),
                    ("another customer's", "/intents/\(ids[0])/confirm", #"{"customer": "mallory"}"#, producer, 403, "customer_mismatch"),
                    ("no token", "/intents/\(ids[0])/confirm", "", [], 401, "unauthorized"),
                    ("wrong token", "/intents/\(ids[0])/release", "", Self.bearer("Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp"), 403, nil),
                    ("malformed JSON", "/intents/\(ids[0])/confirm", "{", producer, 400, "malformed_json"),
                    ("not an object", "/intents/\(ids[0])/confirm", "[1]", producer, 400, "malformed_json"),
                    ("unknown field", "/intents/\(ids[0])/confirm", #"{"amount": 5}"#, producer, 422, "invalid_request"),
                    ("reason on a confirm", "/intents/\(ids[0])/confirm", #"{"reason": "x"}"#, producer, 422, "invalid_request"),
                    ("reference too long", "/intents/\(ids[0])/confirm", #"{"payment_reference": "\#(long)"}"#, producer, 422, "invalid_request"),
                    ("reference not a string", "/intents/\(ids[0])/confirm", #"{"payment_reference": 12}"#, producer, 422, "invalid_request"),
                    ("empty reference", "/intents/\(ids[0])/confirm", #"{"payment_reference": ""}"#, producer, 422, "invalid_request"),
                    (
                        "cancel reason too long", "/intents/\(ids[0])/cancel", #"{"reason": "\#(long)"}"#, Self.bearer(Self.admin), 422,
                        "invalid_request"
                    ),
                    ("GET on a transition", "/intents/\(ids[0])/confirm", "", producer, 405, "method_not_allowed"),
                ]
                for (name, path, body, headers, status, code) in cases {
                    let reply = try await api.send(
                        name.hasPrefix("GET") ? .GET : .POST, path, body: name.hasPrefix("GET") ? nil : body, headers: headers)
                    #expect(reply.status == status, "\(name): \(reply.status) \(reply.fields)")
                    if let code { #expect(reply.error == code, "\(name): \(reply.fields)") }
                }
                #expect(try await api.count("inventory_journal") == 0, "a refused transition wrote a journal row")
                #expect(try await api.get("/intents/\(ids[0])")["status"] == "held")
                #expect(try await api.get("/intents/\(pendingID)")["status"] == "pending")
                let report = try await api.store.audit()
                #expect(report.isClean, "\(report.violations)")
            }
        }

        @Test("A long-poll with while=held wakes on the confirm; one with while=pending wakes on the hold; while= is validated")
        func longPollsWakeOnTransitions() async throws {
            try await withLiveAPI { api in
                let (_, ids) = try await Self.heldSale(api, capacity: 1, customers: ["a"])
                let id = ids[0]
                async let waited = api.get("/intents/\(id)?wait=20&while=held")
                try await Task.sleep(for: .milliseconds(300))
                let confirm = try await api.post("/intents/\(id)/confirm", "")
                #expect(confirm.status == 200)
                let woken = try await waited
                #expect(woken["status"] == "confirmed", "\(woken.fields)")
                // Not held any more: answered at once.
                let started = ContinuousClock.now
                #expect(try await api.get("/intents/\(id)?wait=20&while=held")["status"] == "confirmed")
                #expect(ContinuousClock.now - started < .seconds(10))
                #expect(try await api.get("/intents/\(id)?wait=1&while=rejected").error == "invalid_while")
                #expect(try await api.get("/intents/\(id)?while=bogus").error == "invalid_while")
            }
        }
    }
}
