import Foundation
import Testing

@testable import BoxofficeAPI

/// Request validation without a server: integer fields are integer literals, bulk bodies are counted while parsed.
@Suite("Request bounds")
struct RequestBoundsTests {
    func object(_ text: String) throws -> JSONObject {
        let value = try Array(text.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw, what: "the body") }
        return try JSONObject(value, allowed: ["quantity"])
    }

    @Test(
        "quantities accept integer literals only: fractions, exponents and near-integers through a Double are refused",
        arguments: [
            "10.0000000000000001", "1.9999999999999999", "2.0", "2e0", "0.2e1", "20E-1", "9223372036854775807", "-1", "0", "11", "\"2\"",
        ])
    func refusedQuantities(_ literal: String) throws {
        #expect(throws: APIError.self) { try object(#"{"quantity": \#(literal)}"#).integer("quantity", in: 1...10) }
    }

    @Test("integer literals are read exactly", arguments: [("1", 1), ("10", 10), ("7", 7)])
    func acceptedQuantities(_ literal: String, _ expected: Int) throws {
        #expect(try object(#"{"quantity": \#(literal)}"#).integer("quantity", in: 1...10) == expected)
    }

    @Test("a top-level array past its item bound fails as too many items at the first extra item, not after parsing the rest")
    func itemsCountedWhileParsing() throws {
        // The extra item is malformed: only an early stop can call this "too many" rather than malformed.
        let text = "[" + Array(repeating: "1", count: 1_000).joined(separator: ",") + ", nonsense"
        #expect(throws: JSONValue.TooManyItems.self) {
            try Array(text.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw, what: "the body", topLevelItemsMax: 1_000) }
        }
        let exact = "[" + Array(repeating: "1", count: 1_000).joined(separator: ",") + "]"
        let parsed = try Array(exact.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw, what: "the body", topLevelItemsMax: 1_000) }
        guard case .array(let items) = parsed else {
            Issue.record("not an array")
            return
        }
        #expect(items.count == 1_000)
        // Nested arrays are not top-level items.
        let nested = "[[" + Array(repeating: "1", count: 5_000).joined(separator: ",") + "]]"
        #expect((try? Array(nested.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw, what: "the body", topLevelItemsMax: 1) }) != nil)
    }
}
