import ArgumentParser
import BoxofficeAPI
import BoxofficeCore
import BoxofficeStore
import BoxofficeWorker
import Foundation
import Logging
import ServiceLifecycle

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the pending SQL migrations of db/migrations (running it twice is a no-op).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.migrate")
        let migrations = try database.migrations()
        let applied = try await withStore(try database.configuration(), logger: logger) { try await $0.migrate(migrations) }
        print(applied.isEmpty ? "database is up to date (\(migrations.count) migrations)" : "applied \(applied.joined(separator: ", "))")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the HTTP API: intake (202 after commit), status with long-poll, events, health.",
        discussion: """
            Writes need a bearer token from the environment: BOXOFFICE_PRODUCER_TOKEN to enqueue intents, \
            BOXOFFICE_ADMIN_TOKEN to create events (it may enqueue too). Each is 16 to 512 visible ASCII \
            characters (openssl rand -hex 24). Without them `serve` refuses to start unless given --no-auth. \
            Reads (GET) need no token. Stops on SIGTERM/SIGINT after draining in-flight requests.
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one and logs it).") var port = 8080
    @Option(help: "Most tickets one intent may ask for.") var quantityMax = 10
    @Option(help: "Largest request body in bytes.") var bodyBytesMax = 16 * 1024
    @Option(help: "Longest ?wait= a status request may hold, in seconds.") var longPollSecondsMax = 30
    @Option(help: "Rows per group-commit INSERT at most.") var intakeBatchMax = 1_000
    @Option(help: "Group-commit INSERTs in flight at once.") var intakeFlushers = 2
    @Option(help: "Intake requests waiting for a group-commit INSERT at most; past it 503 overloaded.") var intakeWaitingMax = 20_000
    @Option(help: "Longest a request waits on the database, in milliseconds, counted from its arrival (lease, statement, group commit); past it 503. Also the API's statement_timeout.") var databaseWaitMilliseconds = 5_000
    @Option(help: "Open client connections at most (below the descriptor limit, which serve raises to its hard limit); past it new connections wait in the kernel's accept queue.") var clientConnectionsMax = ClientLimits().connectionsMax
    @Option(help: "Request line plus headers, in bytes, at most; larger is answered 431.") var clientHeaderBytesMax = ClientLimits().headerBytesMax
    @Option(help: "Seconds a connection with no request in progress stays open.") var clientIdleSeconds: Double = 15
    @Option(help: "Seconds from a request's first byte to the end of its head; past it 408 and close.") var clientHeadSeconds: Double = 10
    @Option(help: "Seconds from a request's head to the end of its body; past it 408 and close.") var clientBodySeconds: Double = 10
    @Option(help: "Long-polls (?wait=) held at once by this process; past it a status request answers at once.") var longPollsMax = OutcomeWatcher.Configuration().waitersMax
    @Option(help: "Long-polls held at once on one intent.") var longPollsPerIntentMax = OutcomeWatcher.Configuration().waitersPerIntentMax
    @Option(help: "Bulk intake requests in progress at once; past it 503 overloaded before the body is read.") var bulkRequestsMax = APIConfiguration().bulkRequestsMax
    @Option(help: "Set the open-file (descriptor) limit to exactly this (default: raise the soft limit as far as the connection caps need, up to the hard limit).") var openFilesMax: Int?
    @Flag(help: "Poll for outcomes instead of LISTEN (behind PgBouncer in transaction mode).") var noListen = false
    @Flag(help: "Serve without access tokens: anyone who reaches the port may create events and enqueue intents.") var noAuth = false
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...1_000).contains(quantityMax) else { throw ValidationError("--quantity-max must be 1...1000") }
        guard (256...10_485_760).contains(bodyBytesMax) else { throw ValidationError("--body-bytes-max must be 256...10485760") }
        guard (0...300).contains(longPollSecondsMax) else { throw ValidationError("--long-poll-seconds-max must be 0...300") }
        guard (1...10_000).contains(intakeBatchMax) else { throw ValidationError("--intake-batch-max must be 1...10000") }
        guard (1...64).contains(intakeFlushers) else { throw ValidationError("--intake-flushers must be 1...64") }
        guard (1...1_000_000).contains(intakeWaitingMax) else { throw ValidationError("--intake-waiting-max must be 1...1000000") }
        guard (100...60_000).contains(databaseWaitMilliseconds) else { throw ValidationError("--database-wait-milliseconds must be 100...60000") }
        guard (1...1_000_000).contains(clientConnectionsMax) else { throw ValidationError("--client-connections-max must be 1...1000000") }
        guard (1_024...1_048_576).contains(clientHeaderBytesMax) else { throw ValidationError("--client-header-bytes-max must be 1024...1048576") }
        for (flag, seconds) in [("--client-idle-seconds", clientIdleSeconds), ("--client-head-seconds", clientHeadSeconds), ("--client-body-seconds", clientBodySeconds)] {
            guard seconds >= 0.1 && seconds <= 3_600 else { throw ValidationError("\(flag) must be 0.1...3600") }
        }
        guard (0...1_000_000).contains(longPollsMax) else { throw ValidationError("--long-polls-max must be 0...1000000") }
        guard (1...1_000).contains(longPollsPerIntentMax) else { throw ValidationError("--long-polls-per-intent-max must be 1...1000") }
        guard (1...1_000).contains(bulkRequestsMax) else { throw ValidationError("--bulk-requests-max must be 1...1000") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.api")
        var configuration = APIConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.quantityMax = quantityMax
        configuration.bodyBytesMax = bodyBytesMax
        configuration.longPollSecondsMax = longPollSecondsMax
        configuration.groupCommit.groupSizeMax = intakeBatchMax
        configuration.groupCommit.flushersMax = intakeFlushers
        configuration.groupCommit.waitingMax = intakeWaitingMax
        configuration.databaseWaitMilliseconds = databaseWaitMilliseconds
        configuration.clients.connectionsMax = clientConnectionsMax
        configuration.clients.headerBytesMax = clientHeaderBytesMax
        configuration.clients.idleTimeout = .milliseconds(Int(clientIdleSeconds * 1_000))
        configuration.clients.headReadTimeout = .milliseconds(Int(clientHeadSeconds * 1_000))
        configuration.clients.bodyReadTimeout = .milliseconds(Int(clientBodySeconds * 1_000))
        configuration.watcher.waitersMax = longPollsMax
        configuration.watcher.waitersPerIntentMax = longPollsPerIntentMax
        configuration.bulkRequestsMax = bulkRequestsMax
        configuration.watcher.listen = !noListen
        configuration.access = try accessControl()
        var databaseConfiguration = try database.configuration()
        databaseConfiguration.keepsConnectionsOpen = true
        // A statement the API has given up on (its client was answered 503) must not keep running on
        // the server: the API's statements are bounded by the same wait as its requests.
        databaseConfiguration.statementTimeoutMilliseconds = databaseWaitMilliseconds
        databaseConfiguration.lockTimeoutMilliseconds = min(databaseConfiguration.lockTimeoutMilliseconds, databaseWaitMilliseconds)
        let descriptors = try DescriptorLimit.raise(
            toCover: clientConnectionsMax + databaseConfiguration.connectionsMax + DescriptorLimit.reserve, exactly: openFilesMax)
        logger.info("descriptor limit", metadata: ["open_files_max": "\(descriptors)", "client_connections_max": "\(clientConnectionsMax)"])
        let store = Store(configuration: databaseConfiguration, logger: logger)
        let host = configuration.host
        let app = buildApplication(store: store, configuration: configuration, logger: logger) { port in
            logger.info("listening", metadata: ["address": "http://\(host):\(port)"])
        }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("client limits at shutdown", metadata: configuration.clientCounters.snapshot.mapValues { "\($0)" })
    }
}

extension Serve {
    func accessControl() throws -> AccessControl {
        let configured: AccessControl?
        do {
            configured = try AccessControl.fromEnvironment(ProcessInfo.processInfo.environment)
        } catch {
            throw CommandError(error.description)
        }
        switch (configured, noAuth) {
        case (let access?, false): return access
        case (nil, true): return .open
        case (_?, true): throw CommandError("--no-auth contradicts BOXOFFICE_PRODUCER_TOKEN/BOXOFFICE_ADMIN_TOKEN being set: drop one")
        case (nil, false):
            throw CommandError("""
                no access tokens: set BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN (e.g. $(openssl rand -hex 24) each), \
                or pass --no-auth to serve without them
                """)
        }
    }
}

struct Work: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one allocation worker: claim a batch, allocate, settle, repeat. Run several to scale.",
        discussion: """
            On SIGTERM it finishes the batch in hand and exits 0. A killed worker's batch rolls back and is claimed again. \
            A worker holds exactly the connections it uses, opened at start and kept: one for the batch transaction and one \
            in LISTEN (one in all with --no-listen); --connections-max does not apply to it.
            """)

    @Option(help: "Intents claimed and settled per transaction (1...100000).") var batchSize = 512
    @Option(help: "Milliseconds to sleep when idle before looking again without a notification.") var pollMilliseconds = 250
    @Option(help: "Milliseconds to let a batch fill after a small one (fewer than 64 intents) before claiming again: fewer, larger transactions while intake trickles in; 0 claims at once.") var lingerMilliseconds = 5
    @Option(help: "Failures in a row of an event's batch, at one claim size, before its claims are halved (down to 1) and, at 1, before that intent is quarantined. Only failures the batch may cause count (data errors, statement timeouts).") var quarantineFailures = AllocationWorker.Configuration().failuresPerClaimSize
    @Option(help: "Seconds an event must have been failing before a lone intent is quarantined for statement timeouts (a stalled database must not reject a healthy buyer).") var quarantineTimeoutSeconds = Int(AllocationWorker.Configuration().timeoutQuarantineAfter.components.seconds)
    @Option(help: "Intents of one event this worker quarantines at most; past it the event's failures are backed off and logged as errors.") var quarantinesPerEventMax = AllocationWorker.Configuration().quarantinesPerEventMax
    @Flag(help: "Poll only, no LISTEN (behind PgBouncer in transaction mode).") var noListen = false
    @Option(help: .hidden) var parentPid: Int32?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...100000") }
        guard (1...60_000).contains(pollMilliseconds) else { throw ValidationError("--poll-milliseconds must be 1...60000") }
        guard (0...1_000).contains(lingerMilliseconds) else { throw ValidationError("--linger-milliseconds must be 0...1000") }
        guard (1...100).contains(quarantineFailures) else { throw ValidationError("--quarantine-failures must be 1...100") }
        guard (0...86_400).contains(quarantineTimeoutSeconds) else { throw ValidationError("--quarantine-timeout-seconds must be 0...86400") }
        guard (0...100_000).contains(quarantinesPerEventMax) else { throw ValidationError("--quarantines-per-event-max must be 0...100000") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.worker")
        var databaseConfiguration = try database.configuration()
        // One connection for the batch, one for LISTEN: kept open (see keepsConnectionsOpen), so no more than used.
        databaseConfiguration.connectionsMax = noListen ? 1 : 2
        databaseConfiguration.customPlans = true
        databaseConfiguration.keepsConnectionsOpen = true
        let store = Store(configuration: databaseConfiguration, logger: logger)
        var configuration = AllocationWorker.Configuration()
        configuration.batchSizeMax = batchSize
        configuration.pollInterval = .milliseconds(pollMilliseconds)
        configuration.linger = .milliseconds(lingerMilliseconds)
        configuration.failuresPerClaimSize = quarantineFailures
        configuration.timeoutQuarantineAfter = .seconds(quarantineTimeoutSeconds)
        configuration.quarantinesPerEventMax = quarantinesPerEventMax
        configuration.listen = !noListen
        let worker = AllocationWorker(store: store, configuration: configuration, logger: logger)
        var services: [any Service] = [StoreService(store: store), worker]
        if let parentPid { services.append(ParentWatch(parentPID: parentPid)) }
        logger.info("worker started", metadata: ["batch_size": "\(batchSize)", "database": "\(databaseConfiguration)"])
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Ends the process's service group when the parent that spawned it (demo, tests) is gone, so no
/// orphaned worker outlives a crashed parent.
struct ParentWatch: Service {
    let parentPID: Int32

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            if kill(parentPID, 0) != 0 || getppid() != parentPID { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(500)) }
        }
    }
}

struct EventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event", abstract: "Create and inspect events.", subcommands: [Create.self, Show.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an event and print its id.",
            discussion: "General admission: --capacity 10000. Seat map: --sections A:10x20,B:5x30 (NAME:ROWSxSEATS_PER_ROW, best section first).")

        @Option(help: "Event name.") var name: String
        @Option(help: "General-admission tickets.") var capacity: Int?
        @Option(help: "Seat map, NAME:ROWSxSEATS,... e.g. A:10x20,B:5x30.") var sections: String?
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard (capacity == nil) != (sections == nil) else { throw ValidationError("give exactly one of --capacity or --sections") }
            _ = try layout()
        }

        func layout() throws -> EventLayout {
            if let capacity {
                guard (1...EventLayout.capacityMax).contains(capacity) else { throw ValidationError("--capacity must be 1...\(EventLayout.capacityMax)") }
                return .generalAdmission(capacity: capacity)
            }
            let layout = EventLayout.seatMap(try parseSections(sections ?? ""))
            guard layout.capacity <= EventLayout.capacityMax else { throw ValidationError("the seat map holds more than \(EventLayout.capacityMax) seats") }
            return layout
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "boxoffice.event")
            let layout = try layout()
            let name = self.name
            let summary = try await withStore(try database.configuration(), logger: logger) { try await $0.createEvent(name: name, layout: layout) }
            print(summary.id)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an event's counters.")
        @Argument(help: "Event id.") var id: Int64
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "boxoffice.event")
            let id = self.id
            guard let summary = try await withStore(try database.configuration(), logger: logger, { try await $0.eventSummary(id) }) else {
                throw CommandError("there is no event \(id)")
            }
            print("event \(summary.id) \"\(summary.name)\": capacity \(summary.capacity), sold \(summary.sold), available \(summary.available), pending \(summary.pending)")
        }
    }
}

/// Parses `A:10x20,B:5x30` into sections; errors name the part that is wrong.
func parseSections(_ text: String) throws -> [SectionLayout] {
    var sections: [SectionLayout] = []
    for part in text.split(separator: ",") {
        let pieces = part.split(separator: ":")
        let size = pieces.count == 2 ? pieces[1].split(separator: "x") : []
        guard pieces.count == 2, SectionLayout.isValidName(pieces[0]), size.count == 2,
              let rows = Int(size[0]), let seats = Int(size[1]),
              (1...SectionLayout.rowsMax).contains(rows), (1...SectionLayout.seatsPerRowMax).contains(seats)
        else { throw ValidationError("section \(part) must look like A:10x20 (name, rows 1...\(SectionLayout.rowsMax), seats per row 1...\(SectionLayout.seatsPerRowMax))") }
        guard !sections.contains(where: { $0.name == pieces[0] }) else { throw ValidationError("section \(pieces[0]) is listed twice") }
        sections.append(SectionLayout(name: String(pieces[0]), rows: rows, seatsPerRow: seats))
    }
    guard !sections.isEmpty else { throw ValidationError("--sections needs at least one section, e.g. A:10x20") }
    return sections
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit every invariant: no seat twice, sold ≤ capacity, sold + available = capacity, one outcome per intent, arrival order.",
        discussion: """
            Also: every accepted intent (acceptance record) is queued or settled, each buyer got the seats or \
            section asked for, Idempotency-Keys match their intents. Runs in one read-only snapshot with no \
            statement timeout. Lists quarantined intents (not a violation). Exits 0 when all hold; otherwise \
            prints each violation and exits 1.
            """)

    @Option(help: "Audit only this event.") var event: Int64?
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.verify")
        let event = self.event
        let report = try await withStore(try database.configuration(), logger: logger) { try await $0.audit(eventID: event) }
        print(report.summaryLine)
        for intent in report.quarantinedIntents { print("QUARANTINED \(intent)") }
        if report.quarantined > report.quarantinedIntents.count {
            print("QUARANTINED … and \(report.quarantined - report.quarantinedIntents.count) more (see the quarantine table)")
        }
        for violation in report.violations { print("VIOLATION \(violation)") }
        if !report.isClean { throw ExitCode(1) }
    }
}

extension AuditReport {
    var summaryLine: String {
        "\(isClean ? "OK" : "FAILED"): \(events) events, \(accepted) accepted, \(outcomes) outcomes (\(confirmed) confirmed, \(rejected) rejected, \(quarantined) of them quarantined), \(pending) pending, \(ticketsSold) tickets sold, \(violations.count) violations"
    }
}
