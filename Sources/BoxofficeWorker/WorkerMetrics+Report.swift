import BoxofficeMetrics
import BoxofficeStore

/// The claim report → the worker's metrics.
extension WorkerMetrics {
    func settled(_ report: BatchReport, duration: Duration) {
        var lifecycle = Lifecycle()
        lifecycle.ticketsHeld = report.ticketsHeld
        lifecycle.holdsExpired = report.holdsExpired
        lifecycle.released = report.ticketsReleased
        lifecycle.expired = report.ticketsExpired
        lifecycle.cancelled = report.ticketsCancelled
        // Sold: granted outright, plus holds confirmed (taken in by this claim).
        settled(
            intents: report.intents, confirmed: report.confirmed, rejectedByReason: report.rejectedByReason,
            ticketsSold: report.ticketsSold - report.ticketsHeld + report.ticketsConfirmed, decisionSeconds: report.decisionSeconds,
            duration: duration, lifecycle: lifecycle)
    }
}
