import AsyncHTTPClient
import BoxofficeHarness
import Foundation
import NIOCore
import Testing

/// `boxoffice work --processes N` run by a test: the real binary, its JSON log (the pool's and its
/// workers', one stderr) kept in a file the test reads.
final class PoolProcess: @unchecked Sendable {
    let process = Process()
    let log: URL

    init(databaseURL: String, arguments: [String]) throws {
        log = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-pool-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = ChildProcesses.siblingExecutable()
        process.arguments = ["work", "--log-format", "json", "--log-level", "info", "--parent-pid", "\(getpid())"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log.path)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Every JSON log line with message `message`, as key → value.
    func records(_ message: String) -> [[String: String]] {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard line.contains("\"\(message)\""), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["msg"] as? String == message
            else { return nil }
            return object.mapValues { "\($0)" }
        }
    }

    /// The pids of the worker processes that reported ready so far, in order.
    var readyPIDs: [Int32] { records("worker process ready").compactMap { $0["pid"].flatMap { Int32($0) } } }

    /// The pool's metrics address, once it listens.
    var metricsURL: String? { records("metrics listening").first?["address"] }

    /// The pool's exit status once it has exited within `timeout`, else nil.
    func exitStatus(within timeout: Duration) async throws -> Int32? {
        _ = try await poll(every: .milliseconds(100), timeout: timeout) { process.isRunning ? "running" : nil }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// The last lines of the log, for a failure message.
    func tail(_ lines: Int = 30) -> String {
        ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

extension IntegrationTests {
    @Suite("Worker pool: boxoffice work --processes")
    struct WorkerPoolTests {
        /// The pool's `/metrics` body.
        static func scrape(_ pool: PoolProcess, http: HTTPClient) async throws -> String {
            let url = try #require(pool.metricsURL)
            let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
            #expect(response.status == .ok)
            return String(buffer: try await response.body.collect(upTo: 1 << 24))
        }

        /// Waits (bounded) until the pool's metrics show `desired` and `alive` workers.
        static func waitForSize(_ pool: PoolProcess, http: HTTPClient, desired: Int, alive: Int) async throws {
            try await waitUntil("the pool at \(desired) desired, \(alive) alive", every: .milliseconds(200), timeout: .seconds(90)) {
                guard pool.metricsURL != nil, let body = try? await scrape(pool, http: http) else { return "no metrics yet" }
                let now = (exposedSample("boxoffice_pool_workers_desired", in: body), exposedSample("boxoffice_pool_workers_alive", in: body))
                return now == (Double(desired), Double(alive)) ? nil : "desired, alive = \(now)\n\(pool.tail(8))"
            }
        }

        @Test("A worker SIGKILLed mid-sale is replaced by a new process, the sale settles exactly, SIGTERM stops every worker with exit 0")
        func killedWorkerIsReplaced() async throws {
            try await withLiveAPI { api in
                let capacity = 1_500
                let event = try await api.createGeneralAdmission(capacity)
                // Submitted first, drained at one intent per batch: the kill lands while intents are queued.
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 4_000)
                load.clients = 32
                load.awaitOutcome = false
                let submitted = await SaleLoad(load).run(client: api.http)
                #expect(submitted.accepted.count == 4_000)

                let pool = try PoolProcess(
                    databaseURL: api.database.url,
                    arguments: ["--processes", "3", "--batch-size", "1", "--poll-milliseconds", "100", "--metrics-port", "0"])
                try await waitUntil("3 workers ready", every: .milliseconds(100), timeout: .seconds(90)) {
                    pool.readyPIDs.count >= 3 ? nil : "\(pool.readyPIDs.count) ready\n\(pool.tail())"
                }
                let queuedAtKill = try await api.count("intents")
                let victim = pool.readyPIDs[0]
                kill(victim, SIGKILL)
                try await waitUntil("a new worker in place of the killed one", every: .milliseconds(100), timeout: .seconds(90)) {
                    pool.readyPIDs.count >= 4 ? nil : "\(pool.readyPIDs.count) ready\n\(pool.tail())"
                }
                #expect(queuedAtKill > 0, "the queue drained before the kill: make the backlog larger")
                let replacement = pool.readyPIDs[3]
                #expect(!pool.readyPIDs[0..<3].contains(replacement))
                let exits = pool.records("worker process exited unasked; restarting it")
                #expect(exits.map { $0["pid"] } == ["\(victim)"])
                #expect(exits.first?["status"] == "signal 9 (Killed)", "\(exits)")
                try await Self.waitForSize(pool, http: api.http, desired: 3, alive: 3)
                let body = try await Self.scrape(pool, http: api.http)
                #expect(exposedSample("boxoffice_pool_restarts_total", in: body) == 1)

                let drained = try await poll(every: .milliseconds(200), timeout: .seconds(240)) {
                    try await api.count("intents") > 0 ? "intents queued" : nil
                }
                #expect(drained == nil, "the pool did not drain the queue\n\(pool.tail())")
                pool.signal(SIGTERM)
                #expect(try await pool.exitStatus(within: .seconds(90)) == 0, "\(pool.tail())")
                let stopped = pool.records("worker process stopped")
                #expect(stopped.count == 3 && stopped.allSatisfy { $0["status"] == "exit 0" }, "\(stopped)")
                #expect(Set(stopped.compactMap { $0["pid"] }) == Set(pool.readyPIDs[1...].map { "\($0)" }))

                let result = try await SaleTests.decided(submitted, api: api)
                try await SaleTests.expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
                #expect(result.ticketsConfirmed == capacity)
            }
        }

        @Test("SIGTERM mid-drain: every worker finishes its batch in hand and exits 0, nothing half-done; a new pool settles the rest exactly")
        func stopsMidDrain() async throws {
            try await withLiveAPI { api in
                let capacity = 1_000
                let event = try await api.createGeneralAdmission(capacity)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 3_000)
                load.clients = 32
                load.awaitOutcome = false
                let submitted = await SaleLoad(load).run(client: api.http)
                #expect(submitted.accepted.count == 3_000)
                let arguments = ["--batch-size", "1", "--poll-milliseconds", "100"]

                let first = try PoolProcess(databaseURL: api.database.url, arguments: ["--processes", "3"] + arguments)
                try await waitUntil("3 workers ready and deciding", every: .milliseconds(100), timeout: .seconds(90)) {
                    guard first.readyPIDs.count >= 3 else { return "\(first.readyPIDs.count) ready\n\(first.tail())" }
                    return try await api.count("outcomes") > 0 ? nil : "no outcome yet"
                }
                first.signal(SIGTERM)
                #expect(try await first.exitStatus(within: .seconds(90)) == 0, "\(first.tail())")
                let stopped = first.records("worker process stopped")
                #expect(stopped.count == 3 && stopped.allSatisfy { $0["status"] == "exit 0" }, "\(stopped)")
                // Stopped mid-drain: what was decided is whole (the audit holds), the rest is still queued.
                let queued = try await api.count("intents")
                #expect(queued > 0, "the queue drained before the stop: make the backlog larger")
                let midway = try await api.store.audit(eventID: event)
                #expect(midway.isClean, "\(midway.violations)")

                let second = try PoolProcess(databaseURL: api.database.url, arguments: ["--processes", "2"] + arguments)
                let drained = try await poll(every: .milliseconds(200), timeout: .seconds(240)) {
                    try await api.count("intents") > 0 ? "intents queued" : nil
                }
                #expect(drained == nil, "the second pool did not drain the queue\n\(second.tail())")
                second.signal(SIGTERM)
                #expect(try await second.exitStatus(within: .seconds(90)) == 0, "\(second.tail())")
                let result = try await SaleTests.decided(submitted, api: api)
                try await SaleTests.expectSettledExactlyOnce(result, api: api, event: event, capacity: capacity)
                #expect(result.ticketsConfirmed == capacity)
            }
        }

        @Test("SIGTTIN adds a worker, SIGTTOU removes the newest (never below 1); one metrics endpoint labels each worker")
        func scalesOnSignals() async throws {
            try await withLiveAPI { api in
                let pool = try PoolProcess(
                    databaseURL: api.database.url, arguments: ["--processes", "2", "--poll-milliseconds", "100", "--metrics-port", "0"])
                try await Self.waitForSize(pool, http: api.http, desired: 2, alive: 2)
                try await waitUntil("2 workers ready", every: .milliseconds(100), timeout: .seconds(90)) {
                    pool.readyPIDs.count >= 2 ? nil : "\(pool.readyPIDs.count) ready"
                }
                try await waitUntil("both workers' series in the pool's metrics", every: .milliseconds(200), timeout: .seconds(30)) {
                    let body = try await Self.scrape(pool, http: api.http)
                    return body.contains(#"boxoffice_worker_running{worker="0"} 1"#) && body.contains(#"boxoffice_worker_running{worker="1"} 1"#)
                        ? nil : body
                }

                pool.signal(SIGTTIN)
                try await Self.waitForSize(pool, http: api.http, desired: 3, alive: 3)
                try await waitUntil("the third worker's series", every: .milliseconds(200), timeout: .seconds(90)) {
                    try await Self.scrape(pool, http: api.http).contains(#"boxoffice_worker_running{worker="2"} 1"#) ? nil : "absent"
                }
                let third = try #require(pool.readyPIDs.last)
                let body = try await Self.scrape(pool, http: api.http)
                if let complaint = try PrometheusServer.check(metrics: body) { Issue.record("promtool on the pool's metrics: \(complaint)") }

                pool.signal(SIGTTOU)
                try await Self.waitForSize(pool, http: api.http, desired: 2, alive: 2)
                #expect(pool.records("worker process stopped").map { $0["pid"] } == ["\(third)"], "the newest worker goes first")
                pool.signal(SIGTTOU)
                try await Self.waitForSize(pool, http: api.http, desired: 1, alive: 1)
                pool.signal(SIGTTOU)
                try await waitUntil("the third SIGTTOU refused", every: .milliseconds(100), timeout: .seconds(30)) {
                    pool.records("SIGTTOU ignored: the pool keeps at least one worker").isEmpty ? "not yet" : nil
                }
                try await Self.waitForSize(pool, http: api.http, desired: 1, alive: 1)
                #expect(pool.records("worker process exited unasked; restarting it").isEmpty, "\(pool.tail())")

                pool.signal(SIGTERM)
                #expect(try await pool.exitStatus(within: .seconds(90)) == 0, "\(pool.tail())")
                let stopped = pool.records("worker process stopped")
                #expect(stopped.count == 3 && stopped.allSatisfy { $0["status"] == "exit 0" }, "\(stopped)")
            }
        }

        @Test("Workers that can never start (a bad DATABASE_URL): the pool exits 1 after more than --crashes-max failures")
        func givesUpOnFailingWorkers() async throws {
            let pool = try PoolProcess(
                databaseURL: "postgres://boxoffice@127.0.0.1:1/none?sslmode=no-such-mode",
                arguments: ["--processes", "2", "--crashes-max", "3", "--crash-window-seconds", "300", "--restart-backoff-min-milliseconds", "50"])
            let status = try await pool.exitStatus(within: .seconds(180))
            #expect(status == 1, "\(pool.tail())")
            // 3 are allowed and restarted; the 4th stops the pool (with another child's exit in the same look, maybe a 5th).
            let restarted = pool.records("worker process exited unasked; restarting it")
            let final = pool.records("worker process exited unasked")
            #expect(restarted.count == 3, "\(restarted)")
            #expect((1...2).contains(final.count), "\(final)")
            #expect((restarted + final).allSatisfy { $0["status"] == "exit 1" }, "\(restarted + final)")
            #expect(pool.records("worker processes keep failing: stopping the pool").count == 1)
        }
    }
}
