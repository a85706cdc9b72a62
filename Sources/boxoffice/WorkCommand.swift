import ArgumentParser
import BoxofficeAPI
import BoxofficeMetrics
import BoxofficeStore
import BoxofficeWorker
import Foundation
import Logging
import ServiceLifecycle

struct Work: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one allocation worker: claim a batch, allocate, settle, repeat. Run several to scale.",
        discussion: """
            On SIGTERM it finishes the batch in hand and exits 0. A killed worker's batch rolls back and is claimed again. \
            A worker holds exactly the connections it uses, opened at start and kept: one for the batch transaction and one \
            in LISTEN (one in all with --no-listen), and one for the Idempotency-Key sweep unless --no-key-sweep; \
            --connections-max does not apply to it.

            Every --key-sweep-interval-seconds (jittered by ±20%) the worker deletes Idempotency-Keys older than \
            --idempotency-key-lifetime-seconds, --key-sweep-batch-size per statement, until none is left; workers \
            sweeping at once skip each other's rows. A key is gone at most one interval (plus jitter) after it expired.
            """)

    @Option(help: "Intents claimed and settled per transaction (1...100000).") var batchSize = 512
    @Option(help: "Milliseconds to sleep when idle before looking again without a notification.") var pollMilliseconds = 250
    @Option(
        help:
            "Milliseconds to let a batch fill after a small one (fewer than 64 intents) before claiming again: fewer, larger transactions while intake trickles in; 0 claims at once."
    ) var lingerMilliseconds = 5
    @Option(
        help:
            "Failures in a row of an event's batch, at one claim size, before its claims are halved (down to 1) and, at 1, before that intent is quarantined. Only failures the batch may cause count (data errors, statement timeouts)."
    ) var quarantineFailures = AllocationWorker.Configuration().failuresPerClaimSize
    @Option(
        help:
            "Seconds an event must have been failing before a lone intent is quarantined for statement timeouts (a stalled database must not reject a healthy buyer)."
    ) var quarantineTimeoutSeconds = Int(AllocationWorker.Configuration().timeoutQuarantineAfter.components.seconds)
    @Option(help: "Intents of one event this worker quarantines at most; past it the event's failures are backed off and logged as errors.")
    var quarantinesPerEventMax = AllocationWorker.Configuration().quarantinesPerEventMax
    @Flag(help: "Poll only, no LISTEN (behind PgBouncer in transaction mode).") var noListen = false
    @Option(help: "Serve GET /metrics (Prometheus text format) on this port; off unless given (0 picks a free one and logs it).")
    var metricsPort: Int?
    @Option(help: "Address the metrics endpoint listens on (loopback unless a scraper elsewhere needs it).") var metricsHost = "127.0.0.1"
    @Option(help: "Seconds between two sweeps of expired Idempotency-Keys (1...3600), each drawn ±20% so workers do not sweep together.")
    var keySweepIntervalSeconds = Int(KeySweeper.Configuration().interval.components.seconds)
    @Option(help: "Expired Idempotency-Keys deleted per sweep statement (1...100000); a sweep repeats statements until one comes back short.")
    var keySweepBatchSize = KeySweeper.Configuration().batchSize
    @Flag(help: "Do not sweep expired Idempotency-Keys from this worker (one connection fewer); some worker must.") var noKeySweep = false
    @Option(help: .hidden) var parentPid: Int32?
    @OptionGroup var retention: RetentionOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...100000") }
        guard (1...60_000).contains(pollMilliseconds) else { throw ValidationError("--poll-milliseconds must be 1...60000") }
        guard (0...1_000).contains(lingerMilliseconds) else { throw ValidationError("--linger-milliseconds must be 0...1000") }
        guard (1...100).contains(quarantineFailures) else { throw ValidationError("--quarantine-failures must be 1...100") }
        guard (0...86_400).contains(quarantineTimeoutSeconds) else { throw ValidationError("--quarantine-timeout-seconds must be 0...86400") }
        guard (0...100_000).contains(quarantinesPerEventMax) else { throw ValidationError("--quarantines-per-event-max must be 0...100000") }
        if let metricsPort { guard (0...65_535).contains(metricsPort) else { throw ValidationError("--metrics-port must be 0...65535") } }
        guard (1...3_600).contains(keySweepIntervalSeconds) else { throw ValidationError("--key-sweep-interval-seconds must be 1...3600") }
        guard (1...100_000).contains(keySweepBatchSize) else { throw ValidationError("--key-sweep-batch-size must be 1...100000") }
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
        let metrics = metricsPort.map { _ in BoxofficeMetrics.processWide }
        let worker = AllocationWorker(store: store, configuration: configuration, logger: logger, metrics: metrics.map(WorkerMetrics.init))
        var services: [any Service] = [StoreService(store: store), worker]
        if !noKeySweep {
            // Its own pool of one kept connection: a sweep never waits for the batch connection, nor delays it.
            var sweepDatabase = databaseConfiguration
            sweepDatabase.connectionsMax = 1
            sweepDatabase.customPlans = false
            let sweepStore = Store(configuration: sweepDatabase, logger: logger, idempotencyKeyLifetime: try retention.idempotencyKeyLifetime())
            var sweep = KeySweeper.Configuration()
            sweep.interval = .seconds(keySweepIntervalSeconds)
            sweep.batchSize = keySweepBatchSize
            services += [
                StoreService(store: sweepStore),
                KeySweeper(store: sweepStore, configuration: sweep, logger: logger, metrics: metrics.map(RetentionMetrics.init)),
            ]
        }
        if let metrics, let metricsPort {
            let host = metricsHost
            services.append(
                buildMetricsApplication(metrics: metrics, host: host, port: metricsPort, logger: logger) { port in
                    logger.info("metrics listening", metadata: ["address": "http://\(host):\(port)/metrics"])
                })
        }
        if let parentPid { services.append(ParentWatch(parentPID: parentPid)) }
        logger.info("worker started", metadata: ["batch_size": "\(batchSize)", "database": "\(databaseConfiguration)"])
        let group = ServiceGroup(
            configuration: .init(
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
