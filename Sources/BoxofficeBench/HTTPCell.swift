import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Histogram

/// What the HTTP scenarios (http, scrape) run against: one `serve` with producer and admin tokens and
/// two `work` processes on one cell database, the event intake writes to, and the client that talks to them.
struct HTTPCell: Sendable {
    let api: ChildProcesses
    let workers: ChildProcesses
    let client: HTTPClient
    let baseURL: String
    let eventID: Int64
    let producerToken: String
    let adminToken: String
    /// Each worker's `/metrics`, when the workers were started with `--metrics-port`.
    let workerMetricsURLs: [String]

    var intakeURL: String { "\(baseURL)/events/\(eventID)/intents" }

    /// Connections of the in-process closed-loop generator, used when wrk is not installed.
    static let fallbackConnections = 64
}

extension BenchRunner {
    /// Starts the cell's processes (`workerMetrics`: each worker on a metrics port of its own), waits
    /// until they answer, runs `body`, and stops them however `body` ends.
    func withHTTPCell<T: Sendable>(
        _ database: DatabaseConfiguration, _ store: Store, logDirectory: URL, workerMetrics: Bool = false,
        _ body: (HTTPCell) async throws -> T
    ) async throws -> T {
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let event = try await store.createEvent(name: "http", layout: .generalAdmission(capacity: EventLayout.capacityMax))
        let port = try Loopback.freePort()
        let producerToken = AccessControl.randomToken()
        let adminToken = AccessControl.randomToken()
        let api = ChildProcesses(
            executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
            arguments: ["--port", "\(port)", "--log-level", "warning", "--connections-max", "32"],
            logDirectory: logDirectory, subcommand: "serve",
            environment: ["BOXOFFICE_PRODUCER_TOKEN": producerToken, "BOXOFFICE_ADMIN_TOKEN": adminToken])
        let workers = ChildProcesses(
            executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
            arguments: ["--batch-size", "512", "--log-level", "warning"], logDirectory: logDirectory)
        var metricsPorts: [Int] = []
        while workerMetrics && metricsPorts.count < 2 {
            let candidate = try Loopback.freePort()
            if candidate != port && !metricsPorts.contains(candidate) { metricsPorts.append(candidate) }
        }
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let cell = HTTPCell(
            api: api, workers: workers, client: client, baseURL: "http://127.0.0.1:\(port)", eventID: event.id,
            producerToken: producerToken, adminToken: adminToken,
            workerMetricsURLs: metricsPorts.map { "http://127.0.0.1:\($0)/metrics" })
        func stop() async {
            try? await client.shutdown()
            await api.terminateAll()
            await workers.terminateAll()
        }
        do {
            try api.spawn(1)
            if metricsPorts.isEmpty {
                try workers.spawn(2)
            } else {
                for metricsPort in metricsPorts { try workers.spawn(1, extra: ["--metrics-port", "\(metricsPort)"]) }
            }
            try await Self.waitForHealth(cell.baseURL, client: client)
            for metricsPort in metricsPorts { try await Self.waitForHealth("http://127.0.0.1:\(metricsPort)", client: client) }
            let result = try await body(cell)
            await stop()
            return result
        } catch {
            await stop()
            throw error
        }
    }

    /// The closed-loop generator's name, for the report.
    static func closedLoopGenerator(_ wrk: Wrk?) -> String {
        wrk.map { "\($0.version), one thread" }
            ?? "AsyncHTTPClient in this process (install wrk for figures that measure the server, not the generator)"
    }

    /// Closed-loop `POST /events/{id}/intents` for `--http-seconds`: wrk at `connections` when it is
    /// installed, else the in-process generator at ``HTTPCell/fallbackConnections``. Accepted requests per second.
    func intakeCeiling(_ cell: HTTPCell, wrk: Wrk?, connections: Int) async throws -> (rate: Double, failures: Int) {
        if let wrk {
            let result = try wrk.run(
                url: cell.intakeURL, connections: connections, seconds: plan.httpSeconds,
                post: #"{"customer": "wrk", "quantity": 1}"#, token: cell.producerToken)
            return (result.rate, result.failures)
        }
        let url = cell.intakeURL
        let token = cell.producerToken
        return await Saturation.requestsPerSecond(
            client: cell.client, connections: HTTPCell.fallbackConnections, duration: .seconds(plan.httpSeconds), expect: .accepted
        ) { index in
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.body = .bytes(.init(string: #"{"customer": "sat-\#(index)", "quantity": 1}"#))
            return request
        }
    }

    /// Closed-loop `GET /health` for `--http-seconds`, the same generator as ``intakeCeiling(_:wrk:connections:)``.
    func healthCeiling(_ cell: HTTPCell, wrk: Wrk?, connections: Int) async throws -> (rate: Double, failures: Int) {
        if let wrk {
            let result = try wrk.run(url: "\(cell.baseURL)/health", connections: connections, seconds: plan.httpSeconds)
            return (result.rate, result.failures)
        }
        let url = "\(cell.baseURL)/health"
        return await Saturation.requestsPerSecond(
            client: cell.client, connections: HTTPCell.fallbackConnections, duration: .seconds(plan.httpSeconds), expect: .ok
        ) { _ in HTTPClientRequest(url: url) }
    }

    /// One open-loop intake run at `rate` intents/s for `--http-seconds` (intake latency, and the sampled
    /// long polls), with the configuration it ran with.
    func openLoad(_ cell: HTTPCell, rate: Int) async throws -> (load: OpenLoad.Configuration, result: OpenLoad.Result) {
        var load = OpenLoad.Configuration(baseURL: cell.baseURL, eventID: cell.eventID, rate: rate, duration: .seconds(plan.httpSeconds))
        load.token = cell.producerToken
        return (load, try await OpenLoad(load).run())
    }
}
