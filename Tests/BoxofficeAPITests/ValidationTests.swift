import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Testing

@testable import BoxofficeAPI

/// Request validation as pure functions: parsed input in, a typed request or the error README.md
/// promises out, without a database or a port.
@Suite("API validation")
struct ValidationTests {
    let limits = APIConfiguration()
    let generalAdmission = EventLayout.generalAdmission(capacity: 100)
    let seatMap = EventLayout.seatMap([SectionLayout(name: "A", rows: 3, seatsPerRow: 4), SectionLayout(name: "B", rows: 1, seatsPerRow: 2)])

    func object(_ text: String, allowed: Set<String> = IntentValidation.fields) throws -> JSONObject {
        try JSONObject(try Array(text.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw, what: "the body") }, allowed: allowed)
    }

    /// The error `body` throws, nil when it throws none (or not an APIError).
    func refusal<T>(_ body: () throws -> T) -> APIError? {
        do {
            _ = try body()
            return nil
        } catch {
            return error as? APIError
        }
    }

    func draft(_ text: String, layout: EventLayout? = nil) throws -> IntentDraft {
        try IntentValidation.draft(try object(text), eventID: 7, layout: layout ?? generalAdmission, idempotencyKey: nil, limits: limits)
    }

    @Test("path parameters: event ids are positive integers, intent ids are UUIDs (400 invalid_id)")
    func ids() throws {
        #expect(try EventValidation.eventID("42") == 42)
        for text in ["0", "-3", "abc", "1.5", "", nil] as [String?] {
            let error = refusal { try EventValidation.eventID(text) }
            #expect(error?.status == .badRequest && error?.code == "invalid_id", "\(String(describing: text))")
        }
        let id = UUID()
        #expect(try IntentValidation.intentID(id.uuidString) == id)
        let error = refusal { try IntentValidation.intentID("not-a-uuid") }
        #expect(error?.status == .badRequest && error?.code == "invalid_id")
        #expect(error?.message.contains("not-a-uuid") == true)
    }

    @Test("?wait= is whole seconds from 0 to the long-poll maximum (400 invalid_wait)")
    func wait() throws {
        #expect(try IntentValidation.waitSeconds(nil, max: 30) == 0)
        #expect(try IntentValidation.waitSeconds("30", max: 30) == 30)
        for text in ["31", "-1", "1.5", "soon", ""] {
            let error = refusal { try IntentValidation.waitSeconds(text, max: 30) }
            #expect(error?.status == .badRequest && error?.code == "invalid_wait", "\(text)")
        }
    }

    @Test("Idempotency-Key: a structured-header string or a token of 1 to 255 visible ASCII characters (400 invalid_idempotency_key)")
    func idempotencyKeys() throws {
        #expect(try IntentValidation.idempotencyKeyHeader(nil, lengthMax: 255) == nil)
        #expect(try IntentValidation.idempotencyKeyHeader("order-17", lengthMax: 255) == "order-17")
        #expect(try IntentValidation.idempotencyKeyHeader(#""order-17""#, lengthMax: 255) == "order-17")
        for raw in ["", #""""#, "has space", "ünï", String(repeating: "k", count: 256)] {
            let error = refusal { try IntentValidation.idempotencyKeyHeader(raw, lengthMax: 255) }
            #expect(error?.status == .badRequest && error?.code == "invalid_idempotency_key", "\(raw)")
        }
    }

    @Test("an intake body becomes the purchase it asks for")
    func accepted() throws {
        #expect(try draft(#"{"customer": "c-42", "quantity": 2}"#).request == .anywhere(quantity: 2))
        #expect(try draft(#"{"customer": "c-42", "quantity": 2, "section": "A"}"#, layout: seatMap).request == .inSection("A", quantity: 2))
        let seats = try draft(#"{"customer": "c-42", "seats": ["A-3-4", "B-1-1"]}"#, layout: seatMap)
        #expect(seats.request == .seats([SeatLabel(parsing: "A-3-4")!, SeatLabel(parsing: "B-1-1")!]))
        #expect(seats.customer == "c-42" && seats.eventID == 7)
        // Surrounding spaces are trimmed from the customer, as the README's "blank customer" rule implies.
        #expect(try draft(#"{"customer": "  c-42 ", "quantity": 1}"#).customer == "c-42")
    }

    @Test(
        "an intake body that asks for something impossible is refused with the code README.md names",
        arguments: [
            (#"{"customer": "c", "quantity": 11}"#, "invalid_request", "quantity must be between 1 and 10"),
            (#"{"customer": "c", "quantity": 0}"#, "invalid_request", "quantity must be between 1 and 10"),
            (#"{"customer": "c", "quantity": 2.0}"#, "invalid_request", "quantity must be an integer"),
            (#"{"customer": "c", "quantity": 10.0000000000000001}"#, "invalid_request", "quantity must be an integer"),
            (#"{"customer": "c", "quantity": "2"}"#, "invalid_request", "quantity must be an integer"),
            (#"{"customer": "c"}"#, "invalid_request", "quantity is required"),
            (#"{"quantity": 1}"#, "invalid_request", "customer is required"),
            (#"{"customer": "   ", "quantity": 1}"#, "invalid_request", "customer must be 1 to 128 printable characters"),
            (#"{"customer": 5, "quantity": 1}"#, "invalid_request", "customer must be a string, got a number"),
            (#"{"customer": "c", "seats": ["A-1-1"]}"#, "invalid_request", "this event is general admission: it has no seats to name"),
            (#"{"customer": "c", "quantity": 1, "section": "A"}"#, "invalid_request", "this event is general admission: it has no sections"),
        ])
    func refusedOnGeneralAdmission(_ text: String, code: String, message: String) {
        let error = refusal { try draft(text) }
        #expect(error?.status == .unprocessableContent && error?.code == code, "\(text)")
        #expect(error?.message.hasPrefix(message) == true, "\(text): \(error?.message ?? "accepted")")
    }

    @Test(
        "on a seat map, unknown seats and sections are named, and contradictions refused",
        arguments: [
            (#"{"customer": "c", "seats": ["C-1-1"]}"#, "unknown_seat", "seat C-1-1 does not exist in this event"),
            (#"{"customer": "c", "seats": ["A-4-1"]}"#, "unknown_seat", "seat A-4-1 does not exist in this event"),
            (#"{"customer": "c", "quantity": 1, "section": "Z"}"#, "unknown_section", "section Z does not exist in this event"),
            (#"{"customer": "c", "seats": ["A-1-1"], "section": "A"}"#, "invalid_request", "give either section or seats, not both"),
            (#"{"customer": "c", "quantity": 3, "seats": ["A-1-1"]}"#, "invalid_request", "quantity 3 does not match the 1 seats named"),
            (#"{"customer": "c", "seats": ["A-1-1", "A-1-1"]}"#, "invalid_request", "seat A-1-1 is listed twice"),
            (#"{"customer": "c", "seats": ["front row"]}"#, "invalid_request", "seats must be labels like A-3-17"),
            (#"{"customer": "c", "seats": []}"#, "invalid_request", "seats must hold 1 to 10 items"),
        ])
    func refusedOnSeatMap(_ text: String, code: String, message: String) {
        let error = refusal { try draft(text, layout: seatMap) }
        #expect(error?.status == .unprocessableContent && error?.code == code, "\(text)")
        #expect(error?.message.hasPrefix(message) == true, "\(text): \(error?.message ?? "accepted")")
    }

    @Test("unknown fields are refused by name (422 invalid_request)")
    func unknownFields() {
        let error = refusal { try object(#"{"customer": "c", "quantity": 1, "colour": "red"}"#) }
        #expect(error?.status == .unprocessableContent && error?.code == "invalid_request")
        #expect(error?.message.hasPrefix("unknown field(s) colour") == true)
    }

    @Test("an event body: capacity or sections, never both or neither")
    func events() throws {
        let ga = try EventValidation.newEvent(try object(#"{"name": "Gig", "capacity": 10000}"#, allowed: EventValidation.fields), limits: limits)
        #expect(ga == NewEvent(name: "Gig", layout: .generalAdmission(capacity: 10_000)))
        let opera = try EventValidation.newEvent(
            try object(#"{"name": "Opera", "sections": [{"name": "A", "rows": 10, "seats_per_row": 20}]}"#, allowed: EventValidation.fields),
            limits: limits)
        #expect(opera.layout == .seatMap([SectionLayout(name: "A", rows: 10, seatsPerRow: 20)]))
        #expect(opera.holdSeconds == 0)
        let held = try EventValidation.newEvent(
            try object(#"{"name": "Gig", "capacity": 10, "hold_seconds": 3600}"#, allowed: EventValidation.fields), limits: limits)
        #expect(held == NewEvent(name: "Gig", layout: .generalAdmission(capacity: 10), holdSeconds: 3_600))
        let refused: [(String, String)] = [
            (#"{"name": "X", "capacity": 10, "hold_seconds": -1}"#, "hold_seconds must be between 0 and 3600"),
            (#"{"name": "X", "capacity": 10, "hold_seconds": 3601}"#, "hold_seconds must be between 0 and 3600"),
            (#"{"name": "X", "capacity": 10, "hold_seconds": "60"}"#, "hold_seconds must be an integer"),
            (#"{"name": "X", "capacity": 10, "hold_seconds": 1.5}"#, "hold_seconds must be an integer"),
            (#"{"name": "X", "capacity": 10, "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}"#, "give either capacity"),
            (#"{"name": "X"}"#, "give either capacity"),
            (#"{"capacity": 10}"#, "name is required"),
            (#"{"name": "X", "capacity": 0}"#, "capacity must be between 1 and"),
            (
                #"{"name": "X", "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}, {"name": "A", "rows": 1, "seats_per_row": 1}]}"#,
                "section A is listed twice"
            ),
            (#"{"name": "X", "sections": [{"name": "A B", "rows": 1, "seats_per_row": 1}]}"#, "section name A B must be"),
            (#"{"name": "X", "sections": [{"name": "A", "rows": 1, "seats_per_row": 1, "aisle": 3}]}"#, "unknown field(s) in a section: aisle"),
            (#"{"name": "X", "sections": [7]}"#, "each of sections must be an object"),
        ]
        for (text, message) in refused {
            let error = refusal { try EventValidation.newEvent(try object(text, allowed: EventValidation.fields), limits: limits) }
            #expect(error?.status == .unprocessableContent && error?.code == "invalid_request", "\(text)")
            #expect(error?.message.hasPrefix(message) == true, "\(text): \(error?.message ?? "accepted")")
        }
    }

    func bulk(_ text: String, ndjson: Bool, itemsMax: Int = 1_000) throws -> [JSONValue] {
        try BulkValidation.items(ByteBuffer(string: text), ndjson: ndjson, itemsMax: itemsMax)
    }

    @Test("bulk bodies: a JSON array or NDJSON (blank lines skipped), 1 to the item bound, else the whole request is refused")
    func bulkBodies() throws {
        #expect(try bulk(#"[{"customer": "a", "quantity": 1}, {"customer": "b", "quantity": 2}]"#, ndjson: false).count == 2)
        #expect(try bulk("{\"customer\": \"a\", \"quantity\": 1}\r\n\n  \n{\"customer\": \"b\", \"quantity\": 2}", ndjson: true).count == 2)
        let tooMany = refusal { try bulk("1\n2\n3\n4", ndjson: true, itemsMax: 3) }
        #expect(tooMany?.status == .contentTooLarge && tooMany?.code == "too_many_items")
        let tooManyArray = refusal { try bulk("[1, 2, 3, 4]", ndjson: false, itemsMax: 3) }
        #expect(tooManyArray?.status == .contentTooLarge && tooManyArray?.code == "too_many_items")
        for (text, ndjson) in [("[]", false), ("\n \n", true)] {
            let empty = refusal { try bulk(text, ndjson: ndjson) }
            #expect(empty?.status == .unprocessableContent && empty?.code == "invalid_request", "\(text)")
        }
        let notArray = refusal { try bulk(#"{"customer": "a", "quantity": 1}"#, ndjson: false) }
        #expect(notArray?.status == .badRequest && notArray?.code == "malformed_json")
        let badLine = refusal { try bulk("{\"customer\": \"a\", \"quantity\": 1}\n{oops", ndjson: true) }
        #expect(badLine?.status == .badRequest && badLine?.code == "malformed_json")
        #expect(badLine?.message.hasPrefix("line 2 of the NDJSON body is not valid JSON") == true)
    }

    @Test("bulk items are refused alone, and the answer pairs each item with its own outcome in request order")
    func bulkItems() throws {
        let values = try bulk(
            """
            {"customer": "a", "quantity": 1, "idempotency_key": "k-1"}
            {"customer": "b", "quantity": 99}
            {"customer": "c", "quantity": 1, "idempotency_key": "bad key"}
            {"customer": "d", "quantity": 2}
            [1]
            """, ndjson: true)
        let items = try values.map { try BulkValidation.item($0, eventID: 7, layout: generalAdmission, limits: limits) }
        let drafts = items.compactMap(\.draft)
        #expect(drafts.map(\.customer) == ["a", "d"])
        #expect(drafts.first?.idempotencyKey == "k-1")
        guard case .refused(let quantity) = items[1], case .refused(let key) = items[2], case .refused(let notObject) = items[4] else {
            Issue.record("items 1, 2 and 4 should be refused: \(items)")
            return
        }
        #expect(quantity.code == "invalid_request")
        #expect(key.code == "invalid_idempotency_key" && key.message.hasPrefix("idempotency_key must be"))
        #expect(notObject.code == "invalid_request")

        let first = UUID()
        let second = UUID()
        let body = BulkBody(items: items, written: [.replayed(first), .accepted(second)])
        #expect(body.results.map(\.index) == [0, 1, 2, 3, 4])
        var json = JSONWriter()
        body.write(to: &json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.buffer.readableBytesView)) as? [String: Any])
        #expect(object["accepted"] as? Int == 2 && object["rejected"] as? Int == 3)
        let results = try #require(object["results"] as? [[String: Any]])
        #expect(results[0]["id"] as? String == first.uuidString && results[0]["replayed"] as? Bool == true)
        #expect(results[0]["status_url"] as? String == "/intents/\(first.uuidString)" && results[0]["error"] == nil)
        #expect(results[1]["error"] as? String == "invalid_request" && results[1]["id"] == nil && results[1]["message"] != nil)
        #expect(results[3]["id"] as? String == second.uuidString && results[3]["replayed"] as? Bool == false)
        #expect(Set(results[2].keys) == ["error", "index", "message"])
        #expect(Set(results[3].keys) == ["id", "index", "replayed", "status", "status_url"])
    }

    @Test("a reused key in a bulk item is refused alone with idempotency_key_reused")
    func bulkKeyReused() throws {
        let values = try bulk(#"[{"customer": "a", "quantity": 1, "idempotency_key": "k-1"}]"#, ndjson: false)
        let items = try values.map { try BulkValidation.item($0, eventID: 7, layout: generalAdmission, limits: limits) }
        let body = BulkBody(items: items, written: [.keyReused(UUID())])
        guard case .refused(let error) = body.results.first?.outcome else {
            Issue.record("not refused")
            return
        }
        #expect(error.status == .unprocessableContent && error.code == "idempotency_key_reused" && error.message.contains("k-1"))
    }
}

/// The route table: each route is declared once, and the router and the 405 guard read the same declarations.
@Suite("API routes")
struct RouteTableTests {
    func table() throws -> RouteTable {
        let logger = Logger(label: "test")
        let store = Store(configuration: DatabaseConfiguration(host: "127.0.0.1", username: "nobody", database: "none"), logger: logger)
        return RouteTable.api(
            store: store, groupCommit: IntakeGroupCommit(store: store, logger: logger),
            watcher: OutcomeWatcher(store: store, logger: logger), configuration: APIConfiguration())
    }

    @Test("the 405 guard's table is every route's path with its methods, HEAD beside each GET")
    func allowedMethods() throws {
        let allowed = try table().allowedMethods
        #expect(
            allowed.map(\.path) == [
                "/health", "/ready", "/openapi.json", "/dashboard", "/dashboard/data", "/events", "/events/:event",
                "/events/:event/intents", "/events/:event/intents/batch", "/intents/:intent", "/intents/:intent/confirm",
                "/intents/:intent/release", "/intents/:intent/cancel",
            ])
        #expect(
            allowed.map(\.methods) == [
                [.get, .head], [.get, .head], [.get, .head], [.get, .head], [.get, .head], [.post], [.get, .head], [.post], [.post],
                [.get, .head], [.post], [.post], [.post],
            ])
    }

    @Test(
        "writes need a role (creating events and cancelling orders the admin's), reads need none but the dashboard's (admin, Basic credentials accepted)"
    )
    func roles() throws {
        let routes = try table().controllers.flatMap { controller in
            controller.routes.map { (RouteTable.join(controller.path, $0.path), $0.method, $0.role, $0.acceptsBasic) }
        }
        for (path, method, role, acceptsBasic) in routes {
            switch (method, path) {
            case (.post, "/events"), (.post, "/intents/:intent/cancel"): #expect(role == .admin && !acceptsBasic, "\(path)")
            case (.post, _): #expect(role == .producer && !acceptsBasic, "\(path)")
            case (.get, "/dashboard"), (.get, "/dashboard/data"): #expect(role == .admin && acceptsBasic, "\(path)")
            default: #expect(role == nil && !acceptsBasic, "\(method) \(path)")
            }
        }
    }

    @Test("paths join as the router joins them, and the guard matches :name segments against any one segment")
    func paths() {
        #expect(RouteTable.join("", "health") == "/health")
        #expect(RouteTable.join("/events", "") == "/events")
        #expect(RouteTable.join("/events", ":event") == "/events/:event")
        #expect(RouteTable.join("", "/intents/:intent") == "/intents/:intent")
        let guardTable = MethodGuardMiddleware<BasicRequestContext>(table: [("/events/:event", [.get, .head])])
        #expect(MethodGuardMiddleware<BasicRequestContext>.matches(guardTable.routes[0].segments, "/events/12".split(separator: "/")))
        #expect(!MethodGuardMiddleware<BasicRequestContext>.matches(guardTable.routes[0].segments, "/events/12/x".split(separator: "/")))
        #expect(guardTable.routes[0].allow == "GET, HEAD")
    }
}
