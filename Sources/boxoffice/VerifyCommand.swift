import ArgumentParser
import BoxofficeStore
import Foundation
import Logging

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit every invariant: no seat twice, sold + held + available = capacity, one outcome per intent, arrival order.",
        discussion: """
            Also: every accepted intent (acceptance record) is queued or settled, each buyer got the seats or \
            section asked for, Idempotency-Keys match their intents. The lifecycle: no seat in two live (held or \
            confirmed) outcomes, the counters equal the outcomes plus the transitions a worker has yet to apply \
            (inventory_journal), every released, expired or cancelled grant returned to the sale exactly once, \
            and no hold still held more than --hold-lateness-seconds past its expires_at (workers expire due holds \
            within a poll interval, 250 ms, and a batch; a late hold means no worker runs). Runs in one read-only \
            snapshot with no statement timeout. Lists quarantined intents (not a violation). Exits 0 when all \
            hold; otherwise prints each violation and exits 1.
            """)

    @Option(help: "Audit only this event.") var event: Int64?
    @Option(help: "How far past its expires_at a hold may still be held, in seconds; 0 skips the check (workers stopped on purpose).")
    var holdLatenessSeconds = Int(HoldExpiry.latenessMax.components.seconds)
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard holdLatenessSeconds >= 0 else { throw ValidationError("--hold-lateness-seconds must be 0 or more") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.verify")
        let event = self.event
        let lateness: Duration? = holdLatenessSeconds > 0 ? .seconds(holdLatenessSeconds) : nil
        let report = try await withStore(try database.configuration(), logger: logger) {
            try await $0.audit(eventID: event, holdLatenessMax: lateness)
        }
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
        "\(isClean ? "OK" : "FAILED"): \(events) events, \(accepted) accepted, \(outcomes) outcomes (\(confirmed) confirmed, \(held) held, \(released) released, \(expired) expired, \(cancelled) cancelled, \(rejected) rejected, \(quarantined) of them quarantined), \(pending) pending, \(ticketsSold) tickets sold, \(journalPending) transitions for a worker to apply, latest expiry \(String(format: "%.3f", expiryLatenessMaxSeconds)) s after its expires_at, \(violations.count) violations"
    }
}
