import BoxofficeMetrics
import BoxofficeStore

/// The claim report → the worker's metrics.
extension WorkerMetrics {
    func settled(_ report: BatchReport, duration: Duration) {
        settled(
            intents: report.intents, confirmed: report.confirmed, rejectedByReason: report.rejectedByReason, ticketsSold: report.ticketsSold,
            decisionSeconds: report.decisionSeconds, duration: duration)
    }
}
