import CoreMetrics
import Foundation
import Metrics
import Prometheus
import Synchronization

/// The process's metrics: swift-metrics handles backed by a swift-prometheus registry, rendered as the
/// Prometheus text format at `GET /metrics`. Names follow Prometheus conventions (`_total` counters,
/// base units: `_seconds`), labels are bounded (statuses, reasons, route templates, event ids; never
/// intent ids, customers or raw paths). Built with its own factory, so tests need no process-wide
/// bootstrap; ``bootstrapped()`` also makes it the process's `MetricsSystem` (Hummingbird's HTTP
/// middleware records there).
public final class BoxofficeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory
    /// Refreshed just before each exposition (queue depth, liveness).
    private let refreshers = Mutex<[any MetricsRefresher]>([])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            Names.claimDuration: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 15_000].map { Duration.milliseconds($0) },
            Names.decisionLatency: [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000].map {
                Duration.milliseconds($0)
            },
            Names.intakeCommitDuration: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000].map { Duration.milliseconds($0) },
            Names.databaseLeaseWait: [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000, 5_000_000].map {
                Duration.microseconds($0)
            },
        ]
        factory.valueHistogramBuckets = [
            Names.claimIntents: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 16_384, 65_536],
            Names.intakeGroupSize: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_000, 10_000],
        ]
        factory.nameAndLabelSanitizer = { name, labels in BoxofficeMetrics.prometheusName(name, labels) }
        self.factory = factory
    }

    /// The metrics that are also the process's `MetricsSystem` (`serve`, `work`; the one test that checks
    /// Hummingbird's HTTP metrics): bootstrapped on first use, so never twice in one process.
    public static let processWide: BoxofficeMetrics = {
        let metrics = BoxofficeMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        return metrics
    }()

    /// Runs `refresher` before every exposition.
    public func add(_ refresher: any MetricsRefresher) {
        refreshers.withLock { $0.append(refresher) }
    }

    /// The Prometheus text exposition (format 0.0.4), after the refreshers ran.
    public func exposition() async -> [UInt8] {
        for refresher in refreshers.withLock({ $0 }) { await refresher.refresh() }
        return Self.withHelp(registry.emitToString())
    }

    /// swift-metrics carries no help text, and `promtool check metrics` wants one per family: a `# HELP`
    /// line from ``help`` goes before each `# TYPE` line.
    static func withHelp(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 4_096)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first {
                out += Array("# HELP \(name) \(help[String(name)] ?? "Boxoffice metric \(name).")\n".utf8)
            }
            out += Array(line.utf8)
            out.append(UInt8(ascii: "\n"))
        }
        if out.last == UInt8(ascii: "\n"), out.dropLast().last == UInt8(ascii: "\n") { out.removeLast() }
        return out
    }

    /// Each family's `# HELP` text: what it counts, in which unit.
    public static let help: [String: String] = [
        Names.intakeRequests: "Intake requests (POST /events/{id}/intents) that reached the group commit, by result.",
        Names.intakeGroupSize: "Rows per group-commit INSERT.",
        Names.intakeCommitDuration: "Seconds from an intake request's submission to the commit of its row (accepted and replayed).",
        Names.claims: "Claims (claimed batches) settled and committed by this worker.",
        Names.claimFailures: "Claims that failed and were rolled back (their intents are claimed again).",
        Names.claimDuration: "Seconds of one claim, from BEGIN to COMMIT.",
        Names.claimIntents: "Intents per settled claim.",
        Names.decisions: "Intents decided, by status (confirmed, rejected) and rejection reason.",
        Names.ticketsSold:
            "Tickets (seats or general-admission tickets) sold: granted at an event without holds, or a hold confirmed (counted when a worker takes the confirm in).",
        Names.ticketsHeld: "Tickets granted as holds (events with hold_seconds > 0).",
        Names.holdsExpired: "Holds a worker found past their expiry and expired.",
        Names.ticketsReturned: "Tickets put back into the sale by a worker, by how (released, expired, cancelled).",
        Names.decisionLatency: "Seconds from an intent's acceptance to its decision (the settle statement's time).",
        Names.lastClaim: "Unix time of this worker's last settled claim.",
        Names.workerRunning: "1 while this worker's claim loop runs, 0 once it stopped.",
        Names.eventsDeferred:
            "Events this worker picks only when no other event has work, for now: the database refused their last batch (see the worker's error log).",
        Names.queueDepth: "Queued intents per event with work (exact up to 1000, estimated above), read at scrape time, cached 1 s.",
        Names.queueDepthEvents: "Events with queued intents at the last queue-depth read.",
        Names.queueDepthScrapeFailures: "Queue-depth reads that failed (the database did not answer).",
        Names.poolWorkersDesired: "Worker processes this pool (boxoffice work --processes) wants: --processes, changed by SIGTTIN and SIGTTOU.",
        Names.poolWorkersAlive: "Worker processes of this pool running, those finishing their last batch after SIGTERM included.",
        Names.poolRestarts: "Worker processes of this pool that exited without being asked to and were replaced.",
        Names.poolScrapeFailures: "Scrapes of a pool's worker process that failed or timed out (its series are missing from that scrape).",
        Names.keysSwept: "Expired Idempotency-Keys this worker's sweep deleted.",
        Names.keySweepFailures: "Idempotency-Key sweep statements that failed (retried at the next sweep).",
        Names.databaseConnectionsMax: "PostgreSQL connections this process's pool may open, by pool (api, worker, sweep).",
        Names.databaseConnectionsInUse:
            "PostgreSQL connections leased from this process's pool at scrape time (LISTEN connections included), by pool.",
        Names.databaseLeaseWaiting: "Tasks waiting for a PostgreSQL connection from this process's pool at scrape time, by pool.",
        Names.databaseLeaseWait:
            "Seconds a task waited for a PostgreSQL connection from this process's pool (granted or abandoned), by pool.",
        Names.databaseLeaseFailures:
            "Waits for a PostgreSQL connection that ended without one (the caller's deadline passed or it was cancelled, or the pool could not connect), by pool.",
        "http_server_requests_total": "HTTP requests answered, by route template, method and status.",
        "http_server_request_errors_total": "HTTP requests that ended in an error, by route template, method and status.",
        "http_server_request_duration_seconds": "Seconds to answer an HTTP request, by route template, method and status.",
        "http_server_active_requests": "HTTP requests in progress, by method.",
    ]

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Hummingbird's `MetricsMiddleware` names (`hb.requests`, `http.server.request.duration`, dotted
    /// OpenTelemetry labels) → Prometheus names with units and `_total`; ours pass through.
    static func prometheusName(_ name: String, _ labels: [(String, String)]) -> (String, [(String, String)]) {
        let renamed: String
        switch name {
        case "hb.requests": renamed = "http_server_requests_total"
        case "hb.request.errors": renamed = "http_server_request_errors_total"
        case "http.server.request.duration": renamed = "http_server_request_duration_seconds"
        case "http.server.active_requests": renamed = "http_server_active_requests"
        default: renamed = name
        }
        let relabelled = labels.map { key, value -> (String, String) in
            switch key {
            case "http.route": return ("route", value)
            case "http.request.method": return ("method", value)
            case "http.response.status_code", "error.type": return ("status", value)
            default: return (key.replacingOccurrences(of: ".", with: "_"), value)
            }
        }
        return (renamed, relabelled)
    }

    /// Every metric name Boxoffice defines (the HTTP ones come from Hummingbird, renamed above).
    public enum Names {
        public static let intakeRequests = "boxoffice_intake_requests_total"
        public static let intakeGroupSize = "boxoffice_intake_group_size"
        public static let intakeCommitDuration = "boxoffice_intake_commit_duration_seconds"
        public static let claims = "boxoffice_worker_claims_total"
        public static let claimFailures = "boxoffice_worker_claim_failures_total"
        public static let claimDuration = "boxoffice_worker_claim_duration_seconds"
        public static let claimIntents = "boxoffice_worker_claim_intents"
        public static let decisions = "boxoffice_decisions_total"
        public static let ticketsSold = "boxoffice_tickets_sold_total"
        public static let ticketsHeld = "boxoffice_tickets_held_total"
        public static let holdsExpired = "boxoffice_holds_expired_total"
        public static let ticketsReturned = "boxoffice_tickets_returned_total"
        public static let decisionLatency = "boxoffice_decision_latency_seconds"
        public static let lastClaim = "boxoffice_worker_last_claim_timestamp_seconds"
        public static let workerRunning = "boxoffice_worker_running"
        public static let eventsDeferred = "boxoffice_worker_events_deferred"
        public static let queueDepth = "boxoffice_queue_depth"
        public static let queueDepthEvents = "boxoffice_queue_events_with_work"
        public static let queueDepthScrapeFailures = "boxoffice_queue_depth_failures_total"
        public static let poolWorkersDesired = "boxoffice_pool_workers_desired"
        public static let poolWorkersAlive = "boxoffice_pool_workers_alive"
        public static let poolRestarts = "boxoffice_pool_restarts_total"
        public static let poolScrapeFailures = "boxoffice_pool_scrape_failures_total"
        public static let keysSwept = "boxoffice_idempotency_keys_swept_total"
        public static let keySweepFailures = "boxoffice_idempotency_key_sweep_failures_total"
        public static let databaseConnectionsMax = "boxoffice_db_connections_max"
        public static let databaseConnectionsInUse = "boxoffice_db_connections_in_use"
        public static let databaseLeaseWaiting = "boxoffice_db_lease_waiting"
        public static let databaseLeaseWait = "boxoffice_db_lease_wait_seconds"
        public static let databaseLeaseFailures = "boxoffice_db_lease_failures_total"
    }
}

/// Something a scrape brings up to date first (a gauge read from the database, say).
public protocol MetricsRefresher: Sendable {
    func refresh() async
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
