/// A strict RFC 8259 parser from bytes to ``JSONValue``: the intake hot path.
///
/// Kept over `JSONDecoder` into a typed `Decodable` request by a measurement (the header of
/// JSON.swift): 18% more bulk intents/s, and the strictness below. It reads the bytes once,
/// allocates only the strings, arrays and objects it returns, and is bounded: nesting deeper than
/// ``depthMax`` is refused, so a hostile body cannot exhaust the stack.
///
/// It is stricter than JSONDecoder where that helps the API say what is wrong: a key given twice
/// in one object is refused instead of silently keeping one of the two values, a trailing comma is
/// malformed, and a number keeps whether it was written as an integer literal.
struct JSONParser {
    /// Deepest nesting of arrays and objects accepted; no intake or event body needs more than 3.
    static let depthMax = 32

    struct Failure: Error, Equatable {
        /// Byte offset where the input stopped making sense.
        let offset: Int
        let reason: String
        /// The input may be fine, but its top-level array holds more items than the caller accepts.
        var tooManyItems = false
    }

    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    private var topLevelItemsMax = Int.max

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Parses `bytes` as exactly one JSON value, surrounded by optional whitespace.
    ///
    /// `topLevelItemsMax`: a top-level array with more items fails with ``Failure/tooManyItems`` as
    /// soon as the next item starts, before it is parsed: a bulk body is counted while it is read.
    static func parse(_ bytes: UnsafeRawBufferPointer, topLevelItemsMax: Int = .max) throws(Failure) -> JSONValue {
        var parser = JSONParser(bytes)
        parser.topLevelItemsMax = topLevelItemsMax
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.failure("unexpected data after the JSON value") }
        return value
    }

    private func failure(_ reason: String) -> Failure { Failure(offset: index, reason: reason) }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard let byte = current else { throw failure("expected a value, found the end of the input") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw failure("expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw failure("expected \(word)") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw failure("expected \(word)")
        }
        index += count
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(Failure) {
        guard current == byte else { throw failure("expected \(what)") }
        index += 1
    }

    private mutating func object(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.depthMax else { throw failure("nested deeper than \(Self.depthMax) levels") }
        index += 1  // {
        var fields: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(fields)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw failure("expected a quoted key") }
            let keyOffset = index
            let key = try string()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after a key")
            skipWhitespace()
            let value = try value(depth: depth)
            guard fields.updateValue(value, forKey: key) == nil else {
                throw Failure(offset: keyOffset, reason: "key \(key.prefix(40)) appears twice")
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(fields)
            default: throw failure("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array(depth: Int) throws(Failure) -> JSONValue {
        guard depth <= Self.depthMax else { throw failure("nested deeper than \(Self.depthMax) levels") }
        index += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            if depth == 1 && items.count == topLevelItemsMax {
                throw Failure(offset: index, reason: "more than \(topLevelItemsMax) items", tooManyItems: true)
            }
            items.append(try value(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(items)
            default: throw failure("expected ',' or ']' in an array")
            }
        }
    }

    /// A string starting at the opening quote; the text must be valid UTF-8 with no raw control characters.
    private mutating func string() throws(Failure) -> String {
        index += 1  // "
        let start = index
        // Fast path: no escapes, which is every string a well-behaved client sends.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self) else {
                    throw Failure(offset: start, reason: "a string is not valid UTF-8")
                }
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw failure("a control character inside a string must be escaped") }
            index += 1
        }
        guard index < bytes.count else { throw failure("a string is not closed") }
        var buffer = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: buffer, as: UTF8.self) else {
                    throw Failure(offset: start, reason: "a string is not valid UTF-8")
                }
                index += 1
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard let escaped = current else { break }
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escaped)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"): buffer.append(contentsOf: try unicodeEscape().utf8)
                default: throw Failure(offset: index - 2, reason: "unknown escape in a string")
                }
            default:
                guard byte >= 0x20 else { throw failure("a control character inside a string must be escaped") }
                buffer.append(byte)
                index += 1
            }
        }
        throw failure("a string is not closed")
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining a surrogate pair.
    private mutating func unicodeEscape() throws(Failure) -> String {
        let escapeStart = index - 2
        let high = try hex4()
        var scalar: UInt32 = high
        if (0xD800...0xDBFF).contains(high) {
            guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                throw Failure(offset: escapeStart, reason: "a \\u escape holds half a surrogate pair")
            }
            index += 2
            let low = try hex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw Failure(offset: escapeStart, reason: "a \\u escape holds half a surrogate pair") }
            scalar = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let character = Unicode.Scalar(scalar) else { throw Failure(offset: escapeStart, reason: "a \\u escape holds half a surrogate pair") }
        return String(character)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard bytes.count - index >= 4 else { throw failure("a \\u escape needs 4 hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("a \\u escape needs 4 hex digits")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A number by the JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    /// An integer literal of up to 18 digits also keeps its exact value: quantities and capacities
    /// are read from it, never through a `Double` (`1.9999999999999999` is a fraction, not 2).
    private mutating func number() throws(Failure) -> JSONNumber {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        var integer: UInt64 = 0
        var digits = 0
        guard let first = current, isDigit(first) else { throw failure("expected a digit") }
        if first == UInt8(ascii: "0") {
            index += 1
            digits = 1
        } else {
            while let byte = current, isDigit(byte) {
                if digits < 18 { integer = integer * 10 + UInt64(byte - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
        }
        var simple = digits <= 15
        var fractionOrExponent = false
        if current == UInt8(ascii: ".") {
            simple = false
            fractionOrExponent = true
            index += 1
            guard let byte = current, isDigit(byte) else { throw failure("expected a digit after '.'") }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            simple = false
            fractionOrExponent = true
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, isDigit(byte) else { throw failure("expected a digit in an exponent") }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        let negative = bytes[start] == UInt8(ascii: "-")
        let isIntegerLiteral = !fractionOrExponent
        let exact = isIntegerLiteral && digits <= 18 ? (negative ? -Int(integer) : Int(integer)) : nil
        if simple { return JSONNumber(value: negative ? -Double(integer) : Double(integer), isIntegerLiteral: isIntegerLiteral, integer: exact) }
        // Rare (fractions, exponents, long integers): the standard library's correctly rounded conversion.
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite else { throw Failure(offset: start, reason: "a number is out of range") }
        return JSONNumber(value: value, isIntegerLiteral: isIntegerLiteral, integer: exact)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
