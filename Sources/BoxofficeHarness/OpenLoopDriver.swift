// The driver owns all of its state on one event loop (schedule, connection pool, results); the channel
// handler that parses each connection's responses is in ResponseReader.swift.

import Foundation
import Histogram
import NIOCore
import NIOPosix

/// The engine of ``OpenLoad``: a wrk2-style open-loop HTTP/1.1 generator on one event loop.
///
/// Every request is a pre-encoded byte string written to a kept-alive connection, and every response
/// is read by a minimal parser (status line, `Content-Length`, `Location`). There is no task, no
/// lock and no HTTP client object per request: on a 2-core machine the generator's CPU is taken from
/// the server it measures, and AsyncHTTPClient with one task per intent used about a third of the
/// machine at 5,000 intents/s.
///
/// A connection carries one request at a time (no pipelining). Intents become due on a 1 ms tick at
/// their intended send time; one that finds no idle connection opens a new one (up to
/// `connectionsMax`) or waits in a backlog, and the wait counts in its latency. The run ends when
/// every intent and sampled poll is answered, or at its deadline (the duration plus `answerGrace`): what is
/// still open then counts as failed, so a server that stops answering cannot hang the benchmark.
///
/// Thread safety: everything below is confined to `loop`; the class is `@unchecked Sendable` only so
/// NIO's `@Sendable` callbacks, which all run on that loop, can reach it.
final class OpenLoopDriver: @unchecked Sendable {
    enum Work {
        case intake(index: Int)
        case poll(id: UUID, index: Int, attempt: Int)
    }

    final class Connection {
        let channel: Channel
        var work: Work?
        /// Connected and counted in `connections`.
        var live = false
        init(channel: Channel) { self.channel = channel }
    }

    let loop: EventLoop
    let configuration: OpenLoad.Configuration
    let host: String
    let port: Int
    let connectionsMax: Int
    let total: Int
    let interval: Duration
    let start: ContinuousClock.Instant
    let startWall: Date
    let intakeHead: [UInt8]
    /// Past it no poll is retried, and whatever is still open is given up.
    let deadline: ContinuousClock.Instant
    let finished: EventLoopPromise<OpenLoad.Result>

    var result = OpenLoad.Result()
    var issued = 0
    var idle: [Connection] = []
    var connections = 0
    var opening = 0
    var intakeBacklog: [Int] = []
    var intakeBacklogHead = 0
    var pollBacklog: [Work] = []
    var intakesOpen = 0
    var pollsOpen = 0
    var lastAccepted: ContinuousClock.Instant
    var ticker: RepeatedTask?
    var giveUp: Scheduled<Void>?
    /// Every connected connection, busy or idle, to close at the end.
    var live: [ObjectIdentifier: Connection] = [:]
    var done = false

    init(loop: EventLoop, configuration: OpenLoad.Configuration, host: String, port: Int) {
        self.loop = loop
        self.configuration = configuration
        self.host = host
        self.port = port
        connectionsMax = configuration.connectionsMax
        total = Int(Double(configuration.rate) * OpenLoad.seconds(configuration.duration))
        interval = .seconds(1) / configuration.rate
        start = .now
        startWall = Date()
        lastAccepted = start
        deadline = start + configuration.duration + configuration.answerGrace
        finished = loop.makePromise()
        var head = "POST /events/\(configuration.eventID)/intents HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\n"
        if let token = configuration.token { head += "Authorization: Bearer \(token)\r\n" }
        intakeHead = Array(head.utf8)
    }

    func run() -> EventLoopFuture<OpenLoad.Result> {
        loop.execute {
            self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(1)) { _ in self.tick() }
            self.giveUp = self.loop.scheduleTask(in: .nanoseconds(Int64(OpenLoad.seconds(self.deadline - .now) * 1e9))) { self.abandon() }
        }
        return finished.futureResult
    }

    /// Issues every intent whose intended send time has come.
    private func tick() {
        let due = min(total, Int(OpenLoad.seconds(ContinuousClock.now - start) / OpenLoad.seconds(interval)) + 1)
        while issued < due {
            let index = issued
            issued += 1
            if intakesOpen >= configuration.inFlightMax {
                result.notSent += 1
                continue
            }
            intakesOpen += 1
            dispatch(.intake(index: index))
        }
        if issued == total {
            ticker?.cancel()
            ticker = nil
            finishIfDone()
        }
    }

    private func dispatch(_ work: Work) {
        if let connection = idle.popLast() {
            send(work, on: connection)
            return
        }
        switch work {
        case .intake(let index): intakeBacklog.append(index)
        case .poll: pollBacklog.append(work)
        }
        if connections + opening < connectionsMax { open() }
    }

    /// The next waiting request, intake before polls: a poll only measures, an intake is the load.
    private func nextWaiting() -> Work? {
        if intakeBacklogHead < intakeBacklog.count {
            let index = intakeBacklog[intakeBacklogHead]
            intakeBacklogHead += 1
            if intakeBacklogHead > 4096, intakeBacklogHead * 2 > intakeBacklog.count {
                intakeBacklog.removeFirst(intakeBacklogHead)
                intakeBacklogHead = 0
            }
            return .intake(index: index)
        }
        return pollBacklog.popLast()
    }

    private func open() {
        opening += 1
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ResponseReader(driver: self, connection: Connection(channel: channel)))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { outcome in
                self.opening -= 1
                switch outcome {
                case .success(let channel):
                    guard let connection = try? channel.pipeline.syncOperations.handler(type: ResponseReader.self).connection,
                        channel.isActive
                    else { return }
                    guard !self.done else { return channel.close(promise: nil) }
                    self.connections += 1
                    connection.live = true
                    self.live[ObjectIdentifier(connection)] = connection
                    self.ready(connection)
                case .failure:
                    // Nothing to connect to: whatever waits fails rather than waiting forever.
                    if self.connections + self.opening == 0 { self.failAllWaiting() }
                }
            }
    }

    private func ready(_ connection: Connection) {
        if let work = nextWaiting() { send(work, on: connection) } else { idle.append(connection) }
    }

    private func send(_ work: Work, on connection: Connection) {
        connection.work = work
        var buffer = connection.channel.allocator.buffer(capacity: 256)
        switch work {
        case .intake(let index):
            let body = #"{"customer":"open-\#(index)","quantity":1}"#
            buffer.writeBytes(intakeHead)
            buffer.writeString("Content-Length: \(body.utf8.count)\r\n\r\n")
            buffer.writeString(body)
        case .poll(let id, _, _):
            buffer.writeString("GET /intents/\(id.uuidString.lowercased())?wait=15 HTTP/1.1\r\nHost: \(host):\(port)\r\n\r\n")
        }
        connection.channel.writeAndFlush(buffer, promise: nil)
    }

    /// A whole response arrived on `connection`.
    func received(_ response: ResponseReader.Response, on connection: Connection) {
        guard !done, let work = connection.work else { return }
        connection.work = nil
        complete(work, response: response)
        ready(connection)
    }

    /// The connection closed; its request, if any, failed.
    func closed(_ connection: Connection) {
        guard connection.live, !done else { return }
        connection.live = false
        live[ObjectIdentifier(connection)] = nil
        connections -= 1
        idle.removeAll { $0 === connection }
        if let work = connection.work {
            connection.work = nil
            complete(work, response: nil)
        }
        if connections + opening < connectionsMax, intakeBacklogHead < intakeBacklog.count || !pollBacklog.isEmpty { open() }
    }

    private func complete(_ work: Work, response: ResponseReader.Response?) {
        let now = ContinuousClock.now
        switch work {
        case .intake(let index):
            intakesOpen -= 1
            if let response, response.status == 202, let id = response.intentID {
                result.accepted += 1
                let intended = start + interval * index
                _ = result.intakeLatency.record(SaleLoad.microseconds(now - intended))
                result.acceptedIntents.append((id, startWall.addingTimeInterval(OpenLoad.seconds(interval * index))))
                lastAccepted = max(lastAccepted, now)
                if configuration.longPollEvery > 0, index % configuration.longPollEvery == 0 {
                    pollsOpen += 1
                    dispatch(.poll(id: id, index: index, attempt: 1))
                }
            } else {
                result.failed += 1
            }
        case .poll(let id, let index, let attempt):
            if let response, response.status == 200, response.decided {
                pollsOpen -= 1
                result.decided += 1
                _ = result.outcomeLatency.record(SaleLoad.microseconds(now - (start + interval * index)))
            } else if attempt < 8, now < deadline {
                dispatch(.poll(id: id, index: index, attempt: attempt + 1))
                return
            } else {
                pollsOpen -= 1
            }
        }
        finishIfDone()
    }

    /// Nothing could be connected to: what waits fails, and polls are not retried.
    private func failAllWaiting() {
        while let work = nextWaiting() {
            if case .poll = work { pollsOpen -= 1 } else { complete(work, response: nil) }
        }
        finishIfDone()
    }

    /// The deadline passed: what is still open counts as failed (intakes) or undecided (polls).
    private func abandon() {
        guard !done else { return }
        result.notSent += total - issued
        issued = total
        result.failed += intakesOpen
        intakesOpen = 0
        pollsOpen = 0
        ticker?.cancel()
        ticker = nil
        finishIfDone()
    }

    private func finishIfDone() {
        guard !done, issued == total, intakesOpen == 0, pollsOpen == 0, ticker == nil else { return }
        done = true
        giveUp?.cancel()
        result.offered = total
        result.intakeDuration = lastAccepted - start
        for connection in live.values { connection.channel.close(promise: nil) }
        live = [:]
        idle = []
        finished.succeed(result)
    }
}
