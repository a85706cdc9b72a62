import Foundation
import NIOCore

/// Reads HTTP/1.1 responses with a `Content-Length` body: all Boxoffice sends for these routes.
final class ResponseReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    struct Response {
        var status: Int
        /// From `Location: /intents/{id}`.
        var intentID: UUID?
        /// The body is a status other than `pending`.
        var decided: Bool
    }

    private let driver: OpenLoopDriver
    let connection: OpenLoopDriver.Connection
    private var buffer: ByteBuffer?

    init(driver: OpenLoopDriver, connection: OpenLoopDriver.Connection) {
        self.driver = driver
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil { buffer = incoming } else { buffer!.writeBuffer(&incoming) }
        while let response = parse() { driver.received(response, on: connection) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver.closed(connection)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// One whole response off the front of `buffer`, or nil until it has arrived.
    private func parse() -> Response? {
        guard var bytes = buffer, bytes.readableBytes >= 12 else { return nil }
        let view = bytes.readableBytesView
        guard let headerEnd = Self.find([13, 10, 13, 10], in: view) else { return nil }
        let head = String(decoding: view[view.startIndex..<headerEnd], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, statusLine.count >= 12,
            let status = Int(statusLine.dropFirst(9).prefix(3))
        else { return nil }
        var length = 0
        var location: Substring?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            if name == "content-length" { length = Int(value) ?? 0 } else if name == "location" { location = value }
        }
        let bodyStart = headerEnd + 4 - view.startIndex
        guard bytes.readableBytes >= bodyStart + length else { return nil }
        bytes.moveReaderIndex(forwardBy: bodyStart)
        let body = bytes.readSlice(length: length)!
        buffer = bytes.readableBytes == 0 ? nil : bytes
        var id: UUID?
        if let location, location.hasPrefix("/intents/") { id = UUID(uuidString: String(location.dropFirst("/intents/".count))) }
        let decided = status == 200 && Self.find(Array(#""status":"pending""#.utf8), in: body.readableBytesView) == nil
        return Response(status: status, intentID: id, decided: decided)
    }

    private static func find(_ needle: [UInt8], in haystack: ByteBufferView) -> ByteBufferView.Index? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.startIndex
        let last = haystack.endIndex - needle.count
        while index <= last {
            if haystack[index] == needle[0] {
                var match = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    match = false
                    break
                }
                if match { return index }
            }
            index += 1
        }
        return nil
    }
}
