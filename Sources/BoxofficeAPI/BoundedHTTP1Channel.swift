import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// Hummingbird's HTTP/1.1 child channel with ``ClientLimits`` enforced below the router.
///
/// The pipeline is Hummingbird's own (`HTTP1Channel`) with two handlers added where only they can
/// see what they need: ``InboundBytesWatch`` in front of the HTTP decoder (the first byte of a
/// request head starts its read deadline; a slowloris never completes a head, so nothing after the
/// decoder would ever hear of it) and ``ClientDeadlines`` right after it (HTTP/1 request heads
/// still carry their version and keep-alive flag there, which the `HTTPTypes` world drops).
struct BoundedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let limits: ClientLimits
    let counters: ClientLimitCounters

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let deadlines = ClientDeadlines(limits: limits, counters: counters)
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(InboundBytesWatch(deadlines: deadlines))
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderFieldSize = limits.headerBytesMax
            decoderLimits.maxHeaderListSize = limits.headerBytesMax
            decoderLimits.maxHeaderFieldCount = limits.headerFieldsMax
            // No pipelining assistance, as Hummingbird's own channel: NIO's HTTPServerPipelineHandler traps
            // on a response it did not see a request for (the 408/431/400 written below). Pipelined
            // requests are bounded by NIOAsyncChannel's back-pressure and tracked in ClientDeadlines.
            try sync.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: decoderLimits
            )
            try sync.addHandler(deadlines)
            try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            // Hummingbird's handler: closes after a `Connection: close` response and on graceful shutdown.
            try sync.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value: Value, logger: Logger) async {
        counters.open.add(1)
        defer { counters.open.add(-1) }
        await handleHTTP(asyncChannel: value, logger: logger)
    }
}

/// Sits in front of the HTTP decoder and tells ``ClientDeadlines`` when bytes arrive on a
/// connection with no request in progress: that starts the request's head-read deadline.
final class InboundBytesWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let deadlines: ClientDeadlines

    init(deadlines: ClientDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a request asking to switch protocols the HTTP decoder stops parsing and would keep
        // whatever follows, unbounded: the API speaks no other protocol, so more bytes end the connection.
        if deadlines.upgradeRequested {
            context.close(promise: nil)
            return
        }
        deadlines.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// The connection cap: Hummingbird stops accepting while `connectionsMax` connections are open,
/// so excess clients wait in the kernel's accept queue (`backlog`) and cost this process nothing.
struct ConnectionCap: AvailableConnectionsDelegate {
    let connectionsMax: Int
    let counters: ClientLimitCounters
    let logger: Logger
    var open = 0
    var lastWarning: ContinuousClock.Instant?

    mutating func connectionOpened() {
        open += 1
        if open >= connectionsMax {
            counters.capReached.add()
            // One line per 10 s at most while the cap holds: an attack must not become a log flood.
            if lastWarning.map({ ContinuousClock.now - $0 >= .seconds(10) }) ?? true {
                lastWarning = .now
                logger.warning(
                    "client connection cap reached; new connections wait in the accept queue until one closes",
                    metadata: ["connections_max": "\(connectionsMax)", "times_reached": "\(counters.capReached.value)"])
            }
        }
    }

    mutating func connectionClosed() { open -= 1 }

    func isAcceptingNewConnections() -> Bool { open < connectionsMax }
}
