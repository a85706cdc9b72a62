import BoxofficeAPI
import Foundation
import Testing

extension IntegrationTests {
    @Suite("Access tokens and bulk intake")
    struct AccessAndBatchTests {
        // Random-looking on purpose: placeholder words and low-entropy tokens are refused at start.
        static let producer = "Kq2XvN9wLm4RtZ8sYb3HcJ6dFg5Ae1Up"
        static let admin = "aD7mZ3kQ9vW2nB6xR4tL8pF1sH5jC0gY"

        func withTokens(_ body: @Sendable @escaping (LiveAPI) async throws -> Void) async throws {
            try await withLiveAPI(configure: { $0.access = .tokens(producer: Self.producer, admin: Self.admin) }, body)
        }

        func bearer(_ token: String) -> [(String, String)] { [("Authorization", "Bearer \(token)")] }

        @Test("Tokens: missing is 401 with WWW-Authenticate, wrong or insufficient is 403, and neither writes anything")
        func tokensGuardWrites() async throws {
            try await withTokens { api in
                let event = try await api.post("/events", #"{"name": "Gig", "capacity": 10}"#, headers: bearer(Self.admin))
                #expect(event.status == 201)
                let id = event["id"] ?? ""
                let intent = #"{"customer": "c-1", "quantity": 1}"#
                let before = (try await api.count("events"), try await api.count("intents"))
                let refusals: [(String, String, [(String, String)], Int)] = [
                    ("no header", "/events/\(id)/intents", [], 401),
                    ("not bearer", "/events/\(id)/intents", [("Authorization", "Basic \(Self.producer)")], 401),
                    ("empty bearer", "/events/\(id)/intents", [("Authorization", "Bearer ")], 401),
                    ("wrong token", "/events/\(id)/intents", bearer(String(Self.producer.dropLast()) + "X"), 403),
                    ("token prefix", "/events/\(id)/intents", bearer(String(Self.producer.dropLast())), 403),
                    ("token with a suffix", "/events/\(id)/intents", bearer(Self.producer + "x"), 403),
                    ("bulk without a token", "/events/\(id)/intents/batch", [], 401),
                    ("producer creating an event", "/events", bearer(Self.producer), 403),
                    ("no token creating an event", "/events", [], 401),
                ]
                for (name, path, headers, status) in refusals {
                    let body = path == "/events" ? #"{"name": "x", "capacity": 1}"# : path.hasSuffix("batch") ? "[\(intent)]" : intent
                    let reply = try await api.post(path, body, headers: headers)
                    #expect(reply.status == status, "\(name): \(reply.status) \(reply.fields)")
                    #expect(reply.error == (status == 401 ? "unauthorized" : "forbidden"), "\(name)")
                    if status == 401 {
                        #expect(reply.headers.contains { $0.0.lowercased() == "www-authenticate" && $0.1.hasPrefix("Bearer") }, "\(name)")
                    }
                }
                #expect((try await api.count("events"), try await api.count("intents")) == before, "a refused request wrote something")

                #expect(try await api.post("/events/\(id)/intents", intent, headers: bearer(Self.producer)).status == 202)
                #expect(
                    try await api.post("/events/\(id)/intents", intent, headers: [("Authorization", "bearer \(Self.admin)")]).status == 202,
                    "the admin token may enqueue too, and the scheme is case-insensitive")
                #expect(try await api.get("/events/\(id)").status == 200, "reads need no token")
            }
        }

        @Test("Token configuration: both or neither, long enough, different; a typo never starts an open server")
        func tokenConfiguration() throws {
            #expect(try AccessControl.fromEnvironment([:]) == nil)
            let good = ["BOXOFFICE_PRODUCER_TOKEN": Self.producer, "BOXOFFICE_ADMIN_TOKEN": Self.admin]
            guard case .tokens(let producer, let admin)? = try AccessControl.fromEnvironment(good) else {
                Issue.record("tokens were not read")
                return
            }
            #expect((producer, admin) == (Self.producer, Self.admin))
            let bad: [[String: String]] = [
                ["BOXOFFICE_PRODUCER_TOKEN": Self.producer],
                ["BOXOFFICE_ADMIN_TOKEN": Self.admin],
                ["BOXOFFICE_PRODUCER_TOKEN": "short", "BOXOFFICE_ADMIN_TOKEN": Self.admin],
                ["BOXOFFICE_PRODUCER_TOKEN": Self.producer + " x", "BOXOFFICE_ADMIN_TOKEN": Self.admin],
                ["BOXOFFICE_PRODUCER_TOKEN": Self.admin, "BOXOFFICE_ADMIN_TOKEN": Self.admin],
            ]
            for environment in bad {
                #expect(throws: AccessError.self, "\(environment.keys.sorted())") { try AccessControl.fromEnvironment(environment) }
            }
            let first = AccessControl.randomToken()
            let second = AccessControl.randomToken()
            #expect(first.count == 48 && first != second)
        }

        @Test("Bulk intake: per-item results in order, invalid items refused alone, keys replayed within and across batches")
        func bulkIntakeJSON() async throws {
            try await withLiveAPI { api in
                let event = try await api.createGeneralAdmission(100)
                let body = """
                    [{"customer": "a", "quantity": 2, "idempotency_key": "k-1"},
                     {"customer": "b", "quantity": 0},
                     {"customer": "c", "quantity": 1, "colour": "red"},
                     {"customer": "a", "quantity": 2, "idempotency_key": "k-1"},
                     {"customer": "d", "quantity": 1},
                     {"customer": "a", "quantity": 3, "idempotency_key": "k-1"},
                     {"customer": "f", "quantity": 1, "idempotency_key": " "},
                     7]
                    """
                let reply = try await api.sendJSON(.POST, "/events/\(event)/intents/batch", body: body)
                #expect(reply.status == 200, "\(reply.object)")
                let results = reply.object["results"] as? [[String: Any]] ?? []
                #expect(results.map { $0["index"] as? Int } == Array(0..<8))
                #expect(reply.object["accepted"] as? Int == 3)
                #expect(reply.object["rejected"] as? Int == 5)
                #expect(results[0]["status"] as? String == "pending" && results[0]["replayed"] as? Bool == false)
                #expect(results[1]["error"] as? String == "invalid_request")
                #expect(results[2]["error"] as? String == "invalid_request")
                #expect(results[3]["id"] as? String == results[0]["id"] as? String, "the same key and body within a batch is one intent")
                #expect(results[3]["replayed"] as? Bool == true)
                #expect(results[4]["status_url"] as? String == "/intents/\(results[4]["id"] as? String ?? "")")
                #expect(results[5]["error"] as? String == "idempotency_key_reused")
                #expect(results[6]["error"] as? String == "invalid_idempotency_key")
                #expect(results[7]["error"] as? String == "invalid_request")
                #expect(try await api.count("intents") == 2)

                let retry = try await api.sendJSON(
                    .POST, "/events/\(event)/intents/batch", body: #"[{"customer": "a", "quantity": 2, "idempotency_key": "k-1"}]"#)
                let retried = retry.object["results"] as? [[String: Any]] ?? []
                #expect(retried.first?["id"] as? String == results[0]["id"] as? String && retried.first?["replayed"] as? Bool == true)
                #expect(try await api.count("intents") == 2)
            }
        }

        @Test("Bulk intake as NDJSON; whole-request errors (malformed, empty, too many, unknown event) write nothing")
        func bulkIntakeNDJSONAndRefusals() async throws {
            try await withLiveAPI(configure: { $0.bulkItemsMax = 5 }) { api in
                let event = try await api.createGeneralAdmission(100)
                let ndjson = [("Content-Type", "application/x-ndjson")]
                let lines = "{\"customer\": \"a\", \"quantity\": 1}\r\n\n{\"customer\": \"b\", \"quantity\": 2}\n"
                let reply = try await api.sendJSON(.POST, "/events/\(event)/intents/batch", body: lines, headers: ndjson)
                #expect(reply.status == 200 && reply.object["accepted"] as? Int == 2, "\(reply.object)")
                #expect(try await api.count("intents") == 2)

                let item = #"{"customer": "x", "quantity": 1}"#
                let batch = "/events/\(event)/intents/batch"
                let refusals: [(name: String, path: String, body: String, headers: [(String, String)], status: Int, code: String)] = [
                    ("malformed array", batch, "[\(item),", [], 400, "malformed_json"),
                    ("an object, not an array", batch, item, [], 400, "malformed_json"),
                    ("malformed NDJSON line", batch, "\(item)\n{oops\n", ndjson, 400, "malformed_json"),
                    ("empty array", batch, "[]", [], 422, "invalid_request"),
                    ("empty NDJSON", batch, "\n\n", ndjson, 422, "invalid_request"),
                    ("too many items", batch, "[" + Array(repeating: item, count: 6).joined(separator: ",") + "]", [], 413, "too_many_items"),
                    ("too many NDJSON lines", batch, Array(repeating: item, count: 6).joined(separator: "\n"), ndjson, 413, "too_many_items"),
                    ("unknown event", "/events/424242/intents/batch", "[\(item)]", [], 404, "event_not_found"),
                    ("bad event id", "/events/x/intents/batch", "[\(item)]", [], 400, "invalid_id"),
                ]
                for refusal in refusals {
                    let reply = try await api.post(refusal.path, refusal.body, headers: refusal.headers)
                    #expect(reply.status == refusal.status, "\(refusal.name): \(reply.status) \(reply.fields)")
                    #expect(reply.error == refusal.code, "\(refusal.name): \(reply.fields)")
                }
                #expect(try await api.count("intents") == 2, "a refused bulk request wrote something")
            }
        }
    }
}
