// Why this file is long (~550 lines): the benchmark's CLI, plan, runner and every scenario live
// together for now; splitting it one scenario per file is item 4 of issue 11 ("the benchmark is not
// the product"), left for that issue so the move lands with the Store's bench-only SQL.

import ArgumentParser
import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Histogram
import Logging
import Synchronization

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Boxoffice against the usual designs, on this machine, and print the table.",
        discussion: """
            Runs against a private PostgreSQL with default durability (fsync and synchronous_commit on), \
            or DATABASE_URL. Every cell gets a fresh database and ends with the invariant audit; a cell \
            with a violation fails the run. Scenarios: drain (one hot general-admission event), \
            seatmap (best available in a section, 1–4 seats), events (50 events at once), http (intake \
            ceiling vs GET /health, open-loop latency), reference (row-lock designs), queue (claim cost \
            vs queue length). Build with -c release for meaningful figures.
            """)

    @Option(help: "Comma-separated scenarios: drain, seatmap, events, http, reference, queue.") var scenarios = "drain,seatmap,events,http,reference,queue"
    @Option(help: "Worker process counts to try.") var workers = "1,2,4"
    @Option(help: "Batch sizes to try.") var batchSizes = "1,64,512,4096"
    @Option(help: "Intents pre-queued per drain cell.") var intents = 200_000
    @Option(help: "Tickets of the hot event.") var tickets = 100_000
    @Option(help: "Time budget per drain cell, in seconds (batch size 1 will not drain 200,000 in it).") var cellSeconds = 20
    @Option(help: "Offered intake rates for the open-loop HTTP run (intents/s).") var httpRates = "1000,2500,5000"
    @Option(help: "Seconds per HTTP rate and per saturation run.") var httpSeconds = 8
    @Option(help: "Connection counts for the closed-loop health/intake runs (with wrk; without it, 64 only).") var saturationConnections = "64,256"
    @Option(help: "Concurrent clients for the reference designs.") var referenceClients = "32,128"
    @Option(help: "Seconds per reference run.") var referenceSeconds = 8
    @Option(help: "Queue lengths for the claim-cost run.") var queueLengths = "10000,1000000,10000000"
    @Option(help: "Write the Markdown report here (e.g. docs/benchmarks.md).") var report: String?
    @Option(help: "Write the SVG chart here (e.g. docs/benchmarks.svg).") var svg: String?
    @Flag(help: "A small, quick run (smoke test): small counts, short cells.") var quick = false
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        var logger = logging.bootstrap(label: "boxoffice.bench")
        logger.logLevel = max(logging.logLevel, .warning)
        var plan = BenchPlan(self)
        if quick { plan.shrink() }
        let runner = try await BenchRunner.start(plan: plan, logger: logger)
        defer { runner.cluster?.destroy() }
        let results = try await runner.runAll()
        // The picture is linked relative to the report when both are written.
        let picture = svg.flatMap { svg in report.map { report in
            URL(fileURLWithPath: report).deletingLastPathComponent().path == URL(fileURLWithPath: svg).deletingLastPathComponent().path
                ? URL(fileURLWithPath: svg).lastPathComponent : svg
        } }
        let markdown = results.markdown(plan: plan, environment: runner.environmentLines, command: Self.commandLine(), picture: picture)
        print("\n" + markdown)
        if let report { try markdown.write(toFile: report, atomically: true, encoding: .utf8) }
        if let svg { try results.svg().write(toFile: svg, atomically: true, encoding: .utf8) }
        if !results.failures.isEmpty {
            print("FAILED: \(results.failures.joined(separator: "; "))")
            throw ExitCode(1)
        }
    }

    static func commandLine() -> String {
        (["swift run -c release boxoffice"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
    }
}

/// What to run, parsed and bounded.
struct BenchPlan: Sendable {
    var scenarios: Set<String>
    var workers: [Int]
    var batchSizes: [Int]
    var intents: Int
    var tickets: Int
    var cellSeconds: Int
    var httpRates: [Int]
    var httpSeconds: Int
    var saturationConnections: [Int]
    var referenceClients: [Int]
    var referenceSeconds: Int
    var queueLengths: [Int]

    init(_ bench: Bench) {
        let numbers: (String) -> [Int] = { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        scenarios = Set(bench.scenarios.split(separator: ",").map { String($0) })
        workers = numbers(bench.workers).filter { (1...32).contains($0) }
        batchSizes = numbers(bench.batchSizes).filter { (1...100_000).contains($0) }
        intents = min(max(bench.intents, 100), 5_000_000)
        tickets = min(max(bench.tickets, 100), EventLayout.capacityMax)
        cellSeconds = min(max(bench.cellSeconds, 1), 600)
        httpRates = numbers(bench.httpRates).filter { (1...200_000).contains($0) }
        httpSeconds = min(max(bench.httpSeconds, 1), 120)
        saturationConnections = numbers(bench.saturationConnections).filter { (1...1_000).contains($0) }
        referenceClients = numbers(bench.referenceClients).filter { (1...250).contains($0) }
        referenceSeconds = min(max(bench.referenceSeconds, 1), 120)
        queueLengths = numbers(bench.queueLengths).filter { (1_000...50_000_000).contains($0) }
    }

    mutating func shrink() {
        workers = [1, 2]
        batchSizes = [64, 512]
        intents = 4_000
        tickets = 2_000
        cellSeconds = 10
        httpRates = [200]
        httpSeconds = 2
        saturationConnections = [16]
        referenceClients = [8]
        referenceSeconds = 2
        queueLengths = [2_000, 20_000]
    }
}

struct DrainRow: Sendable {
    let label: String
    let workers: Int
    let batchSize: Int
    let decided: Int
    let seconds: Double
    let batches: Int
    let batchP50Milliseconds: Double
    let batchP99Milliseconds: Double
    let drained: Bool
    let workerPeakKilobytes: Int
    var allocationsPerSecond: Double { Double(decided) / max(seconds, 0.001) }
    var batchesPerSecond: Double { Double(batches) / max(seconds, 0.001) }
}

struct HTTPRow: Sendable {
    let rate: Int
    let result: OpenLoad.Result
    /// Intended send → `outcomes.decided_at`, every accepted intent, microseconds.
    let decisionLatency: Histogram<UInt64>
    /// Accepted intents with no outcome when the drain wait ended (should be 0).
    let undecided: Int
}

struct ReferenceRow: Sendable {
    let strategy: ReferenceStrategy
    let clients: Int
    let purchasesPerSecond: Double
}

struct SaturationRow: Sendable {
    let connections: Int
    let health: Double
    let intake: Double
    let failures: Int
}

struct QueueRow: Sendable {
    let length: Int
    let batchP50Milliseconds: Double
    let batchP99Milliseconds: Double
}

struct BenchResults: Sendable {
    var drain: [DrainRow] = []
    var http: [HTTPRow] = []
    /// Closed-loop `GET /health` against intake, per connection count.
    var saturation: [SaturationRow] = []
    var saturationGenerator = ""
    /// Bulk intake: intents per second through `POST /events/{id}/intents/batch`, 1,000 per request.
    var bulkIntentsPerSecond: Double?
    var apiPeakKilobytes: Int?
    /// Peak resident size of the API and of the larger worker in each phase of the HTTP run, kilobytes.
    var peaksByPhase: [(phase: String, api: Int, worker: Int)] = []
    var httpWorkerPeakKilobytes: Int?
    /// Resident memory after the HTTP load: anonymous (heap) and file-backed (code, shared libraries).
    var apiBreakdownKilobytes: (anonymous: Int, file: Int)?
    var workerBreakdownKilobytes: (anonymous: Int, file: Int)?
    var reference: [ReferenceRow] = []
    var queue: [QueueRow] = []
    var failures: [String] = []
}

/// Runs the scenarios; owns the cluster and a connection to its maintenance database.
final class BenchRunner: Sendable {
    let plan: BenchPlan
    let logger: Logger
    let base: DatabaseConfiguration
    let cluster: EmbeddedPostgres?
    let environmentLines: [String]
    let cellCounter = Atomic<Int>(0)
    let logRoot: URL

    init(plan: BenchPlan, logger: Logger, base: DatabaseConfiguration, cluster: EmbeddedPostgres?, environmentLines: [String]) {
        self.plan = plan
        self.logger = logger
        self.base = base
        self.cluster = cluster
        self.environmentLines = environmentLines
        logRoot = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: logRoot, withIntermediateDirectories: true)
    }

    static func start(plan: BenchPlan, logger: Logger) async throws -> BenchRunner {
        var cluster: EmbeddedPostgres?
        var base: DatabaseConfiguration
        if let configured = try DatabaseConfiguration.fromEnvironment() {
            base = configured
        } else {
            say("starting a private PostgreSQL (default durability: fsync and synchronous_commit on)…")
            let started = try EmbeddedPostgres.start(options: .init(durable: true, maxConnections: 400, sharedBuffers: "512MB",
                                                                   extraSettings: ["max_wal_size": "4GB", "checkpoint_timeout": "15min", "autovacuum_naptime": "1s"]))
            cluster = started
            base = try DatabaseConfiguration(url: started.url)
        }
        base.statementTimeoutMilliseconds = 600_000
        let settings = try await withStore(base, logger: logger) { store in
            (try await store.setting("server_version"), try await store.setting("fsync"), try await store.setting("synchronous_commit"),
             try await store.setting("shared_buffers"), try await store.setting("autovacuum_naptime"))
        }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }?.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        let lines = [
            "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; PostgreSQL on the same machine",
            "PostgreSQL \(settings.0): fsync=\(settings.1), synchronous_commit=\(settings.2), shared_buffers=\(settings.3), autovacuum_naptime=\(settings.4)\(cluster == nil ? " (DATABASE_URL)" : " (private cluster)")",
        ]
        for line in lines { say(line) }
        return BenchRunner(plan: plan, logger: logger, base: base, cluster: cluster, environmentLines: lines)
    }

    func runAll() async throws -> BenchResults {
        var results = BenchResults()
        let scenarios = plan.scenarios
        if scenarios.contains("drain") {
            say("\n== 1. drain: one hot general-admission event, \(plan.intents) intents for \(plan.tickets) tickets ==")
            for workers in plan.workers {
                for batchSize in plan.batchSizes {
                    results.drain.append(try await drainCell(label: "general admission", workers: workers, batchSize: batchSize,
                                                             layout: .generalAdmission(capacity: plan.tickets), events: 1,
                                                             quantities: [1], sections: [nil], results: &results))
                }
            }
        }
        if scenarios.contains("seatmap") {
            let rowsPerSection = max(1, plan.tickets / 4 / 100)
            let layout = EventLayout.seatMap(["A", "B", "C", "D"].map { SectionLayout(name: $0, rows: rowsPerSection, seatsPerRow: 100) })
            say("\n== 2. drain: reserved seating, \(layout.capacity) seats, best available in a section, 1–4 seats ==")
            for workers in plan.workers {
                for batchSize in plan.batchSizes where batchSize > 1 {
                    results.drain.append(try await drainCell(label: "seat map", workers: workers, batchSize: batchSize, layout: layout, events: 1,
                                                             quantities: [1, 2, 3, 4], sections: ["A", "B", "C", "D", nil], results: &results))
                }
            }
        }
        if scenarios.contains("events") {
            say("\n== 3. drain: 50 events at once ==")
            let perEvent = max(2, plan.tickets / 50)
            for workers in plan.workers {
                results.drain.append(try await drainCell(label: "50 events", workers: workers, batchSize: 512,
                                                         layout: .generalAdmission(capacity: perEvent), events: 50,
                                                         quantities: [1], sections: [nil], results: &results))
            }
        }
        if scenarios.contains("http") { try await httpScenario(&results) }
        if scenarios.contains("reference") { try await referenceScenario(&results) }
        if scenarios.contains("queue") { try await queueScenario(&results) }
        return results
    }

    /// A fresh, migrated database for one cell; dropped afterwards.
    func withCellDatabase<T: Sendable>(_ body: @Sendable @escaping (DatabaseConfiguration, Store) async throws -> T) async throws -> T {
        let name = "bench_\(getpid())_\(cellCounter.add(1, ordering: .relaxed).newValue)"
        try await withStore(base, logger: logger) { try await $0.execute(unsafeSQL: "CREATE DATABASE \(name)") }
        var cellConfiguration = base
        cellConfiguration.database = name
        cellConfiguration.connectionsMax = 200
        let configuration = cellConfiguration
        do {
            let result = try await withStore(configuration, logger: logger) { store in
                try await store.migrate(Migration.embedded)
                return try await body(configuration, store)
            }
            try await withStore(base, logger: logger) { try await $0.execute(unsafeSQL: "DROP DATABASE \(name) WITH (FORCE)") }
            return result
        } catch {
            try? await withStore(base, logger: logger) { try await $0.execute(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
            throw error
        }
    }

    func drainCell(label: String, workers: Int, batchSize: Int, layout: EventLayout, events: Int,
                   quantities: [Int], sections: [String?], results: inout BenchResults) async throws -> DrainRow {
        let plan = self.plan
        let logDirectory = logRoot.appendingPathComponent("cell-\(cellCounter.load(ordering: .relaxed) + 1)")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let (row, audit) = try await withCellDatabase { database, store in
            var eventIDs: [EventID] = []
            for index in 0..<events {
                let event = try await store.createEvent(name: "\(label) \(index)", layout: layout)
                eventIDs.append(event.id)
                try await store.prequeue(eventID: event.id, count: plan.intents / events, quantities: quantities, sections: sections)
            }
            try await store.execute(unsafeSQL: "VACUUM ANALYZE intents")
            let total = plan.intents / events * events
            let processes = WorkerProcesses(
                executable: WorkerProcesses.siblingExecutable(), databaseURL: database.url,
                arguments: ["--batch-size", "\(batchSize)", "--poll-milliseconds", "20", "--log-level", "info"], logDirectory: logDirectory)
            try processes.spawn(workers)
            let budget = ContinuousClock.now + .seconds(plan.cellSeconds + 10)
            // The clock starts at the first settled batch, so process start-up is not counted.
            var start: (ContinuousClock.Instant, Int)?
            var queued = total
            while ContinuousClock.now < budget {
                try await Task.sleep(for: .milliseconds(50))
                queued = try await store.totalQueued()
                if start == nil, queued < total { start = (.now, total - queued) }
                if let start, queued == 0 || ContinuousClock.now - start.0 > .seconds(plan.cellSeconds) { break }
            }
            let end = ContinuousClock.now
            let peak = processes.peakResidentKilobytes().max() ?? 0
            _ = await processes.terminateAll()
            let (startInstant, startDecided) = start ?? (end, 0)
            let decided = total - queued - startDecided
            let seconds = OpenLoad.seconds(end - startInstant)
            let records = processes.exitRecords()
            let batches = records.compactMap { Int($0["batches"] ?? "") }.reduce(0, +)
            let p50s = records.compactMap { Double($0["batch_p50_us"] ?? "") }.sorted()
            let p99 = records.compactMap { Double($0["batch_p99_us"] ?? "") }.max() ?? 0
            let audit = try await store.audit()
            let row = DrainRow(label: label, workers: workers, batchSize: batchSize, decided: decided, seconds: seconds,
                               batches: batches,
                               batchP50Milliseconds: (p50s.isEmpty ? 0 : p50s[p50s.count / 2]) / 1000, batchP99Milliseconds: p99 / 1000,
                               drained: queued == 0, workerPeakKilobytes: peak)
            return (row, audit)
        }
        if !audit.isClean { results.failures.append("\(label) workers=\(workers) batch=\(batchSize): \(audit.violations.first ?? "")") }
        say(String(format: "  %@ workers=%d batch=%5d: %8.0f allocations/s, %7.1f batches/s, batch p50 %.2f ms p99 %.2f ms%@%@",
                   label, workers, batchSize, row.allocationsPerSecond, row.batchesPerSecond, row.batchP50Milliseconds, row.batchP99Milliseconds,
                   row.drained ? "" : " (time budget hit)", audit.isClean ? "" : " AUDIT FAILED"))
        return row
    }

    func httpScenario(_ results: inout BenchResults) async throws {
        say("\n== 4. end to end over HTTP: API and 2 workers as processes, load from this one ==")
        let plan = self.plan
        let logDirectory = logRoot.appendingPathComponent("http")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let token = AccessControl.randomToken()
        let outcome = try await withCellDatabase { database, store -> (BenchResults, AuditReport) in
            var partial = BenchResults()
            let event = try await store.createEvent(name: "http", layout: .generalAdmission(capacity: EventLayout.capacityMax))
            let port = WorkerProcesses.freePort()
            let tokens = ["BOXOFFICE_PRODUCER_TOKEN": token, "BOXOFFICE_ADMIN_TOKEN": AccessControl.randomToken()]
            let api = WorkerProcesses(executable: WorkerProcesses.siblingExecutable(), databaseURL: database.url,
                                      arguments: ["--port", "\(port)", "--log-level", "warning", "--connections-max", "32"],
                                      logDirectory: logDirectory, subcommand: "serve", environment: tokens)
            let workers = WorkerProcesses(executable: WorkerProcesses.siblingExecutable(), databaseURL: database.url,
                                          arguments: ["--batch-size", "512", "--log-level", "warning"], logDirectory: logDirectory)
            try api.spawn(1)
            try workers.spawn(2)
            var httpConfiguration = HTTPClient.Configuration()
            httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
            let baseURL = "http://127.0.0.1:\(port)"
            // Peaks per phase: read, then start again from the current size.
            func notePeaks(_ phase: String) {
                partial.peaksByPhase.append((phase, api.peakResidentKilobytes().max() ?? 0, workers.peakResidentKilobytes().max() ?? 0))
                api.resetPeakResident()
                workers.resetPeakResident()
            }
            do {
                try await Self.waitForHealth(baseURL, client: client)
                notePeaks("started, idle")
                // Closed loop: this machine's HTTP ceiling (GET /health) against intake, same generator, same run.
                if let wrk = Wrk.find() {
                    partial.saturationGenerator = "\(wrk.version), one thread"
                    for connections in plan.saturationConnections {
                        let health = try wrk.run(url: "\(baseURL)/health", connections: connections, seconds: plan.httpSeconds)
                        let intake = try wrk.run(url: "\(baseURL)/events/\(event.id)/intents", connections: connections, seconds: plan.httpSeconds,
                                                 post: #"{"customer": "wrk", "quantity": 1}"#, token: token)
                        // The workers drain what intake queued before the next run, so no run pays for the last one's work.
                        while try await store.totalQueued() > 0 { try await Task.sleep(for: .milliseconds(200)) }
                        partial.saturation.append(SaturationRow(connections: connections, health: health.rate, intake: intake.rate,
                                                                failures: health.failures + intake.failures))
                    }
                } else {
                    partial.saturationGenerator = "AsyncHTTPClient in this process (install wrk for figures that measure the server, not the generator)"
                    let health = await Saturation.requestsPerSecond(client: client, connections: 64, duration: .seconds(plan.httpSeconds), expect: .ok) { _ in
                        HTTPClientRequest(url: "\(baseURL)/health")
                    }
                    let intake = await Saturation.requestsPerSecond(client: client, connections: 64, duration: .seconds(plan.httpSeconds), expect: .accepted) { index in
                        var request = HTTPClientRequest(url: "\(baseURL)/events/\(event.id)/intents")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.headers.add(name: "Authorization", value: "Bearer \(token)")
                        request.body = .bytes(.init(string: #"{"customer": "sat-\#(index)", "quantity": 1}"#))
                        return request
                    }
                    partial.saturation.append(SaturationRow(connections: 64, health: health.rate, intake: intake.rate, failures: health.failures + intake.failures))
                }
                for row in partial.saturation {
                    say(String(format: "  %4d connections: GET /health %8.0f req/s; POST intents %8.0f req/s (%.2f× health)%@",
                               row.connections, row.health, row.intake, row.intake / max(row.health, 1), row.failures > 0 ? " (\(row.failures) failed)" : ""))
                }
                say("  generator: \(partial.saturationGenerator)")
                notePeaks("closed loop (\(partial.saturation.map { "\($0.connections)" }.joined(separator: ", ")) connections)")
                // Bulk intake: producers that batch on their side send 1,000 intents per request (NDJSON).
                let bulkItems = 1_000
                let bulkBody = (0..<bulkItems).map { #"{"customer": "bulk-\#($0)", "quantity": 1}"# }.joined(separator: "\n")
                let bulk = await Saturation.requestsPerSecond(client: client, connections: 8, duration: .seconds(plan.httpSeconds), expect: .ok) { _ in
                    var request = HTTPClientRequest(url: "\(baseURL)/events/\(event.id)/intents/batch")
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/x-ndjson")
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    request.body = .bytes(.init(string: bulkBody))
                    return request
                }
                partial.bulkIntentsPerSecond = bulk.rate * Double(bulkItems)
                say(String(format: "  POST intents/batch: %8.0f intents/s (%d per request, 8 connections)", bulk.rate * Double(bulkItems), bulkItems))
                while try await store.totalQueued() > 0 { try await Task.sleep(for: .milliseconds(500)) }
                notePeaks("bulk intake")
                try await Self.settleQueue(store)
                for rate in plan.httpRates {
                    var load = OpenLoad.Configuration(baseURL: baseURL, eventID: event.id, rate: rate, duration: .seconds(plan.httpSeconds))
                    load.token = token
                    let result = try await OpenLoad(load).run()
                    // Every accepted intent's decision time, from the outcomes table once the queue is drained.
                    let drainDeadline = ContinuousClock.now + .seconds(60)
                    while try await store.totalQueued() > 0, ContinuousClock.now < drainDeadline { try await Task.sleep(for: .milliseconds(100)) }
                    let decidedAt = try await store.decidedAt(result.acceptedIntents.map(\.id))
                    var decision = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                    for (id, intended) in result.acceptedIntents {
                        guard let decided = decidedAt[id] else { continue }
                        _ = decision.record(UInt64(max(0, decided.timeIntervalSince(intended)) * 1_000_000))
                    }
                    let row = HTTPRow(rate: rate, result: result, decisionLatency: decision, undecided: result.acceptedIntents.count - decidedAt.count)
                    partial.http.append(row)
                    let ms: (Histogram<UInt64>, Double) -> Double = { Double($0.valueAtPercentile($1)) / 1000 }
                    say(String(format: "  offered %6d/s: accepted %d/%d, intake p50 %.1f p99 %.1f ms; intake→decided p50 %.1f p99 %.1f p99.9 %.1f ms; long-poll (1 in %d) p50 %.1f p99 %.1f ms",
                               rate, result.accepted, result.offered, ms(result.intakeLatency, 50), ms(result.intakeLatency, 99),
                               ms(decision, 50), ms(decision, 99), ms(decision, 99.9), load.longPollEvery,
                               ms(result.outcomeLatency, 50), ms(result.outcomeLatency, 99)))
                }
                notePeaks("open loop (\(plan.httpRates.map { "\($0)" }.joined(separator: ", ")) intents/s)")
                partial.apiPeakKilobytes = partial.peaksByPhase.map(\.api).max()
                partial.httpWorkerPeakKilobytes = partial.peaksByPhase.map(\.worker).max()
                partial.apiBreakdownKilobytes = api.residentBreakdownKilobytes().first
                partial.workerBreakdownKilobytes = workers.residentBreakdownKilobytes().max { $0.anonymous < $1.anonymous }
            } catch {
                try? await client.shutdown()
                await api.terminateAll()
                await workers.terminateAll()
                throw error
            }
            try await client.shutdown()
            await api.terminateAll()
            await workers.terminateAll()
            return (partial, try await store.audit())
        }
        results.http = outcome.0.http
        results.saturation = outcome.0.saturation
        results.saturationGenerator = outcome.0.saturationGenerator
        results.bulkIntentsPerSecond = outcome.0.bulkIntentsPerSecond
        results.apiPeakKilobytes = outcome.0.apiPeakKilobytes
        results.peaksByPhase = outcome.0.peaksByPhase
        results.apiBreakdownKilobytes = outcome.0.apiBreakdownKilobytes
        results.workerBreakdownKilobytes = outcome.0.workerBreakdownKilobytes
        results.httpWorkerPeakKilobytes = outcome.0.httpWorkerPeakKilobytes
        if !outcome.1.isClean { results.failures.append("http: \(outcome.1.violations.first ?? "")") }
        for peak in results.peaksByPhase { say("  peak RSS, \(peak.phase): API \(peak.api / 1024) MB, worker \(peak.worker / 1024) MB") }
        say("  peak RSS: API \((results.apiPeakKilobytes ?? 0) / 1024) MB, worker \((results.httpWorkerPeakKilobytes ?? 0) / 1024) MB; audit \(outcome.1.isClean ? "clean" : "FAILED")")
    }

    /// Before a timed run that follows millions of intents in and out: vacuum the queue (its dead index
    /// entries are walked by every claim and status read until autovacuum runs) and checkpoint (the
    /// pages those runs dirtied are written now, not during the measurement).
    static func settleQueue(_ store: Store) async throws {
        try await store.execute(unsafeSQL: "VACUUM ANALYZE intents")
        try await store.execute(unsafeSQL: "CHECKPOINT")
    }

    static func waitForHealth(_ baseURL: String, client: HTTPClient) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let response = try? await client.execute(HTTPClientRequest(url: "\(baseURL)/health"), timeout: .seconds(2)), response.status == .ok { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CommandError("the API process did not answer /health within 30 s")
    }

    func referenceScenario(_ results: inout BenchResults) async throws {
        say("\n== 5. reference designs: one transaction per purchase, same schema ==")
        let plan = self.plan
        for strategy in ReferenceStrategy.allCases {
            for clients in plan.referenceClients {
                let (rate, audit) = try await withCellDatabase { _, store -> (Double, AuditReport) in
                    let capacity = 1_000_000
                    let event = try await store.createEvent(name: strategy.rawValue, layout: .generalAdmission(capacity: capacity))
                    if strategy == .skipLockedSeat { try await store.prepareReferenceSeats(eventID: event.id, capacity: capacity) }
                    let deadline = ContinuousClock.now + .seconds(plan.referenceSeconds)
                    let start = ContinuousClock.now
                    let sold = try await withThrowingTaskGroup(of: Int.self) { group in
                        for client in 0..<clients {
                            group.addTask {
                                var purchase = 0, sold = 0
                                while ContinuousClock.now < deadline {
                                    purchase += 1
                                    if try await store.referencePurchase(strategy, eventID: event.id, customer: "ref-\(client)-\(purchase)") { sold += 1 }
                                }
                                return sold
                            }
                        }
                        return try await group.reduce(0, +)
                    }
                    let rate = Double(sold) / OpenLoad.seconds(ContinuousClock.now - start)
                    if strategy == .skipLockedSeat { try await store.reconcileReferenceSeats(eventID: event.id) }
                    return (rate, try await store.audit())
                }
                results.reference.append(ReferenceRow(strategy: strategy, clients: clients, purchasesPerSecond: rate))
                if !audit.isClean { results.failures.append("reference \(strategy.rawValue): \(audit.violations.first ?? "")") }
                say(String(format: "  %@, %3d clients: %8.0f purchases/s%@", strategy.title, clients, rate, audit.isClean ? "" : " AUDIT FAILED"))
            }
        }
    }

    func queueScenario(_ results: inout BenchResults) async throws {
        say("\n== 6. claim cost vs queue length (batch 512, one worker in this process) ==")
        for length in plan.queueLengths {
            let row = try await withCellDatabase { _, store -> QueueRow in
                let event = try await store.createEvent(name: "queue \(length)", layout: .generalAdmission(capacity: EventLayout.capacityMax))
                // The measured batches take 30 × 512 intents: queue those on top, so the length holds.
                var remaining = length + 30 * 512
                while remaining > 0 {
                    let chunk = min(remaining, 500_000)
                    try await store.prequeue(eventID: event.id, count: chunk)
                    remaining -= chunk
                }
                try await Self.settleQueue(store)
                var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                for _ in 0..<30 {
                    let started = ContinuousClock.now
                    _ = try await store.allocateNextBatch(batchSizeMax: 512) { Allocator.allocate($1, from: &$0) }
                    _ = histogram.record(SaleLoad.microseconds(ContinuousClock.now - started))
                }
                return QueueRow(length: length, batchP50Milliseconds: Double(histogram.valueAtPercentile(50)) / 1000,
                                batchP99Milliseconds: Double(histogram.valueAtPercentile(99)) / 1000)
            }
            results.queue.append(row)
            say(String(format: "  %10d queued: batch p50 %.2f ms, p99 %.2f ms", length, row.batchP50Milliseconds, row.batchP99Milliseconds))
        }
    }
}

/// Progress lines, flushed at once so a long run shows where it is.
func say(_ line: String) {
    print(line)
    fflush(nil)
}
