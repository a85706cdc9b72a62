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
        ]
        factory.valueHistogramBuckets = [
            Names.claimIntents: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 16_384, 65_536],
            Names.intakeGroupSize: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_000, 10_000],
        ]
        factory.nameAndLabelSanitizer = { name, labels in BoxofficeMetrics.prometheusName(name, labels) }
        self.factory = factory
    }

    /// A registry that is also the process's `MetricsSystem`: call once per process (`serve`, `work`), never in tests.
    public static func bootstrapped() -> BoxofficeMetrics {
        let metrics = BoxofficeMetrics()
        MetricsSystem.bootstrap(metrics.factory)
        return metrics
    }

    /// Runs `refresher` before every exposition.
    public func add(_ refresher: any MetricsRefresher) {
        refreshers.withLock { $0.append(refresher) }
    }

    /// The Prometheus text exposition (format 0.0.4), after the refreshers ran.
    public func exposition() async -> [UInt8] {
        for refresher in refreshers.withLock({ $0 }) { await refresher.refresh() }
        return registry.emitToBuffer()
    }

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
        public static let decisionLatency = "boxoffice_decision_latency_seconds"
        public static let lastClaim = "boxoffice_worker_last_claim_timestamp_seconds"
        public static let workerRunning = "boxoffice_worker_running"
        public static let queueDepth = "boxoffice_queue_depth"
        public static let queueDepthEvents = "boxoffice_queue_events_with_work"
        public static let queueDepthScrapeFailures = "boxoffice_queue_depth_failures_total"
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
