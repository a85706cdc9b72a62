// Why the API reads JSON with its own parser (JSONParser.swift) instead of Foundation's JSONDecoder
// into a typed Decodable request: measured, not assumed (issue 11, item 9; 2 December 2026).
//
// The alternative was built for the intake bodies (single and bulk NDJSON lines): JSONDecoder into a
// `Decodable` struct (customer, quantity, section, seats, idempotency_key; unknown keys refused), then
// the same validation (commit 505553a on 70ed731, reverted by the next one). One release build held
// both, switched by an environment variable (BOXOFFICE_JSON=foundation) that the bench's API process
// inherits; runs alternated hand-written / Foundation, 3 each:
//
//     swift build -c release --product boxoffice --scratch-path .build-release
//     boxoffice bench --scenarios http --http-rates "" --saturation-connections 64,256 --http-seconds 8
//
// (API and 2 workers as processes, private PostgreSQL, wrk 4.1.0 with one thread; a shared 2-core
// machine at load average 5–6, so single runs vary by ±20%.)
//
// | closed loop                                   | hand-written                        | JSONDecoder → Decodable             |
// |-----------------------------------------------|-------------------------------------|-------------------------------------|
// | POST /events/{id}/intents, 64 connections     | 5,484 / 5,807 / 7,076 req/s (6,122) | 7,078 / 6,323 / 5,031 req/s (6,144) |
// | POST /events/{id}/intents, 256 connections    | 8,698 / 10,011 / 8,654 (9,121)      | 7,474 / 8,800 / 8,712 (8,329)       |
// | bulk NDJSON, 1,000 per request, 8 connections | 65,214 / 71,195 / 67,701 intents/s  | 59,004 / 58,425 / 55,769 intents/s  |
// |                                               | (68,037)                            | (57,733)                            |
// | API peak RSS during bulk intake               | 53 / 52 / 53 MB                     | 53 / 52 / 52 MB                     |
//
// Single intake: no difference beyond the noise (the request is HTTP and a group commit; its body is
// 40 bytes). Bulk intake: the hand-written reader is 18% faster, and every one of its runs beat every
// Foundation run. Memory: no difference. Beyond speed, JSONDecoder would lose what the tests pin: it
// reads `2.0`, `2e0` and `10.0000000000000001` into an `Int` (as 2, 2 and 10), keeps the first of two
// equal keys, accepts trailing commas (`{"quantity": 1,}`), and cannot count a top-level array's items
// while parsing (bulk bodies are refused at item 1,001, not after decoding a million). So the reader
// stays. The writer (JSONWriter.swift) was not measured again here; its justification is its own.

import Foundation
import Hummingbird

/// Any JSON value, parsed without a schema so the API can name the exact field that is wrong.
enum JSONValue: Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses `bytes` as one JSON value; malformed input is a 400 that says where it came from and
    /// at which byte it went wrong.
    static func parse(_ bytes: ByteBuffer, what: String, topLevelItemsMax: Int = .max) throws -> JSONValue {
        try bytes.withUnsafeReadableBytes { raw in try parse(raw, what: what, topLevelItemsMax: topLevelItemsMax) }
    }

    /// Thrown when a top-level array holds more than the `topLevelItemsMax` items asked for.
    struct TooManyItems: Error {}

    static func parse(_ raw: UnsafeRawBufferPointer, what: String, topLevelItemsMax: Int = .max) throws -> JSONValue {
        do {
            return try JSONParser.parse(raw, topLevelItemsMax: topLevelItemsMax)
        } catch  where error.tooManyItems {
            throw TooManyItems()
        } catch {
            throw APIError(.badRequest, "malformed_json", "\(what) is not valid JSON: \(error.reason) (at byte \(error.offset))")
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON number: its value, and for an integer literal (no fraction, no exponent) of up to 18
/// digits its exact integer, so integer fields never go through a `Double`.
struct JSONNumber: Equatable {
    let value: Double
    /// Written without a fraction or an exponent (`2`, not `2.0` or `2e0`).
    let isIntegerLiteral: Bool
    /// The exact value of an integer literal of up to 18 digits.
    let integer: Int?

    init(value: Double, isIntegerLiteral: Bool, integer: Int?) {
        self.value = value
        self.isIntegerLiteral = isIntegerLiteral
        self.integer = integer
    }

    /// A number known only by its value (as Foundation's decoder reports it).
    init(_ value: Double) { self.init(value: value, isIntegerLiteral: false, integer: nil) }

    /// Two numbers are equal when they denote the same value, however they were written.
    static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool { lhs.value == rhs.value }
}

/// Collects a request body up to `bytesMax` bytes; a larger one is a 413 and is never buffered whole.
/// A body whose `Content-Length` already says it is too large is refused before a byte of it is read,
/// and the connection is closed after the answer (the unread body would otherwise have to be drained).
func collectBody(_ request: Request, bytesMax: Int) async throws -> ByteBuffer {
    let tooLarge = APIError(.contentTooLarge, "body_too_large", "the request body is larger than \(bytesMax) bytes", headers: [.connection: "close"])
    if let announced = request.headers[.contentLength].flatMap({ Int($0) }), announced > bytesMax { throw tooLarge }
    do {
        return try await request.body.collect(upTo: bytesMax)
    } catch {
        throw tooLarge
    }
}

/// A JSON object body with typed accessors that fail with 422 and the field's name.
struct JSONObject {
    let fields: [String: JSONValue]

    /// Collects the body (bounded), parses it, and insists on an object with only `allowed` keys.
    static func read(_ request: Request, bodyBytesMax: Int, allowed: Set<String>) async throws -> JSONObject {
        let value = try JSONValue.parse(try await collectBody(request, bytesMax: bodyBytesMax), what: "the request body")
        guard case .object = value else {
            throw APIError(.badRequest, "malformed_json", "the request body must be a JSON object, got \(value.typeName)")
        }
        return try JSONObject(value, allowed: allowed)
    }

    init(fields: [String: JSONValue]) { self.fields = fields }

    /// An object with only `allowed` keys; anything else is a 422 that names the offending keys.
    init(_ value: JSONValue, allowed: Set<String>) throws {
        guard case .object(let fields) = value else { throw APIError.invalid("expected a JSON object, got \(value.typeName)") }
        let unknown = Set(fields.keys).subtracting(allowed)
        guard unknown.isEmpty else {
            throw APIError.invalid(
                "unknown field(s) \(unknown.sorted().joined(separator: ", ")); allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        self.fields = fields
    }

    func has(_ key: String) -> Bool { fields[key].map { $0 != .null } ?? false }

    func string(_ key: String, lengthMax: Int, required: Bool = true) throws -> String? {
        guard let value = fields[key], value != .null else {
            if required { throw APIError.invalid("\(key) is required") }
            return nil
        }
        guard case .string(let text) = value else { throw APIError.invalid("\(key) must be a string, got \(value.typeName)") }
        if Self.isPlainASCII(text, lengthMax: lengthMax) { return text }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.unicodeScalars.count <= lengthMax,
            trimmed.unicodeScalars.allSatisfy({ !$0.properties.isDefaultIgnorableCodePoint && $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw APIError.invalid("\(key) must be 1 to \(lengthMax) printable characters")
        }
        return trimmed
    }

    /// True for 1 to `lengthMax` printable ASCII characters with no space at either end: what nearly
    /// every client sends, accepted without the Unicode checks below (which it would pass).
    static func isPlainASCII(_ text: String, lengthMax: Int) -> Bool {
        let utf8 = text.utf8
        guard let first = utf8.first, let last = utf8.last, first != 0x20, last != 0x20, utf8.count <= lengthMax else { return false }
        return utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// A string field exactly as sent (no trimming), nil when absent or null.
    func rawString(_ key: String) throws -> String? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .string(let text) = value else { throw APIError.invalid("\(key) must be a string, got \(value.typeName)") }
        return text
    }

    func integer(_ key: String, in range: ClosedRange<Int>, required: Bool = true) throws -> Int? {
        guard let value = fields[key], value != .null else {
            if required { throw APIError.invalid("\(key) is required") }
            return nil
        }
        guard case .number(let number) = value, number.isIntegerLiteral else {
            throw APIError.invalid("\(key) must be an integer written without a fraction or exponent (like 2), got \(value.typeName)")
        }
        guard let integer = number.integer, range.contains(integer) else {
            throw APIError.invalid("\(key) must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return integer
    }

    func array(_ key: String, countMax: Int) throws -> [JSONValue]? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .array(let items) = value else { throw APIError.invalid("\(key) must be an array, got \(value.typeName)") }
        guard !items.isEmpty, items.count <= countMax else { throw APIError.invalid("\(key) must hold 1 to \(countMax) items") }
        return items
    }
}

/// Encodes `value` as a JSON response.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    var headers = headers
    headers[.contentType] = "application/json; charset=utf-8"
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}
