import BoxofficeCore
import BoxofficeStore
import Foundation

/// Intent requests checked without a database: parsed input (a JSON object, a path parameter, a
/// header) and the event's layout in, a typed request or an ``APIError`` out.
enum IntentValidation {
    /// The fields of a single intake body.
    static let fields: Set<String> = ["customer", "quantity", "section", "seats"]
    /// The fields of one bulk item: an intake body plus its own idempotency key.
    static let bulkItemFields = fields.union(["idempotency_key"])

    /// The `{intent}` path parameter: a UUID.
    static func intentID(_ text: String?) throws(APIError) -> UUID {
        let text = text ?? ""
        guard let id = UUID(uuidString: text) else {
            throw APIError(.badRequest, "invalid_id", "intent id must be a UUID like 5f0c…-…, got \(text.prefix(40))")
        }
        return id
    }

    /// `?wait=`: whole seconds from 0 to `max`; 0 when absent.
    static func waitSeconds(_ text: String?, max: Int) throws(APIError) -> Int {
        guard let text else { return 0 }
        guard let seconds = Int(text), (0...max).contains(seconds) else {
            throw APIError(.badRequest, "invalid_wait", "wait must be whole seconds from 0 to \(max)")
        }
        return seconds
    }

    /// The `Idempotency-Key` header, nil when absent. The IETF draft sends keys as structured-header
    /// strings ("…"); plain tokens are accepted too.
    static func idempotencyKeyHeader(_ raw: String?, lengthMax: Int) throws(APIError) -> String? {
        guard let raw else { return nil }
        let unquoted = raw.count >= 2 && raw.hasPrefix("\"") && raw.hasSuffix("\"") ? String(raw.dropFirst().dropLast()) : raw
        return try idempotencyKey(unquoted, name: "Idempotency-Key", lengthMax: lengthMax)
    }

    /// An idempotency key (`name` is where it came from): 1 to `lengthMax` visible ASCII characters.
    static func idempotencyKey(_ key: String, name: String, lengthMax: Int) throws(APIError) -> String {
        guard !key.isEmpty, key.utf8.count <= lengthMax, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw APIError(.badRequest, "invalid_idempotency_key", "\(name) must be 1 to \(lengthMax) visible ASCII characters")
        }
        return key
    }

    /// A validated intent from a request body (single, or one item of a bulk request).
    static func draft(
        _ body: JSONObject, eventID: EventID, layout: EventLayout, idempotencyKey: String?,
        limits: APIConfiguration
    ) throws -> IntentDraft {
        IntentDraft(
            eventID: eventID,
            customer: try body.string("customer", lengthMax: limits.customerLengthMax)!,
            request: try purchaseRequest(body, layout: layout, quantityMax: limits.quantityMax),
            idempotencyKey: idempotencyKey)
    }

    /// What the intent asks for: a quantity anywhere, a quantity in one section, or named seats.
    static func purchaseRequest(_ body: JSONObject, layout: EventLayout, quantityMax: Int) throws -> PurchaseRequest {
        let quantity = try body.integer("quantity", in: 1...quantityMax, required: !body.has("seats"))
        if let items = try body.array("seats", countMax: quantityMax) {
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
}

extension APIError {
    /// Names no intent: the id of the intent that holds the key is the capability to read it, and the
    /// caller may not be the buyer who made it.
    static func keyReused(_ key: String) -> APIError {
        APIError(
            .unprocessableContent, "idempotency_key_reused",
            "Idempotency-Key \(key) was already used with a different request; use a new key for a new request")
    }
}
