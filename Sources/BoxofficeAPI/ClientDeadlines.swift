import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// The phases of one connection and the deadline of each phase in which the client must act:
/// idle (no request) → reading a head → reading a body → handled by the API (no deadline here: the
/// routes bound their own waits) → idle again once the response is written.
///
/// Also where HTTP/1 connection semantics are settled: a request that does not ask for keep-alive
/// (HTTP/1.0 without `Connection: keep-alive`, or `Connection: close`) gets `Connection: close` and
/// the connection is closed once its response is written; and where a request the decoder cannot
/// parse, or whose head is too large, is answered with the API's JSON error body.
final class ClientDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum Phase {
        case idle
        case readingHead
        case readingBody
        case handling
    }

    let limits: ClientLimits
    let counters: ClientLimitCounters
    private var phase = Phase.idle
    private var timer: Scheduled<Void>?
    /// When the current phase's time is up; nil while the route handles a request (it bounds its own waits).
    private var deadline: NIODeadline?
    private var context: ChannelHandlerContext?
    /// Requests whose head has arrived and whose response has not been written yet, oldest first:
    /// more than one only when a client pipelines (bounded by NIOAsyncChannel's back-pressure).
    private var pending: [Pending] = []
    /// Whether the response to the oldest pending request has started.
    private var responseStarted = false
    private var closing = false
    /// A request asked to switch protocols (`Upgrade`, or `CONNECT`): answered, then closed.
    private(set) var upgradeRequested = false
    /// Armed while the socket cannot take more output: a client that stops reading its answers is
    /// dropped after ``ClientLimits/bodyReadTimeout`` instead of holding its connection forever.
    private var sendStall: Scheduled<Void>?

    struct Pending {
        var keepAlive: Bool
        var http10: Bool
        /// Its `X-Request-ID`, settled here (``RequestIdentity``): a `408` written below the router carries it.
        var requestID: String
        /// Its body has been read to the end.
        var ended = false
        /// Its response has been written to the end.
        var answered = false
    }

    init(limits: ClientLimits, counters: ClientLimitCounters) {
        self.limits = limits
        self.counters = counters
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        enter(.idle)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        sendStall?.cancel()
        sendStall = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        sendStall?.cancel()
        sendStall = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendStall?.cancel()
            sendStall = nil
        } else if sendStall == nil {
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let counters = self.counters
            sendStall = context.eventLoop.scheduleTask(in: TimeAmount(limits.bodyReadTimeout)) {
                counters.sendStalls.add()
                // Aborted (RST), not closed: the answers already in the kernel's send buffer are dropped
                // with the socket instead of waiting there for a client that does not read.
                let channel = loopBound.value.channel
                guard let socket = channel as? any SocketOptionProvider else { return channel.close(promise: nil) }
                socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    /// Called by ``InboundBytesWatch`` for every read, before the decoder sees the bytes.
    func bytesArrived() {
        if phase == .idle { enter(.readingHead) }
    }

    /// The phase the oldest pending request puts the connection in (idle when none is pending): its
    /// body still arriving (even after an early answer) has the body deadline; a complete request is
    /// the route's to bound.
    private var currentPhase: Phase {
        guard let oldest = pending.first else { return .idle }
        return oldest.ended ? .handling : .readingBody
    }

    /// Drops requests that are read and answered, and moves to the phase the rest put the connection
    /// in; a phase that does not change keeps its running deadline.
    private func settle() {
        pending.removeAll { $0.ended && $0.answered }
        let next = currentPhase
        if next != phase || next == .idle { enter(next) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            let requestID = RequestIdentity.settle(head.headers[RequestIdentity.headerName])
            head.headers.replaceOrAdd(name: RequestIdentity.headerName, value: requestID)
            var request = Pending(keepAlive: head.isKeepAlive, http10: head.version == .http1_0, requestID: requestID)
            if head.method == .CONNECT || head.headers.contains(name: "upgrade") {
                upgradeRequested = true
                request.keepAlive = false
            }
            pending.append(request)
            // A pipelined head changes nothing until the requests before it are answered.
            if pending.count == 1 {
                responseStarted = false
                enter(.readingBody)
            }
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        case .body:
            break
        case .end:
            // Bodies arrive in request order: this ends the first request still being read.
            if let index = pending.firstIndex(where: { !$0.ended }) { pending[index].ended = true }
            settle()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Responses are written in request order: they answer the first request not yet answered.
        let index = pending.firstIndex { !$0.answered }
        switch unwrapOutboundIn(data) {
        case .head(var head):
            responseStarted = true
            if let index {
                if head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) { pending[index].keepAlive = false }
                if !head.headers.contains(name: "connection") {
                    // HTTP/1.0 closes unless told otherwise, so a kept-alive 1.0 connection is confirmed aloud.
                    if !pending[index].keepAlive {
                        head.headers.add(name: "connection", value: "close")
                    } else if pending[index].http10 {
                        head.headers.add(name: "connection", value: "keep-alive")
                    }
                }
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            responseStarted = false
            guard let index else {
                context.write(data, promise: promise)
                return
            }
            pending[index].answered = true
            if !pending[index].keepAlive {
                timer?.cancel()
                timer = nil
                let written = promise ?? context.eventLoop.makePromise()
                context.writeAndFlush(data, promise: written)
                close(context, after: written.futureResult)
                return
            }
            context.write(data, promise: promise)
            settle()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse failure with no request in progress is ours to answer, with the API's JSON body;
        // inside a request Hummingbird's handler owns the response, so it gets the error.
        guard let parserError = error as? HTTPParserError, pending.isEmpty, phase == .idle || phase == .readingHead else {
            context.fireErrorCaught(error)
            return
        }
        // The client hung up in the middle of a head: nobody to answer.
        if parserError == .invalidEOFState || !context.channel.isActive {
            closing = true
            context.close(promise: nil)
            return
        }
        if parserError == .headerOverflow {
            counters.headTooLarge.add()
            refuse(
                context, .requestHeaderFieldsTooLarge, "header_too_large",
                "the request line and headers exceed \(limits.headerBytesMax) bytes or \(limits.headerFieldsMax) fields")
        } else {
            counters.malformed.add()
            refuse(context, .badRequest, "malformed_request", "the request is not valid HTTP/1.1 (\(parserError))")
        }
    }

    /// Moves to `next` and sets its deadline. One scheduled task per connection serves every phase:
    /// it is armed only when none is, and when it fires before the current deadline it re-arms for
    /// the rest. A kept-alive connection answering thousands of requests a second so schedules about
    /// one task per timeout period instead of two per request (a schedule and a cancel cost a heap
    /// insertion and an allocation on the event loop each).
    private func enter(_ next: Phase) {
        phase = next
        guard !closing, let context else { return }
        let delay: Duration
        switch next {
        case .idle: delay = limits.idleTimeout
        case .readingHead: delay = limits.headReadTimeout
        case .readingBody: delay = limits.bodyReadTimeout
        case .handling:
            deadline = nil
            return
        }
        let due = NIODeadline.now() + TimeAmount(delay)
        deadline = due
        if timer == nil { arm(context, at: due) }
    }

    /// Schedules the one timer at `due`, or sooner: never later than the shortest phase timeout from
    /// now. A phase entered while the timer runs (a 10 s body after a 15 s idle wait was armed) has
    /// a deadline no earlier than that, so the timer always fires by it and re-arms for the rest:
    /// every deadline is kept on time, for about one scheduled task per shortest timeout.
    private func arm(_ context: ChannelHandlerContext, at due: NIODeadline) {
        let shortest = min(limits.idleTimeout, limits.headReadTimeout, limits.bodyReadTimeout)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: min(due, .now() + TimeAmount(shortest))) { loopBound.value.timerFired() }
    }

    private func timerFired() {
        timer = nil
        guard !closing, let deadline, let context else { return }
        if deadline > .now() {
            arm(context, at: deadline)
            return
        }
        self.deadline = nil
        switch phase {
        case .idle: idleExpired()
        case .readingHead: headExpired()
        case .readingBody: bodyExpired()
        case .handling: break
        }
    }

    /// Closes once everything written so far has left.
    private func close(_ context: ChannelHandlerContext, after written: EventLoopFuture<Void>) {
        closing = true
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    private func idleExpired() {
        counters.idleClosed.add()
        closing = true
        context?.close(promise: nil)
    }

    private func headExpired() {
        counters.headTimeouts.add()
        guard let context else { return }
        refuse(
            context, .requestTimeout, "request_timeout",
            "the request head did not arrive within \(limits.headReadTimeout); send it at once")
    }

    private func bodyExpired() {
        counters.bodyTimeouts.add()
        guard let context else { return }
        // An answer already on its way (or written, before the body ended) cannot be followed by a 408.
        if responseStarted || pending.first?.answered == true {
            closing = true
            context.close(promise: nil)
            return
        }
        refuse(
            context, .requestTimeout, "request_timeout",
            "the request body did not arrive within \(limits.bodyReadTimeout) of its head; send it at once")
    }

    /// Answers with the API's JSON error body and closes the connection; with the id of the request
    /// being read, or a fresh one when no head arrived (a slow or oversized head, garbage).
    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ code: String, _ message: String) {
        guard !closing else { return }
        timer?.cancel()
        timer = nil
        var body = context.channel.allocator.buffer(capacity: 96 + message.utf8.count)
        body.writeString(#"{"error":""#)
        body.writeString(code)
        body.writeString(#"","message":""#)
        body.writeString(String(message.flatMap { $0 == "\"" || $0 == "\\" ? ["\\", $0] : [$0] }))
        body.writeString(#""}"#)
        let headers = HTTPHeaders([
            ("content-type", "application/json; charset=utf-8"), ("content-length", "\(body.readableBytes)"), ("connection", "close"),
            (RequestIdentity.headerName, pending.first?.requestID ?? RequestIdentity.generate()),
        ])
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        close(context, after: written.futureResult)
    }
}
