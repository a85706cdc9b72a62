import BoxofficeCore
import BoxofficeStore
import Hummingbird

/// One item of a bulk intake request once checked: an intent to write, or why it was refused.
/// Exactly one of the two, so an item can never be both written and refused, or neither.
enum BulkItem {
    case valid(IntentDraft)
    case refused(APIError)

    var draft: IntentDraft? {
        guard case .valid(let draft) = self else { return nil }
        return draft
    }
}

/// Bulk intake bodies checked without a database: bytes in, items (or an ``APIError`` for the whole body) out.
enum BulkValidation {
    /// The items of a bulk body: one JSON array, or one JSON value per line (NDJSON). Items are counted
    /// while the body is parsed: the one past `itemsMax` ends it as `413 too_many_items`.
    static func items(_ body: ByteBuffer, ndjson: Bool, itemsMax: Int) throws -> [JSONValue] {
        let items = ndjson ? try ndjsonItems(body, itemsMax: itemsMax) : try arrayItems(body, itemsMax: itemsMax)
        guard !items.isEmpty else { throw APIError.invalid("the batch holds no intents; send 1 to \(itemsMax)") }
        return items
    }

    /// One JSON value per non-blank line.
    static func ndjsonItems(_ body: ByteBuffer, itemsMax: Int) throws -> [JSONValue] {
        var items: [JSONValue] = []
        try body.withUnsafeReadableBytes { raw in
            var line = 0
            var start = 0
            while start <= raw.count {
                line += 1
                let end = raw[start...].firstIndex(of: UInt8(ascii: "\n")) ?? raw.count
                let slice = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                start = end + 1
                guard slice.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") }) else { continue }
                guard items.count < itemsMax else { throw tooManyItems(itemsMax) }
                items.append(try JSONValue.parse(slice, what: "line \(line) of the NDJSON body"))
            }
        }
        return items
    }

    /// The items of one top-level JSON array.
    static func arrayItems(_ body: ByteBuffer, itemsMax: Int) throws -> [JSONValue] {
        let parsed: JSONValue
        do {
            parsed = try JSONValue.parse(body, what: "the request body", topLevelItemsMax: itemsMax)
        } catch is JSONValue.TooManyItems {
            throw tooManyItems(itemsMax)
        }
        guard case .array(let items) = parsed else {
            throw APIError(
                .badRequest, "malformed_json",
                "the request body must be a JSON array of intents (or NDJSON with Content-Type: application/x-ndjson)")
        }
        return items
    }

    static func tooManyItems(_ itemsMax: Int) -> APIError {
        APIError(.contentTooLarge, "too_many_items", "a batch holds at most \(itemsMax) intents; split it")
    }

    /// One item checked on its own: an intake body plus its own optional `idempotency_key`.
    static func item(_ value: JSONValue, eventID: EventID, layout: EventLayout, limits: APIConfiguration) throws -> BulkItem {
        do {
            let body = try JSONObject(value, allowed: IntentValidation.bulkItemFields)
            let key = try body.rawString("idempotency_key").map { raw throws(APIError) in
                try IntentValidation.idempotencyKey(raw, name: "idempotency_key", lengthMax: limits.idempotencyKeyLengthMax)
            }
            return .valid(try IntentValidation.draft(body, eventID: eventID, layout: layout, idempotencyKey: key, limits: limits))
        } catch let error as APIError {
            return .refused(error)
        }
    }
}
