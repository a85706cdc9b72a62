import AsyncHTTPClient
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Logging
import Synchronization

/// Runs the scenarios (one file each: DrainScenario, HTTPScenario, ScrapeScenario, ReferenceScenario, QueueScenario, …);
/// owns the database server and a connection to its maintenance database.
package final class BenchRunner: Sendable {
    let plan: BenchPlan
    let logger: Logger
    let server: DatabaseServer
    /// The machine and server the figures were taken on, for the report.
    package let environmentLines: [String]
    let cellCounter = Atomic<Int>(0)
    let logRoot: URL

    init(plan: BenchPlan, logger: Logger, server: DatabaseServer, environmentLines: [String]) {
        self.plan = plan
        self.logger = logger
        self.server = server
        self.environmentLines = environmentLines
        logRoot = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: logRoot, withIntermediateDirectories: true)
    }

    /// DATABASE_URL's server, else a private cluster with default durability sized for the bench.
    package static func start(plan: BenchPlan, logger: Logger) async throws -> BenchRunner {
        let options = EmbeddedPostgres.Options(
            durable: true, maxConnections: 400, sharedBuffers: "512MB",
            extraSettings: ["max_wal_size": "4GB", "checkpoint_timeout": "15min", "autovacuum_naptime": "1s"])
        let server = try DatabaseServer.start(
            privateCluster: options, logger: logger,
            adjust: { $0.statementTimeoutMilliseconds = 600_000 }, say: say)
        do {
            let settings = try await withStore(server.base, logger: logger) { store in
                (
                    try await store.setting("server_version"), try await store.setting("fsync"), try await store.setting("synchronous_commit"),
                    try await store.setting("shared_buffers"), try await store.setting("autovacuum_naptime")
                )
            }
            let cpu =
                (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
                .first { $0.hasPrefix("model name") }?.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
            let source = server.cluster == nil ? " (DATABASE_URL)" : " (private cluster)"
            let lines = [
                "machine: \(ProcessInfo.processInfo.activeProcessorCount) cores (\(cpu)), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; "
                    + "PostgreSQL on the same machine",
                "PostgreSQL \(settings.0): fsync=\(settings.1), synchronous_commit=\(settings.2), shared_buffers=\(settings.3), "
                    + "autovacuum_naptime=\(settings.4)\(source)",
            ]
            for line in lines { say(line) }
            return BenchRunner(plan: plan, logger: logger, server: server, environmentLines: lines)
        } catch {
            server.destroy()
            throw error
        }
    }

    /// Stops the private cluster, if one was started.
    package func finish() {
        server.destroy()
    }

    package func runAll() async throws -> BenchResults {
        var results = BenchResults()
        let scenarios = plan.scenarios
        if scenarios.contains("drain") { try await drainScenario(&results) }
        if scenarios.contains("holds") { try await holdsScenario(&results) }
        if scenarios.contains("seatmap") { try await seatMapScenario(&results) }
        if scenarios.contains("events") { try await eventsScenario(&results) }
        if scenarios.contains("http") { try await httpScenario(&results) }
        if scenarios.contains("scrape") { try await scrapeScenario(&results) }
        if scenarios.contains("reference") { try await referenceScenario(&results) }
        if scenarios.contains("queue") { try await queueScenario(&results) }
        return results
    }

    /// A fresh, migrated database for one cell; dropped afterwards.
    func withCellDatabase<T: Sendable>(_ body: @Sendable @escaping (DatabaseConfiguration, Store) async throws -> T) async throws -> T {
        _ = cellCounter.add(1, ordering: .relaxed)
        var cell = try await server.migratedDatabase(prefix: "bench")
        cell.connectionsMax = 200
        let configuration = cell
        do {
            let result = try await withStore(configuration, logger: logger) { store in try await body(configuration, store) }
            try await server.drop(configuration)
            return result
        } catch {
            try? await server.drop(configuration, ifExists: true)
            throw error
        }
    }

    /// Waits (bounded) until the workers have drained the queue; `after` names the run that filled it, for the error.
    func waitForDrain(_ store: Store, after: String, every interval: Duration = .milliseconds(200)) async throws {
        try await waitUntil("the workers to drain what \(after) queued", every: interval, timeout: drainTimeout) {
            let queued = try await store.totalQueued()
            return queued == 0 ? nil : "\(queued) intents queued"
        }
    }

    /// How long the workers get to drain what one timed HTTP run queued: generous (ten times the run,
    /// at least two minutes), but not forever.
    var drainTimeout: Duration { .seconds(max(120, plan.httpSeconds * 10)) }

    static func waitForHealth(_ baseURL: String, client: HTTPClient) async throws {
        try await waitUntil("the API process to answer \(baseURL)/health", timeout: .seconds(30)) {
            let response = try? await client.execute(HTTPClientRequest(url: "\(baseURL)/health"), timeout: .seconds(2))
            return response?.status == .ok ? nil : "no 200 (\(response.map { "\($0.status.code)" } ?? "no answer"))"
        }
    }
}

/// Progress lines, flushed at once so a long run shows where it is.
func say(_ line: String) {
    print(line)
    fflush(nil)
}
