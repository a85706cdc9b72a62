import ArgumentParser
import BoxofficeAPI
import BoxofficeMetrics
import BoxofficePool
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

            With --processes N it supervises N worker processes instead, each `boxoffice work` with the same \
            options (minus the pool's), in a process group of its own, logging to this process's stderr:
            - a worker that exits without being asked to is started again after a back-off that doubles from \
            --restart-backoff-min-milliseconds up to --restart-backoff-max-milliseconds, back to the minimum once no \
            worker has failed for --restart-backoff-reset-seconds;
            - more than --crashes-max such exits within --crash-window-seconds stop the pool (each worker finishes \
            its batch) and exit 1: the workers cannot run (a bad DATABASE_URL, say). A database that is down is \
            not a crash: workers wait for it;
            - SIGTTIN adds a worker (at most 64), SIGTTOU stops the newest one after its batch in hand (never \
            below 1), as gunicorn does;
            - SIGTERM or SIGINT is passed on to every worker, each finishes its batch in hand and exits 0, then \
            the pool exits 0; a worker still running after --stop-timeout-seconds is SIGKILLed (its batch rolls \
            back and is claimed again);
            - every worker start, exit (pid, worker slot, exit status or signal) and restart is logged;
            - --metrics-port serves the whole pool on one endpoint: each worker's metrics (scraped from its own \
            loopback port) with a `worker` label (its slot, 0 to the largest pool size), plus \
            boxoffice_pool_workers_desired, boxoffice_pool_workers_alive, boxoffice_pool_restarts_total and \
            boxoffice_pool_scrape_failures_total.
            """)

    @Option(help: "Supervise this many worker processes (1...64) instead of working in this process; see above.")
    var processes: Int?
    @Option(help: "With --processes: the first restart's back-off, in milliseconds (1...60000).")
    var restartBackoffMinMilliseconds = Int(RestartPolicy().backoffMin / .milliseconds(1))
    @Option(help: "With --processes: the longest back-off, in milliseconds (the minimum...600000).")
    var restartBackoffMaxMilliseconds = Int(RestartPolicy().backoffMax / .milliseconds(1))
    @Option(help: "With --processes: seconds without a failure after which the back-off starts from the minimum again (1...86400).")
    var restartBackoffResetSeconds = Int(RestartPolicy().backoffReset.components.seconds)
    @Option(help: "With --processes: the pool exits 1 after more than this many unasked worker exits within --crash-window-seconds (1...1000).")
    var crashesMax = RestartPolicy().failuresMax
    @Option(help: "With --processes: the window of --crashes-max, in seconds (1...86400).")
    var crashWindowSeconds = Int(RestartPolicy().window.components.seconds)
    @Option(help: "With --processes: seconds the workers get to finish their batches on SIGTERM before they are SIGKILLed (1...3600).")
    var stopTimeoutSeconds = 25

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
    @Option(help: "Intents of one event this worker quarantines at most; past it the event is paused (below) and logged as an error.")
    var quarantinesPerEventMax = AllocationWorker.Configuration().quarantinesPerEventMax
    @Option(
        help:
            "Milliseconds this worker picks an event only when no other has work, after the database refused its batch for a reason of the event's (its seat rows disagree with its inventory, a constraint, a statement timeout); doubles per failure, and between quarantine steps."
    ) var eventDeferMinMilliseconds = Int(AllocationWorker.Configuration().eventDeferMin / .milliseconds(1))
    @Option(help: "Longest such deferral, in milliseconds.")
    var eventDeferMaxMilliseconds = Int(AllocationWorker.Configuration().eventDeferMax / .milliseconds(1))
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
    /// Set by a pool on its children: write `ready [metrics_port=N]` on stdout once signals are handled.
    @Flag(help: .hidden) var reportReady = false
    /// Set by a pool on its children: the child's slot, logged on each of its lines with its pid.
    @Option(help: .hidden) var poolWorker: Int?
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
        guard (1...600_000).contains(eventDeferMinMilliseconds), (eventDeferMinMilliseconds...600_000).contains(eventDeferMaxMilliseconds) else {
            throw ValidationError("--event-defer-min-milliseconds must be 1...600000 and --event-defer-max-milliseconds from it to 600000")
        }
        if let metricsPort { guard (0...65_535).contains(metricsPort) else { throw ValidationError("--metrics-port must be 0...65535") } }
        if let processes {
            guard (1...WorkerPool.Configuration.processesMax).contains(processes) else {
                throw ValidationError("--processes must be 1...\(WorkerPool.Configuration.processesMax)")
            }
        }
        guard (1...60_000).contains(restartBackoffMinMilliseconds) else {
            throw ValidationError("--restart-backoff-min-milliseconds must be 1...60000")
        }
        guard (restartBackoffMinMilliseconds...600_000).contains(restartBackoffMaxMilliseconds) else {
            throw ValidationError("--restart-backoff-max-milliseconds must be --restart-backoff-min-milliseconds...600000")
        }
        guard (1...86_400).contains(restartBackoffResetSeconds) else { throw ValidationError("--restart-backoff-reset-seconds must be 1...86400") }
        guard (1...1_000).contains(crashesMax) else { throw ValidationError("--crashes-max must be 1...1000") }
        guard (1...86_400).contains(crashWindowSeconds) else { throw ValidationError("--crash-window-seconds must be 1...86400") }
        guard (1...3_600).contains(stopTimeoutSeconds) else { throw ValidationError("--stop-timeout-seconds must be 1...3600") }
        guard (1...3_600).contains(keySweepIntervalSeconds) else { throw ValidationError("--key-sweep-interval-seconds must be 1...3600") }
        guard (1...100_000).contains(keySweepBatchSize) else { throw ValidationError("--key-sweep-batch-size must be 1...100000") }
    }

    func run() async throws {
        if let processes { return try await supervise(processes) }
        // A pool's child: SIGTTIN/SIGTTOU are the supervisor's; sent to the whole group or unit by
        // mistake, their default action would freeze this worker with its batch's locks held.
        if reportReady {
            signal(SIGTTIN, SIG_IGN)
            signal(SIGTTOU, SIG_IGN)
        }
        let logger = {
            var logger = logging.bootstrap(label: "boxoffice.worker")
            // A pool's children share its stderr: each line says which worker wrote it.
            if let poolWorker {
                logger[metadataKey: "worker"] = "\(poolWorker)"
                logger[metadataKey: "pid"] = "\(getpid())"
            }
            return logger
        }()
        var databaseConfiguration = try database.configuration()
        // One connection for the batch, one for LISTEN: kept open (see keepsConnectionsOpen), so no more than used.
        databaseConfiguration.connectionsMax = noListen ? 1 : 2
        databaseConfiguration.customPlans = true
        databaseConfiguration.keepsConnectionsOpen = true
        // What the dashboard counts as a worker alive: a connection named as a worker's (pg_stat_activity).
        databaseConfiguration.applicationName = DatabaseConfiguration.workerApplicationName()
        let metrics = metricsPort.map { _ in BoxofficeMetrics.processWide }
        let store = Store(
            configuration: databaseConfiguration, logger: logger,
            leaseObserver: metrics.map { DatabasePoolMetrics($0, pool: .worker, connectionsMax: databaseConfiguration.connectionsMax) })
        var configuration = AllocationWorker.Configuration()
        configuration.batchSizeMax = batchSize
        configuration.pollInterval = .milliseconds(pollMilliseconds)
        configuration.linger = .milliseconds(lingerMilliseconds)
        configuration.failuresPerClaimSize = quarantineFailures
        configuration.timeoutQuarantineAfter = .seconds(quarantineTimeoutSeconds)
        configuration.quarantinesPerEventMax = quarantinesPerEventMax
        configuration.eventDeferMin = .milliseconds(eventDeferMinMilliseconds)
        configuration.eventDeferMax = .milliseconds(eventDeferMaxMilliseconds)
        configuration.listen = !noListen
        let worker = AllocationWorker(store: store, configuration: configuration, logger: logger, metrics: metrics.map(WorkerMetrics.init))
        var services: [any Service] = [StoreService(store: store), worker]
        if !noKeySweep {
            // Its own pool of one kept connection: a sweep never waits for the batch connection, nor delays it.
            var sweepDatabase = databaseConfiguration
            sweepDatabase.connectionsMax = 1
            sweepDatabase.customPlans = false
            let sweepStore = Store(
                configuration: sweepDatabase, logger: logger, idempotencyKeyLifetime: try retention.idempotencyKeyLifetime(),
                leaseObserver: metrics.map { DatabasePoolMetrics($0, pool: .sweep, connectionsMax: sweepDatabase.connectionsMax) })
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
            let reportReady = reportReady
            services.append(
                buildMetricsApplication(metrics: metrics, host: host, port: metricsPort, logger: logger) { port in
                    logger.info("metrics listening", metadata: ["address": "http://\(host):\(port)/metrics"])
                    if reportReady { ReadinessReport.write(metricsPort: port) }
                })
        } else if reportReady {
            services.append(ReadinessReport())
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

extension Work {
    /// `--processes N`: this process supervises N workers (see the command's discussion).
    func supervise(_ processes: Int) async throws {
        let logger = logging.bootstrap(label: "boxoffice.pool")
        var configuration = WorkerPool.Configuration(
            processes: processes, executable: Bundle.main.executablePath ?? CommandLine.arguments[0],
            arguments: childArguments(scraped: metricsPort != nil))
        configuration.restart.backoffMin = .milliseconds(restartBackoffMinMilliseconds)
        configuration.restart.backoffMax = .milliseconds(restartBackoffMaxMilliseconds)
        configuration.restart.backoffReset = .seconds(restartBackoffResetSeconds)
        configuration.restart.failuresMax = crashesMax
        configuration.restart.window = .seconds(crashWindowSeconds)
        configuration.stopTimeout = .seconds(stopTimeoutSeconds)
        let pool = WorkerPool(configuration: configuration, logger: logger, metrics: BoxofficeMetrics())
        // Shut down in reverse order: the pool (its workers' batches) first, its metrics endpoint last.
        var services: [any Service] = []
        if let metricsPort {
            let host = metricsHost
            services.append(
                buildMetricsApplication(exposition: { await pool.exposition() }, host: host, port: metricsPort, logger: logger) { port in
                    logger.info("metrics listening", metadata: ["address": "http://\(host):\(port)/metrics"])
                })
        }
        services.append(pool)
        if let parentPid { services.append(ParentWatch(parentPID: parentPid)) }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Each worker's command line after the binary: these options, less the pool's own; a scraped worker
    /// serves its metrics on a loopback port of its choosing (it reports the port when ready).
    func childArguments(scraped: Bool) -> [String] {
        var arguments = [
            "work", "--batch-size", "\(batchSize)", "--poll-milliseconds", "\(pollMilliseconds)",
            "--linger-milliseconds", "\(lingerMilliseconds)", "--quarantine-failures", "\(quarantineFailures)",
            "--quarantine-timeout-seconds", "\(quarantineTimeoutSeconds)", "--quarantines-per-event-max", "\(quarantinesPerEventMax)",
            "--event-defer-min-milliseconds", "\(eventDeferMinMilliseconds)", "--event-defer-max-milliseconds", "\(eventDeferMaxMilliseconds)",
            "--connections-max", "\(database.connectionsMax)", "--log-level", logging.logLevel.rawValue,
            "--log-format", logging.logFormat.rawValue,
            "--key-sweep-interval-seconds", "\(keySweepIntervalSeconds)", "--key-sweep-batch-size", "\(keySweepBatchSize)",
        ]
        if noListen { arguments.append("--no-listen") }
        if noKeySweep { arguments.append("--no-key-sweep") }
        if let lifetime = retention.idempotencyKeyLifetimeSeconds { arguments += ["--idempotency-key-lifetime-seconds", "\(lifetime)"] }
        if database.noPreparedStatements { arguments.append("--no-prepared-statements") }
        if let migrationsDir = database.migrationsDir { arguments += ["--migrations-dir", migrationsDir] }
        if scraped { arguments += ["--metrics-port", "0", "--metrics-host", "127.0.0.1"] }
        return arguments
    }
}

/// A pool's child (`--report-ready`) says on stdout that it handles signals now (its service group
/// runs), with its metrics port when it has one: the supervisor sends it SIGTERM only from then on.
struct ReadinessReport: Service {
    func run() async throws {
        Self.write(metricsPort: nil)
        try? await gracefulShutdown()
    }

    static func write(metricsPort: Int?) {
        let line = Array("ready\(metricsPort.map { " metrics_port=\($0)" } ?? "")\n".utf8)
        _ = line.withUnsafeBytes { Foundation.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }
}

/// Ends the process's service group when the parent that spawned it (demo, tests) is gone, so no
/// orphaned worker outlives a crashed parent.
struct ParentWatch: Service {
    let parentPID: Int32

    func run() async throws {
        // Cancelled (another service of the group failed): return, or the interrupted sleep would spin.
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if kill(parentPID, 0) != 0 || getppid() != parentPID { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(500)) }
        }
    }
}
