import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeMetrics
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

/// The one PostgreSQL of this test run: DATABASE_URL's server if set, else a private cluster
/// started from the installed binaries (as the `postgres` user when running as root).
enum TestCluster {
    // Tests assert behaviour, not durability: fsync off keeps them quick.
    static let server: Result<DatabaseServer, any Error> = Result {
        try DatabaseServer.start(privateCluster: .init(durable: false, maxConnections: 400), logger: testLogger)
    }

    /// A fresh database with no tables yet, for one test (migration tests apply what they need).
    static func emptyDatabase() async throws -> DatabaseConfiguration {
        var configuration = try await server.get().emptyDatabase(prefix: "t")
        configuration.connectionsMax = 32
        return configuration
    }

    /// A fresh, migrated database for one test.
    static func freshDatabase() async throws -> DatabaseConfiguration {
        var configuration = try await server.get().migratedDatabase(prefix: "t")
        configuration.connectionsMax = 32
        return configuration
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "boxoffice.tests")
    logger.logLevel = .warning
    return logger
}()

/// A fresh database with the API running in-process on a free port.
struct LiveAPI: Sendable {
    let store: Store
    let baseURL: String
    let database: DatabaseConfiguration
    let http: HTTPClient

    struct Reply: Sendable {
        let status: Int
        /// Top-level scalar fields, as text.
        let fields: [String: String]
        /// Top-level arrays of strings (e.g. seats).
        let arrays: [String: [String]]
        let headers: [(String, String)]

        subscript(key: String) -> String? { fields[key] }
        var error: String? { fields["error"] }
    }

    /// Sends a request; `body` is raw bytes so malformed input can be sent as is.
    func send(_ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
        let (status, replyHeaders, json) = try await exchange(method, path, body: body, headers: headers)
        return Reply(
            status: status,
            fields: json.compactMapValues { $0 is [Any] || $0 is [String: Any] || $0 is NSNull ? nil : "\($0)" },
            arrays: json.compactMapValues { $0 as? [String] },
            headers: replyHeaders)
    }

    /// Sends a request and returns the status with the whole JSON object (nested values included).
    func sendJSON(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []
    ) async throws -> (status: Int, object: [String: Any]) {
        let (status, _, json) = try await exchange(method, path, body: body, headers: headers)
        return (status, json)
    }

    private func exchange(
        _ method: HTTPMethod, _ path: String, body: String?, headers: [(String, String)]
    ) async throws -> (Int, [(String, String)], [String: Any]) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            if !request.headers.contains(name: "Content-Type") { request.headers.add(name: "Content-Type", value: "application/json") }
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 1 << 24)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        return (Int(response.status.code), response.headers.map { ($0.name, $0.value) }, json)
    }

    func post(_ path: String, _ body: String, headers: [(String, String)] = []) async throws -> Reply {
        try await send(.POST, path, body: body, headers: headers)
    }

    func get(_ path: String) async throws -> Reply { try await send(.GET, path) }

    /// Counts rows of a table: "nothing was written" checks.
    func count(_ table: String) async throws -> Int {
        var total = 0
        for try await value in try await store.client.query("SELECT count(*) FROM \(unescaped: table)").decode(Int.self) { total = value }
        return total
    }

    func createGeneralAdmission(_ capacity: Int) async throws -> Int64 {
        let reply = try await post("/events", #"{"name": "GA \#(capacity)", "capacity": \#(capacity)}"#)
        #expect(reply.status == 201)
        return Int64(reply["id"] ?? "") ?? -1
    }
}

/// Runs `body` against an API on a fresh database, then shuts everything down.
/// `prepare` may change how the database is reached (say, through PgBouncer) before anything connects.
func withLiveAPI(
    configure: (inout APIConfiguration) -> Void = { _ in },
    prepare: (DatabaseConfiguration) async throws -> DatabaseConfiguration = { $0 },
    _ body: @Sendable @escaping (LiveAPI) async throws -> Void
) async throws {
    let database = try await prepare(try await TestCluster.freshDatabase())
    var configuration = APIConfiguration()
    configuration.port = 0
    configure(&configuration)
    // As `serve` does: the pool's leases are counted where the API's metrics are.
    let leases = configuration.metrics.map { DatabasePoolMetrics($0, pool: .api, connectionsMax: database.connectionsMax) }
    let store = Store(configuration: database, logger: testLogger, leaseObserver: leases)
    let port = Mutex<Int?>(nil)
    let app = buildApplication(store: store, configuration: configuration, logger: testLogger) { bound in port.withLock { $0 = bound } }
    var httpConfiguration = HTTPClient.Configuration()
    httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
    do {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: testLogger))
            group.addTask { try await serviceGroup.run() }
            defer { group.cancelAll() }
            try await waitUntil("the API to listen", every: .milliseconds(10), timeout: .seconds(30)) {
                port.withLock { $0 } == nil ? "no port bound" : nil
            }
            try await body(LiveAPI(store: store, baseURL: "http://127.0.0.1:\(port.withLock { $0 }!)", database: database, http: http))
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    } catch {
        try? await http.shutdown()
        throw error
    }
    try await http.shutdown()
}

/// `boxoffice work` processes against `database`, SIGTERMed (and checked) by the caller.
func workerProcesses(_ database: DatabaseConfiguration, batchSize: Int, extra: [String] = []) -> ChildProcesses {
    ChildProcesses(
        executable: ChildProcesses.siblingExecutable(),
        databaseURL: database.url,
        arguments: ["--batch-size", "\(batchSize)", "--log-level", "warning", "--poll-milliseconds", "100"] + extra,
        logDirectory: workerLogDirectory)
}

/// The last lines each worker of this run logged, for a failure message.
func workerLogTail(lines: Int = 8) -> String {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: workerLogDirectory.path).sorted()) ?? []
    return files.map { file in
        let text = (try? String(contentsOfFile: workerLogDirectory.appendingPathComponent(file).path, encoding: .utf8)) ?? ""
        return "== \(file)\n" + text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }.joined(separator: "\n")
}

/// Worker logs of this test run, kept for a failure's post-mortem.
let workerLogDirectory: URL = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-test-workers-\(getpid())")
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}()

/// Corrupts the database with `corrupt`, expects the audit to report `invariant` (a violation's
/// prefix), restores it with `restore` and expects a clean audit again: each check can fail.
func expectAuditCatches(_ store: Store, _ corrupt: String, _ restore: String, _ invariant: String) async throws {
    try await store.client.query(PostgresQuery(unsafeSQL: corrupt))
    let report = try await store.audit()
    #expect(report.violations.contains { $0.hasPrefix(invariant) }, "\(invariant) not caught: \(report.violations)")
    try await store.client.query(PostgresQuery(unsafeSQL: restore))
    let restored = try await store.audit()
    #expect(restored.isClean, "after restoring: \(restored.violations)")
}

/// Runs `sale` while, every second, a random one of `workers` is SIGKILLed and replaced (and `alongside`
/// runs, if given); both stop when the sale ends. Returns the sale's result and how many were killed.
func duringWorkerChaos(
    _ workers: ChildProcesses, seed: UInt64, alongside: (@Sendable () async -> Void)? = nil,
    _ sale: @Sendable @escaping () async -> SaleLoad.Result
) async -> (SaleLoad.Result, Int) {
    let kills = ChaosCounter()
    let result = await withTaskGroup(of: SaleLoad.Result?.self) { group in
        group.addTask {
            var random = SplitMix64(seed: seed)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if Task.isCancelled { break }
                workers.kill(at: Int(random.next() % UInt64(max(workers.count, 1))))
                try? workers.spawn(1)
                kills.increment()
            }
            return nil
        }
        if let alongside {
            group.addTask {
                await alongside()
                return nil
            }
        }
        group.addTask { await sale() }
        var result: SaleLoad.Result?
        for await value in group where value != nil {
            result = value
            group.cancelAll()
        }
        return result!
    }
    return (result, kills.value)
}

/// The value of `series` (a metric name with its labels, exactly as exposed) in a Prometheus text
/// exposition; nil when absent.
func exposedSample(_ series: String, in exposition: String) -> Double? {
    exposition.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
}
