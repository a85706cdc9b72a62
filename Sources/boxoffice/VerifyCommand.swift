import ArgumentParser
import BoxofficeStore
import Foundation
import Logging

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit every invariant: no seat twice, sold + held + available = capacity, one outcome per intent, arrival order.",
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
