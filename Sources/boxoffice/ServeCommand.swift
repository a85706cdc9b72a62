import ArgumentParser
import BoxofficeAPI
import BoxofficeMetrics
import BoxofficeStore
import Foundation
import Logging
import ServiceLifecycle

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
    @Option(
        help:
            "Longest a request waits on the database, in milliseconds, counted from its arrival (lease, statement, group commit); past it 503. Also the API's statement_timeout."
    ) var databaseWaitMilliseconds = 5_000
    @Option(
        help:
            "Open client connections at most (below the descriptor limit, which serve raises to its hard limit); past it new connections wait in the kernel's accept queue."
    ) var clientConnectionsMax = ClientLimits().connectionsMax
    @Option(help: "Request line plus headers, in bytes, at most; larger is answered 431.") var clientHeaderBytesMax = ClientLimits().headerBytesMax
    @Option(help: "Seconds a connection with no request in progress stays open.") var clientIdleSeconds: Double = 15
    @Option(help: "Seconds from a request's first byte to the end of its head; past it 408 and close.") var clientHeadSeconds: Double = 10
    @Option(help: "Seconds from a request's head to the end of its body; past it 408 and close.") var clientBodySeconds: Double = 10
    @Option(help: "Long-polls (?wait=) held at once by this process; past it a status request answers at once.") var longPollsMax =
        OutcomeWatcher.Configuration().waitersMax
    @Option(help: "Long-polls held at once on one intent.") var longPollsPerIntentMax = OutcomeWatcher.Configuration().waitersPerIntentMax
    @Option(help: "Bulk intake requests in progress at once; past it 503 overloaded before the body is read.") var bulkRequestsMax =
        APIConfiguration().bulkRequestsMax
    @Option(
        help:
            "Set the open-file (descriptor) limit to exactly this (default: raise the soft limit as far as the connection caps need, up to the hard limit)."
    ) var openFilesMax: Int?
    @Flag(help: "Poll for outcomes instead of LISTEN (behind PgBouncer in transaction mode).") var noListen = false
    @Flag(help: "Serve no GET /metrics (Prometheus text format) and record no metrics.") var noMetrics = false
    @Flag(help: "Serve without access tokens: anyone who reaches the port may create events and enqueue intents.") var noAuth = false
    @OptionGroup var retention: RetentionOptions
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
        for (flag, seconds) in [
            ("--client-idle-seconds", clientIdleSeconds), ("--client-head-seconds", clientHeadSeconds), ("--client-body-seconds", clientBodySeconds),
        ] {
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
        if !noMetrics { configuration.metrics = BoxofficeMetrics.processWide }
        var databaseConfiguration = try database.configuration()
        databaseConfiguration.keepsConnectionsOpen = true
        // A statement the API has given up on (its client was answered 503) must not keep running on
        // the server: the API's statements are bounded by the same wait as its requests.
        databaseConfiguration.statementTimeoutMilliseconds = databaseWaitMilliseconds
        databaseConfiguration.lockTimeoutMilliseconds = min(databaseConfiguration.lockTimeoutMilliseconds, databaseWaitMilliseconds)
        let descriptors = try DescriptorLimit.raise(
            toCover: clientConnectionsMax + databaseConfiguration.connectionsMax + DescriptorLimit.reserve, exactly: openFilesMax)
        logger.info("descriptor limit", metadata: ["open_files_max": "\(descriptors)", "client_connections_max": "\(clientConnectionsMax)"])
        let leases = configuration.metrics.map { DatabasePoolMetrics($0, pool: .api, connectionsMax: databaseConfiguration.connectionsMax) }
        let store = Store(
            configuration: databaseConfiguration, logger: logger, idempotencyKeyLifetime: try retention.idempotencyKeyLifetime(),
            leaseObserver: leases)
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
            throw CommandError(
                """
                no access tokens: set BOXOFFICE_PRODUCER_TOKEN and BOXOFFICE_ADMIN_TOKEN (e.g. $(openssl rand -hex 24) each), \
                or pass --no-auth to serve without them
                """)
        }
    }
}
