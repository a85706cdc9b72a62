import ArgumentParser
import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Logging
import ServiceLifecycle

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole flash sale on this machine and print what happened.",
        discussion: """
            Starts a private PostgreSQL (unless DATABASE_URL is set), migrates, starts the API in this \
            process and several `boxoffice work` processes, lets many concurrent buyers send intents over \
            HTTP (each long-polls its outcome), waits for every outcome, audits every invariant, prints \
            a summary and cleans up. Exits 1 if any invariant broke.

            With --holds the event holds each grant for --hold-seconds while its buyer pays: most buyers \
            confirm their hold at once, --walk-away-percent of them never pay, so their holds expire and the \
            workers put those tickets back into the sale, where later buyers get them. The demo waits for \
            the last holds to expire and reports confirmed, expired and resold tickets.
            """)

    @Option(help: "Intents the buyers send.") var intents = 20_000
    @Option(help: "Tickets on sale (general admission), or seats when --seat-map is given.") var seats = 5_000
    @Option(help: "Concurrent buyers.") var clients = 200
    @Option(help: "Worker processes.") var workers = 4
    @Option(help: "Intents per worker batch.") var batchSize = 512
    @Flag(help: "Sell a seat map (sections of 25 seats per row, best available in a section) instead of general admission.") var seatMap = false
    @Option(help: "Random seed for quantities and sections.") var seed: UInt64 = 42
    @Flag(help: "Hold each grant while its buyer pays; some buyers never pay (see --walk-away-percent).") var holds = false
    @Option(help: "With --holds: seconds a grant is held (1...3600).") var holdSeconds = 3
    @Option(help: "With --holds: percent of buyers granted a hold who never pay (0...100).") var walkAwayPercent = 30
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...1_000_000).contains(intents) else { throw ValidationError("--intents must be 1...1000000") }
        guard (100...EventLayout.capacityMax).contains(seats) else { throw ValidationError("--seats must be 100...\(EventLayout.capacityMax)") }
        guard (1...2_000).contains(clients) else { throw ValidationError("--clients must be 1...2000") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64") }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...100000") }
        guard (1...Store.holdSecondsMax).contains(holdSeconds) else { throw ValidationError("--hold-seconds must be 1...\(Store.holdSecondsMax)") }
        guard (0...100).contains(walkAwayPercent) else { throw ValidationError("--walk-away-percent must be 0...100") }
    }

    func run() async throws {
        var logger = logging.bootstrap(label: "boxoffice.demo")
        logger.logLevel = max(logging.logLevel, .warning)
        let say: @Sendable (String) -> Void = {
            print($0)
            fflush(nil)
        }

        let server = try DatabaseServer.start(privateCluster: .init(extraSettings: ["autovacuum_naptime": "1s"]), logger: logger, say: say)
        defer { server.destroy() }
        var databaseConfiguration = server.base
        databaseConfiguration.connectionsMax = 24
        // The API runs in this process: its pool behaves as `serve`'s does.
        databaseConfiguration.keepsConnectionsOpen = true

        let logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-demo-\(getpid())")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let store = Store(configuration: databaseConfiguration, logger: logger)
        var api = APIConfiguration()
        api.port = 0
        let producerToken = AccessControl.randomToken()
        api.access = .tokens(producer: producerToken, admin: AccessControl.randomToken())
        let portBox = PortBox()
        let app = buildApplication(store: store, configuration: api, logger: logger) { port in portBox.set(port) }
        let workerProcesses = ChildProcesses(
            executable: ChildProcesses.siblingExecutable(), databaseURL: databaseConfiguration.url,
            arguments: ["--batch-size", "\(batchSize)", "--log-level", "warning"], logDirectory: logDirectory)
        let layout: EventLayout =
            seatMap
            ? .seatMap(Self.sections(seats: seats))
            : .generalAdmission(capacity: seats)
        let settings = self

        let summary: DemoSummary = try await withThrowingTaskGroup(of: DemoSummary?.self) { group in
            let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: logger))
            group.addTask {
                try await serviceGroup.run()
                return nil
            }
            defer { group.cancelAll() }
            // The server reports its port once its services, the Store's pool first, are running.
            let port = try await portBox.wait()
            try await store.checkReachable()
            let applied = try await DatabaseServer.migrate(store)
            say("migrated: \(applied.isEmpty ? "already up to date" : applied.joined(separator: ", "))")
            let event = try await store.createEvent(
                name: "Demo flash sale", layout: layout, holdSeconds: settings.holds ? settings.holdSeconds : 0)
            try workerProcesses.spawn(settings.workers)
            say(
                "event \(event.id): \(layout.capacity) \(settings.seatMap ? "seats" : "tickets"); API on http://127.0.0.1:\(port); \(settings.workers) worker processes (batch \(settings.batchSize)); worker logs in \(logDirectory.path)"
            )
            say("\(settings.clients) buyers send \(settings.intents) intents, each waiting for its outcome…")
            if settings.holds {
                say(
                    "holds: each grant is held \(settings.holdSeconds) s; \(100 - settings.walkAwayPercent)% of buyers confirm theirs at once, \(settings.walkAwayPercent)% never pay"
                )
            }

            var load = SaleLoad.Configuration(baseURL: "http://127.0.0.1:\(port)", eventID: event.id, intents: settings.intents)
            load.clients = settings.clients
            load.token = producerToken
            load.seed = settings.seed
            load.quantities = 1...4
            if settings.holds { load.payingShare = Double(100 - settings.walkAwayPercent) / 100 }
            // Generous: a million intents at this machine's ~2,000/s need ~8 minutes.
            load.timeLimit = .seconds(max(180, settings.intents / 100))
            if case .seatMap(let sections) = layout { load.sections = [nil] + sections.map(\.name) }
            var httpConfiguration = HTTPClient.Configuration()
            httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = settings.clients
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
            let progress = SaleLoad.Progress()
            let result = await withTaskGroup(of: SaleLoad.Result?.self) { reporters in
                reporters.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        if Task.isCancelled { break }
                        say("  accepted \(progress.accepted)/\(settings.intents), decided \(progress.decided)")
                    }
                    return nil
                }
                let sale = SaleLoad(load)
                reporters.addTask { await sale.run(client: client, progress: progress) }
                var result: SaleLoad.Result?
                for await value in reporters {
                    if let value {
                        result = value
                        reporters.cancelAll()
                    }
                }
                return result!
            }
            try await client.shutdown()
            if settings.holds {
                say("waiting for the last holds to expire (\(settings.holdSeconds) s) and their tickets to go back…")
                try await waitUntil("holds settled", every: .milliseconds(200), timeout: .seconds(settings.holdSeconds + 60)) {
                    guard let summary = try await store.eventSummary(event.id) else { return "no event" }
                    return summary.held > 0 || summary.pending > 0 ? "\(summary.held) held, \(summary.pending) pending" : nil
                }
                try await waitUntil("returns applied", every: .milliseconds(200), timeout: .seconds(60)) {
                    try await store.audit(eventID: event.id).journalPending > 0 ? "journal rows left" : nil
                }
            }
            let exitCodes = await workerProcesses.terminateAll()
            let audit = try await store.audit(eventID: event.id)
            guard let final = try await store.eventSummary(event.id) else { throw CommandError("event \(event.id) vanished") }
            // Let the API drain and close its pool before leaving (cancelling it instead logs errors).
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
            return DemoSummary(result: result, audit: audit, event: final, workerExitCodes: exitCodes, holds: settings.holds)
        }
        summary.print(say: say, intents: intents)
        if !summary.isClean { throw ExitCode(1) }
    }

    /// Sections of 25 seats per row: A gets half the seats, B and C a quarter each.
    static func sections(seats: Int) -> [SectionLayout] {
        let width = 25
        let rowsA = max(1, seats / 2 / width)
        let rowsB = max(1, (seats - rowsA * width) / 2 / width)
        let rowsC = max(1, (seats - (rowsA + rowsB) * width) / width)
        return [
            SectionLayout(name: "A", rows: rowsA, seatsPerRow: width),
            SectionLayout(name: "B", rows: rowsB, seatsPerRow: width),
            SectionLayout(name: "C", rows: rowsC, seatsPerRow: width),
        ]
    }
}

/// Hands the port the server bound to (port 0 picks one) to the code waiting for it.
final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?

    func set(_ port: Int) { lock.withLock { self.port = port } }

    func wait(timeout: Duration = .seconds(30)) async throws -> Int {
        try await waitUntil("the API to listen", every: .milliseconds(10), timeout: timeout) {
            lock.withLock { port } == nil ? "no port bound" : nil
        }
        return lock.withLock { port }!
    }
}

struct DemoSummary: Sendable {
    let result: SaleLoad.Result
    let audit: AuditReport
    let event: EventSummary
    let workerExitCodes: [Int32]
    let holds: Bool

    var oversold: Int { max(0, event.sold + event.held - event.capacity) }
    /// Tickets that came back into the sale (expired or released holds): all tickets ever granted
    /// minus those still sold or held.
    var ticketsReturned: Int { result.ticketsConfirmed - (event.capacity - event.available) }
    var duplicateSeats: Int { result.seats.count - Set(result.seats).count }
    var lost: Int { result.accepted.count - result.decided - result.undecided }

    var isClean: Bool {
        audit.isClean && oversold == 0 && result.undecided == 0 && lost == 0 && workerExitCodes.allSatisfy { $0 == 0 }
            && (holds
                ? result.ticketsPaid == event.sold && event.held == 0 && result.confirmFailures.isEmpty
                : result.ticketsConfirmed == event.sold && duplicateSeats == 0)
    }

    func print(say: (String) -> Void, intents: Int) {
        let seconds = Double(result.duration.components.seconds) + Double(result.duration.components.attoseconds) / 1e18
        let ms: (UInt64) -> String = { String(format: "%.1f ms", Double($0) / 1000) }
        say("")
        say("== flash sale result ==")
        say(
            "intents sent        \(intents), accepted (202) \(result.accepted.count), refused at intake \(result.intakeFailures.values.reduce(0, +)) \(result.intakeFailures.isEmpty ? "" : "\(result.intakeFailures)"), transport errors \(result.transportErrors)"
        )
        if holds {
            say(
                "outcomes            held \(result.held) (then: paid \(result.paid), walked away \(result.walkedAway), paid too late \(result.paidTooLate)), rejected \(result.rejected), undecided \(result.undecided)"
            )
            say("holds               confirmed \(audit.confirmed), expired \(audit.expired), released \(audit.released), still held \(audit.held)")
            say(
                "tickets             capacity \(event.capacity), sold \(event.sold), held \(event.held), available \(event.available), oversold \(oversold); \(result.ticketsConfirmed) granted in all"
            )
            say(
                "returned and resold \(ticketsReturned) tickets came back from expired holds, at least \(max(0, ticketsReturned - event.available)) of them resold to later buyers"
            )
        } else {
            say("outcomes            confirmed \(result.confirmed), rejected \(result.rejected), undecided \(result.undecided)")
            say("tickets             capacity \(event.capacity), sold \(event.sold), available \(event.available), oversold \(oversold)")
            say("seats in two orders \(duplicateSeats)")
        }
        say(
            "throughput          \(String(format: "%.0f", Double(result.decided) / max(seconds, 0.001))) intents/s decided end to end (\(String(format: "%.2f", seconds)) s)"
        )
        say(
            "intake latency      p50 \(ms(result.intakeLatency.valueAtPercentile(50))), p99 \(ms(result.intakeLatency.valueAtPercentile(99))), max \(ms(result.intakeLatency.max))"
        )
        say(
            "outcome latency     p50 \(ms(result.outcomeLatency.valueAtPercentile(50))), p99 \(ms(result.outcomeLatency.valueAtPercentile(99))), max \(ms(result.outcomeLatency.max)) (POST sent → outcome seen)"
        )
        say("workers             exit codes \(workerExitCodes)")
        say("audit               \(audit.summaryLine)")
        for violation in audit.violations.prefix(20) { say("  VIOLATION \(violation)") }
        say(isClean ? "every invariant holds." : "INVARIANTS BROKEN — see above.")
    }
}
