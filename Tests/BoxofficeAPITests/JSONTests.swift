import BoxofficeStore
import Foundation
import Hummingbird
import Testing

@testable import BoxofficeAPI

/// The intake parser against Foundation's `JSONDecoder` (what intake used before) as the oracle: same values where both
/// accept, never accepting what Foundation refuses, and refusing more only on purpose (a key given
/// twice, nesting past ``JSONParser/depthMax``, trailing commas, which RFC 8259 forbids).
@Suite("JSON reader and writer")
struct JSONTests {
    func parse(_ text: String) -> Result<JSONValue, JSONParser.Failure> {
        Array(text.utf8).withUnsafeBytes { raw in Result { () throws(JSONParser.Failure) in try JSONParser.parse(raw) } }
    }

    /// Foundation's reading of `text` (JSONDecoder, as intake used before), or nil when it refuses it.
    func oracle(_ text: String) -> JSONValue? { Self.oracle(Data(text.utf8)) }

    static func oracle(_ data: Data) -> JSONValue? {
        (try? JSONDecoder().decode(Oracle.self, from: data))?.value
    }

    /// Any JSON value through Foundation's decoder.
    struct Oracle: Decodable {
        let value: JSONValue

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                value = .null
            } else if let flag = try? container.decode(Bool.self) {
                value = .bool(flag)
            } else if let number = try? container.decode(Double.self) {
                value = .number(JSONNumber(number))
            } else if let text = try? container.decode(String.self) {
                value = .string(text)
            } else if let items = try? container.decode([Oracle].self) {
                value = .array(items.map(\.value))
            } else {
                value = .object(try container.decode([String: Oracle].self).mapValues(\.value))
            }
        }
    }

    @Test(
        "valid documents parse to the values Foundation reads",
        arguments: [
            #"{"customer": "c-1", "quantity": 2}"#,
            #"  {"customer":"ünïcødé ✓ 🎟","quantity":1,"seats":["A-1-1","A-1-2"]}  "#,
            #"{"a": [1, -0, 0.5, -12.25e3, 1E-2, 123456789012345678, 9007199254740993], "b": {"c": [true, false, null]}}"#,
            #"{"escapes": "quote \" backslash \\ slash \/ \b\f\n\r\t \u00e9 \uD83C\uDF9F \u0000"}"#,
            #"[]"#, #"{}"#, #"[[[]]]"#, #""text""#, "0", "-1", "1.5", "true", "null",
        ])
    func valid(_ text: String) throws {
        let expected = try #require(oracle(text))
        #expect(try parse(text).get() == expected)
    }

    @Test(
        "malformed documents are refused, with the byte where they went wrong",
        arguments: [
            ("", 0), ("   ", 3), ("{", 1), (#"{"a" 1}"#, 5), (#"{"a": 1,}"#, 8), ("[1,]", 3), ("[1 2]", 3),
            (#"{"a": 01}"#, 7), ("-", 1), ("1.", 2), ("1e", 2), (".5", 0), ("+1", 0), ("NaN", 0), ("tru", 0),
            (#""open"#, 5), ("\"tab\there\"", 4), (#""\x""#, 1), (#""\u12""#, 3), (#""\uD800""#, 1),
            (#""\uDC00 alone""#, 1), (#"{"a": 1} extra"#, 9), (#"{a: 1}"#, 1), ("1e400", 0), (#"[1] [2]"#, 4),
        ])
    func malformed(_ text: String, offset: Int) {
        // Foundation's decoder accepts trailing commas; RFC 8259 (and this parser) does not.
        #expect(oracle(text) == nil || text.hasSuffix(",]") || text.hasSuffix(",}"), "Foundation accepts \(text)")
        guard case .failure(let failure) = parse(text) else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(failure.offset == offset, "\(text): \(failure.reason)")
    }

    @Test("stricter than Foundation on purpose: duplicate keys, deep nesting, invalid UTF-8")
    func stricter() {
        #expect(throws: JSONParser.Failure.self) { try parse(#"{"quantity": 1, "quantity": 9}"#).get() }
        let deep = String(repeating: "[", count: JSONParser.depthMax + 1) + String(repeating: "]", count: JSONParser.depthMax + 1)
        #expect(throws: JSONParser.Failure.self) { try parse(deep).get() }
        let deepest = String(repeating: "[", count: JSONParser.depthMax) + String(repeating: "]", count: JSONParser.depthMax)
        #expect((try? parse(deepest).get()) != nil)
        // A megabyte of brackets is refused at depth 33, not by exhausting the stack.
        #expect(throws: JSONParser.Failure.self) { try parse(String(repeating: "[", count: 1 << 20)).get() }
        let invalidUTF8: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParser.Failure.self) { try invalidUTF8.withUnsafeBytes { raw throws(JSONParser.Failure) in try JSONParser.parse(raw) } }
    }

    /// Random mutations of valid documents (a byte dropped, doubled or replaced): wherever Foundation
    /// refuses, so do we; wherever both accept, the values agree.
    @Test("agrees with Foundation on 20,000 mutated documents")
    func mutations() {
        let seeds = [
            #"{"customer": "c-1", "quantity": 2, "section": "A"}"#,
            #"{"seats": ["A-1-1", "B-2-3"], "customer": "\u00e9\n", "n": [1.5, -2e3, true, null]}"#,
            #"[{"a": {"b": [0, 10, "x"]}}, "y", 3]"#,
        ]
        let alphabet = Array(#"{}[]:,"\ -+.0123456789eEtrufalsn\/u"#.utf8) + [0x0A, 0x09, 0x00, 0xC3, 0xA9]
        var state: UInt64 = 0x5EED
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        var disagreements: [String] = []
        for round in 0..<20_000 {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0...next(3) {
                let at = next(bytes.count)
                switch next(3) {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(bytes[at], at: at)
                default: bytes[at] = alphabet[next(alphabet.count)]
                }
                if bytes.isEmpty { bytes = [0x30] }
            }
            let ours = bytes.withUnsafeBytes { raw in try? JSONParser.parse(raw) }
            let theirs = Self.oracle(Data(bytes))
            let text = String(decoding: bytes, as: UTF8.self)
            switch (ours, theirs) {
            case (.some(let ours), .some(let theirs)) where ours != theirs: disagreements.append("values differ: \(text)")
            case (.some, .none): disagreements.append("we accept what Foundation refuses: \(text)")
            default: break
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }

    @Test("the writer's output reads back as what was written, escapes included")
    func writer() throws {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} ünïcødé 🎟 slash /"
        let id = RandomUUID.make()
        var json = JSONWriter()
        json.object { json in
            json.field("id", id)
            json.field("index", -42)
            json.field("message", nasty)
            json.field("missing", nil as String?)
            json.field("replayed", true)
            json.field("seats", strings: ["A-1-1", nasty])
            json.field("status_url", prefix: "/intents/", id)
        }
        let text = String(buffer: json.buffer)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["id"] as? String == id.uuidString)
        #expect(object["index"] as? Int == -42)
        #expect(object["message"] as? String == nasty)
        #expect(object["missing"] == nil)
        #expect(object["replayed"] as? Bool == true)
        #expect(object["seats"] as? [String] == ["A-1-1", nasty])
        #expect(object["status_url"] as? String == "/intents/\(id.uuidString)")
        #expect(Array(object.keys).sorted() == ["id", "index", "message", "replayed", "seats", "status_url"])
        #expect(try parse(text).get() == oracle(text))
    }

    @Test("random ids are version 4, RFC 4122 variant, and distinct")
    func randomIDs() {
        let ids = (0..<10_000).map { _ in RandomUUID.make() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(1_000) {
            #expect(id.uuid.6 >> 4 == 4)
            #expect(id.uuid.8 >> 6 == 0b10)
            #expect(UUID(uuidString: id.text) == id)
            #expect(id.text == id.uuidString)
        }
    }
}
