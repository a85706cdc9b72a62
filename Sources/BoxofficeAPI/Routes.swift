import BoxofficeConcurrency
import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging

/// The routes: validation and translation only; the Store does the work.
struct Routes: Sendable {
    let store: Store
    let batcher: IntakeBatcher
    let watcher: OutcomeWatcher
    let configuration: APIConfiguration
    let logger: Logger
    let bulkSlots: Slots

    /// Every path the API serves and the methods it answers there: the router registers exactly
    /// these, and ``MethodGuardMiddleware`` answers 405 with `Allow` for any other method on them.
    static let table: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/health", [.get, .head]), ("/ready", [.get, .head]), ("/openapi.json", [.get, .head]),
        ("/events", [.post]), ("/events/:event", [.get, .head]),
        ("/events/:event/intents", [.post]), ("/events/:event/intents/batch", [.post]),
        ("/intents/:intent", [.get, .head]),
    ]

    func register(on router: Router<BasicRequestContext>) {
        router.get("/health") { _, _ in try jsonResponse(["status": "ok"]) }
        router.get("/ready") { _, _ in try await ready() }
        let openAPI = OpenAPIDocument.bytes
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: openAPI))
        }
        router.post("/events") { request, _ in try await createEvent(request) }
        router.get("/events/:event") { _, context in try await event(context) }
        router.post("/events/:event/intents") { request, context in try await enqueue(request, context) }
        router.post("/events/:event/intents/batch") { request, context in try await enqueueBatch(request, context) }
        router.get("/intents/:intent") { request, context in try await status(request, context) }
    }

    /// The event's layout: from this process's cache when it has one, else read under the bound.
    func layout(of id: EventID, deadline: ContinuousClock.Instant) async throws -> EventLayout? {
        if let cached = store.cachedLayout(of: id) { return cached }
        return try await database(until: deadline) { try await store.layout(of: id) }
    }

    /// When a request that arrives now must have its answer from the database: every wait of the
    /// request on the database (leases, statements, the intake group) shares this one bound.
    func requestDeadline() -> ContinuousClock.Instant { .now + .milliseconds(configuration.databaseWaitMilliseconds) }

    /// Runs a Store call under the request's database bound (``APIConfiguration/databaseWaitMilliseconds``).
    func database<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await database(until: requestDeadline(), body)
    }

    /// Runs a Store call that must finish by `deadline`; past it, 503.
    func database<T: Sendable>(until deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withTimeout(deadline - .now, body)
    }

    func ready() async throws -> Response {
        guard await store.isReachable() else { throw APIError.databaseUnavailable }
        return try jsonResponse(["status": "ready"])
    }

    func createEvent(_ request: Request) async throws -> Response {
        try configuration.access.authorize(request, as: .admin)
        let body = try await JSONObject.read(request, bodyBytesMax: configuration.bodyBytesMax, allowed: ["name", "capacity", "sections"])
        let name = try body.string("name", lengthMax: configuration.eventNameLengthMax)!
        let layout: EventLayout
        switch (body.has("capacity"), body.has("sections")) {
        case (true, false):
            layout = .generalAdmission(capacity: try body.integer("capacity", in: 1...EventLayout.capacityMax)!)
        case (false, true):
            var sections: [SectionLayout] = []
            for item in try body.array("sections", countMax: configuration.sectionsMax) ?? [] {
                guard case .object(let fields) = item else { throw APIError.invalid("each of sections must be an object") }
                let unknown = Set(fields.keys).subtracting(["name", "rows", "seats_per_row"])
                guard unknown.isEmpty else { throw APIError.invalid("unknown field(s) in a section: \(unknown.sorted().joined(separator: ", "))") }
                let section = JSONObject(fields: fields)
                let sectionName = try section.string("name", lengthMax: SectionLayout.nameLengthMax)!
                guard SectionLayout.isValidName(sectionName) else {
                    throw APIError.invalid("section name \(sectionName) must be 1 to \(SectionLayout.nameLengthMax) letters, digits or _")
                }
                guard !sections.contains(where: { $0.name == sectionName }) else { throw APIError.invalid("section \(sectionName) is listed twice") }
                sections.append(SectionLayout(
                    name: sectionName,
                    rows: try section.integer("rows", in: 1...SectionLayout.rowsMax)!,
                    seatsPerRow: try section.integer("seats_per_row", in: 1...SectionLayout.seatsPerRowMax)!))
            }
            layout = .seatMap(sections)
            guard layout.capacity <= EventLayout.capacityMax else {
                throw APIError.invalid("the seat map holds \(layout.capacity) seats; at most \(EventLayout.capacityMax) are allowed")
            }
        default:
            throw APIError.invalid("give either capacity (general admission) or sections (a seat map), not both or neither")
        }
        let summary = try await database { try await store.createEvent(name: name, layout: layout) }
        return try jsonResponse(EventBody(summary), status: .created, headers: [.location: "/events/\(summary.id)"])
    }

    func eventID(_ context: BasicRequestContext) throws -> EventID {
        let text = context.parameters.get("event") ?? ""
        guard let id = EventID(text), id > 0 else { throw APIError(.badRequest, "invalid_id", "event id must be a positive integer, got \(text.prefix(40))") }
        return id
    }

    func eventNotFound(_ id: EventID) -> APIError { APIError(.notFound, "event_not_found", "there is no event \(id)") }

    func event(_ context: BasicRequestContext) async throws -> Response {
        let id = try eventID(context)
        guard let summary = try await database({ try await store.eventSummary(id) }) else { throw eventNotFound(id) }
        return try jsonResponse(EventBody(summary))
    }

    static let intentFields: Set<String> = ["customer", "quantity", "section", "seats"]

    func enqueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try configuration.access.authorize(request, as: .producer)
        let id = try eventID(context)
        let key = try request.headers[HTTPField.Name("Idempotency-Key")!].map { raw throws(APIError) in
            // The IETF draft sends keys as structured-header strings ("…"); plain tokens are accepted too.
            try idempotencyKey(raw.count >= 2 && raw.hasPrefix("\"") && raw.hasSuffix("\"") ? String(raw.dropFirst().dropLast()) : raw,
                               name: "Idempotency-Key")
        }
        let body = try await JSONObject.read(request, bodyBytesMax: configuration.bodyBytesMax, allowed: Self.intentFields)
        // Stamped once the body is in (reading it has its own deadline): finding the event and the
        // group commit share this one bound.
        let deadline = requestDeadline()
        guard let layout = try await layout(of: id, deadline: deadline) else { throw eventNotFound(id) }
        let draft = try intentDraft(body, eventID: id, layout: layout, idempotencyKey: key)
        let result: IntakeResult
        do {
            result = try await batcher.submit(draft, deadline: deadline)
        } catch let error as IntakeBatcher.BatcherError {
            switch error {
            case .overloaded: throw APIError.unavailable("overloaded", "too many intents are waiting to be written; retry shortly")
            case .stopped: throw APIError.unavailable("shutting_down", "this server is shutting down; retry on another")
            case .deadlineExceeded, .databaseFailing: throw APIError.databaseUnavailable
            }
        }
        switch result {
        case .accepted(let publicID), .replayed(let publicID):
            var headers: HTTPFields = [.location: "/intents/\(publicID.text)"]
            if case .replayed = result { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
            return AcceptedBody(id: publicID).response(headers: headers)
        case .keyReused:
            throw keyReused(key ?? "")
        }
    }

    /// Bulk intake for producers that batch on their side: a JSON array or NDJSON of intents, written
    /// with one statement (one fsync). Each item succeeds or fails on its own; a malformed body, an
    /// unknown event or too many items refuse the whole request and write nothing.
    func enqueueBatch(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try configuration.access.authorize(request, as: .producer)
        let id = try eventID(context)
        // A slot before the body is read: at most bulkRequestsMax bodies are buffered at once.
        guard bulkSlots.acquire() else {
            throw APIError.unavailable("overloaded", "\(configuration.bulkRequestsMax) bulk requests are already in progress here; retry shortly")
        }
        defer { bulkSlots.release() }
        let items = try batchItems(try await collectBody(request, bytesMax: configuration.batchBodyBytesMax),
                                   ndjson: request.headers[.contentType]?.lowercased().hasPrefix("application/x-ndjson") ?? false)
        let deadline = requestDeadline()
        guard let layout = try await layout(of: id, deadline: deadline) else { throw eventNotFound(id) }

        var results: [BatchItemBody?] = Array(repeating: nil, count: items.count)
        var drafts: [(index: Int, draft: IntentDraft)] = []
        for (index, item) in items.enumerated() {
            do {
                let body = try JSONObject(item, allowed: Self.intentFields.union(["idempotency_key"]))
                let key = try body.rawString("idempotency_key").map { raw throws(APIError) in try idempotencyKey(raw, name: "idempotency_key") }
                drafts.append((index, try intentDraft(body, eventID: id, layout: layout, idempotencyKey: key)))
            } catch let error as APIError {
                results[index] = BatchItemBody(index: index, refused: error)
            }
        }
        let written = try await database(until: deadline) { [drafts] in try await store.enqueue(drafts.map(\.draft), sendBefore: deadline) }
        for ((index, draft), result) in zip(drafts, written) {
            switch result {
            case .accepted(let publicID): results[index] = BatchItemBody(index: index, accepted: publicID, replayed: false)
            case .replayed(let publicID): results[index] = BatchItemBody(index: index, accepted: publicID, replayed: true)
            case .keyReused: results[index] = BatchItemBody(index: index, refused: keyReused(draft.idempotencyKey ?? ""))
            }
        }
        let answered = results.compactMap { $0 }
        let accepted = answered.count { $0.id != nil }
        return BatchBody(accepted: accepted, rejected: answered.count - accepted, results: answered).response()
    }

    /// The items of a bulk body: one JSON array, or one JSON value per line (NDJSON).
    func batchItems(_ body: ByteBuffer, ndjson: Bool) throws -> [JSONValue] {
        var items: [JSONValue] = []
        if ndjson {
            try body.withUnsafeReadableBytes { raw in
                var line = 0
                var start = 0
                while start <= raw.count {
                    line += 1
                    let end = raw[start...].firstIndex(of: UInt8(ascii: "\n")) ?? raw.count
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    start = end + 1
                    guard slice.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") }) else { continue }
                    guard items.count < configuration.batchItemsMax else { throw tooManyItems() }
                    items.append(try JSONValue.parse(slice, what: "line \(line) of the NDJSON body"))
                }
            }
        } else {
            let parsed: JSONValue
            do {
                parsed = try JSONValue.parse(body, what: "the request body", topLevelItemsMax: configuration.batchItemsMax)
            } catch is JSONValue.TooManyItems {
                throw tooManyItems()
            }
            guard case .array(let array) = parsed else {
                throw APIError(.badRequest, "malformed_json", "the request body must be a JSON array of intents (or NDJSON with Content-Type: application/x-ndjson)")
            }
            items = array
        }
        guard !items.isEmpty else { throw APIError.invalid("the batch holds no intents; send 1 to \(configuration.batchItemsMax)") }
        return items
    }

    func tooManyItems() -> APIError {
        APIError(.contentTooLarge, "too_many_items", "a batch holds at most \(configuration.batchItemsMax) intents; split it")
    }

    /// Names no intent: the id of the intent that holds the key is the capability to read it, and the
    /// caller may not be the buyer who made it.
    func keyReused(_ key: String) -> APIError {
        APIError(.unprocessableContent, "idempotency_key_reused",
                 "Idempotency-Key \(key) was already used with a different request; use a new key for a new request")
    }

    /// A validated intent from a request body (single or one item of a batch).
    func intentDraft(_ body: JSONObject, eventID: EventID, layout: EventLayout, idempotencyKey: String?) throws -> IntentDraft {
        IntentDraft(
            eventID: eventID,
            customer: try body.string("customer", lengthMax: configuration.customerLengthMax)!,
            request: try purchaseRequest(body, layout: layout),
            idempotencyKey: idempotencyKey)
    }

    func idempotencyKey(_ key: String, name: String) throws(APIError) -> String {
        guard !key.isEmpty, key.utf8.count <= configuration.idempotencyKeyLengthMax, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw APIError(.badRequest, "invalid_idempotency_key", "\(name) must be 1 to \(configuration.idempotencyKeyLengthMax) visible ASCII characters")
        }
        return key
    }

    func purchaseRequest(_ body: JSONObject, layout: EventLayout) throws -> PurchaseRequest {
        let quantity = try body.integer("quantity", in: 1...configuration.quantityMax, required: !body.has("seats"))
        if let items = try body.array("seats", countMax: configuration.quantityMax) {
            guard case .seatMap(let sections) = layout else { throw APIError.invalid("this event is general admission: it has no seats to name") }
            guard !body.has("section") else { throw APIError.invalid("give either section or seats, not both") }
            var labels: [SeatLabel] = []
            for item in items {
                guard case .string(let text) = item, let label = SeatLabel(parsing: text) else {
                    throw APIError.invalid("seats must be labels like A-3-17 (SECTION-ROW-SEAT)")
                }
                guard sections.contains(where: { $0.contains(label) }) else {
                    throw APIError(.unprocessableContent, "unknown_seat", "seat \(label) does not exist in this event")
                }
                guard !labels.contains(label) else { throw APIError.invalid("seat \(label) is listed twice") }
                labels.append(label)
            }
            if let quantity, quantity != labels.count {
                throw APIError.invalid("quantity \(quantity) does not match the \(labels.count) seats named")
            }
            return .seats(labels)
        }
        guard let quantity else { throw APIError.invalid("quantity is required") }
        if let section = try body.string("section", lengthMax: SectionLayout.nameLengthMax, required: false) {
            guard case .seatMap(let sections) = layout else { throw APIError.invalid("this event is general admission: it has no sections") }
            guard sections.contains(where: { $0.name == section }) else {
                throw APIError(.unprocessableContent, "unknown_section", "section \(section) does not exist in this event")
            }
            return .inSection(section, quantity: quantity)
        }
        return .anywhere(quantity: quantity)
    }

    func status(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let text = context.parameters.get("intent") ?? ""
        guard let id = UUID(uuidString: text) else {
            throw APIError(.badRequest, "invalid_id", "intent id must be a UUID like 5f0c…-…, got \(text.prefix(40))")
        }
        var waitSeconds = 0
        if let wait = request.uri.queryParameters.get("wait") {
            guard let seconds = Int(wait), (0...configuration.longPollSecondsMax).contains(seconds) else {
                throw APIError(.badRequest, "invalid_wait", "wait must be whole seconds from 0 to \(configuration.longPollSecondsMax)")
            }
            waitSeconds = seconds
        }
        guard var status = try await database({ try await store.status(of: id) }) else {
            throw APIError(.notFound, "intent_not_found", "there is no intent \(id)")
        }
        var headers: HTTPFields = [:]
        if case .pending = status.state, waitSeconds > 0 {
            // The recheck reads only the outcome (one index probe), not the queue position.
            let waited = await watcher.wait(for: id, event: status.eventID, timeout: .seconds(waitSeconds)) {
                try? await database { try await store.decidedStatuses(among: [id])[id] }
            }
            switch waited {
            case .decided(let decided):
                status = decided
            case .timedOut:
                // Still pending: read the status again for its current queue position.
                status = try await database { try await store.status(of: id) } ?? status
            case .refused:
                // Too many long-polls here or on this intent: the status as it stands, and when to ask again.
                headers[.retryAfter] = "\(Int.random(in: APIError.retryAfterSeconds))"
            }
        }
        return StatusBody(status).response(headers: headers)
    }
}
