import Foundation
import Hummingbird

/// Writes the hot responses (202, status, bulk results, errors) straight into a `ByteBuffer`.
///
/// `JSONEncoder` with sorted keys cost more than the rest of an intake response together; these
/// bodies are small and fixed in shape, so they are written field by field, keys in sorted order
/// (the order the encoder used, so clients see the same bytes). Optional fields that are nil are
/// left out, as the synthesized `Encodable` conformances did.
struct JSONWriter {
    private(set) var buffer: ByteBuffer
    private var needsComma = false

    init(capacity: Int = 256) {
        buffer = ByteBufferAllocator().buffer(capacity: capacity)
    }

    mutating func object(_ fields: (inout JSONWriter) -> Void) {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma = false
        fields(&self)
        buffer.writeInteger(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func array<S: Sequence>(_ items: S, _ item: (inout JSONWriter, S.Element) -> Void) {
        separate()
        buffer.writeInteger(UInt8(ascii: "["))
        needsComma = false
        for element in items { item(&self, element) }
        buffer.writeInteger(UInt8(ascii: "]"))
        needsComma = true
    }

    mutating func key(_ name: StaticString) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":")
        needsComma = false
    }

    mutating func field(_ name: StaticString, _ text: String?) {
        guard let text else { return }
        key(name)
        string(text)
    }

    mutating func field(_ name: StaticString, _ number: Int?) {
        guard let number else { return }
        key(name)
        separate()
        buffer.writeString(String(number))
        needsComma = true
    }

    mutating func field(_ name: StaticString, _ flag: Bool?) {
        guard let flag else { return }
        key(name)
        separate()
        buffer.writeStaticString(flag ? "true" : "false")
        needsComma = true
    }

    mutating func field(_ name: StaticString, _ id: UUID?) {
        guard let id else { return }
        key(name)
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        id.write(to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\""))
        needsComma = true
    }

    /// A field whose value is `prefix` followed by the id, e.g. `"status_url":"/intents/…"`.
    mutating func field(_ name: StaticString, prefix: StaticString, _ id: UUID) {
        key(name)
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(prefix)
        id.write(to: &buffer)
        buffer.writeInteger(UInt8(ascii: "\""))
        needsComma = true
    }

    mutating func field(_ name: StaticString, strings: [String]) {
        key(name)
        array(strings) { writer, text in writer.string(text) }
    }

    mutating func string(_ text: String) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var clean = 0
            for (offset, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[clean..<offset]))
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case 0x0A: buffer.writeStaticString("\\n")
                case 0x0D: buffer.writeStaticString("\\r")
                case 0x09: buffer.writeStaticString("\\t")
                default:
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
                    buffer.writeInteger(Self.hexDigits[Int(byte & 0xF)])
                }
                clean = offset + 1
            }
            buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[clean...]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// A JSON response of what `write` writes.
    static func response(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], _ write: (inout JSONWriter) -> Void) -> Response {
        var writer = JSONWriter()
        write(&writer)
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: writer.buffer))
    }
}

extension UUID {
    /// The canonical upper-case text of the id (as `uuidString`), written without formatting calls.
    func write(to buffer: inout ByteBuffer) {
        let bytes = uuid
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 36) { out in
            withUnsafeBytes(of: bytes) { raw in
                var at = 0
                for offset in 0..<16 {
                    if offset == 4 || offset == 6 || offset == 8 || offset == 10 {
                        out[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    out[at] = JSONWriter.hexDigits[Int(raw[offset] >> 4)]
                    out[at + 1] = JSONWriter.hexDigits[Int(raw[offset] & 0xF)]
                    at += 2
                }
            }
            return 36
        }
    }

    /// `uuidString` without `snprintf`: the hot paths put ids in headers too.
    var text: String {
        var buffer = ByteBufferAllocator().buffer(capacity: 36)
        write(to: &buffer)
        return String(buffer: buffer)
    }
}
