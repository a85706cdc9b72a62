import ArgumentParser
import BoxofficeCore
import BoxofficeStore
import Foundation
import Logging

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete settled outcomes older than a given age, in bounded batches, from events that are not on sale.",
        discussion: """
            An outcome is pruned when it was decided more than --older-than ago. With it go its acceptance record \
            and quarantine row (so verify's accepted = queued + settled still holds), and first every Idempotency-Key \
            created before that instant (all expired: --older-than must be at least the key lifetime, so no key \
            outlives its intent). Each event's tally of what was pruned (outcomes, tickets) is kept in \
            pruned_outcomes; verify counts those tickets as sold, and no longer names an order for a pruned seat.

            An event is on sale while it has queued intents (rows in `intents`): its outcomes are still being \
            written. prune refuses such an event given with --event (exit 1); without --event it skips it and says \
            so. The check is repeated by every batch, in the same statement, so an event that goes back on sale \
            mid-prune is left alone from then on.

            Each batch deletes at most --batch-size outcomes (oldest decision first) in one short transaction, and \
            prints a progress line. Stopping prune (Ctrl-C) between batches loses nothing; run it again.
            """)

    @Option(
        help: ArgumentHelp(
            "Prune outcomes decided longer ago than this: a number with a unit, s, m, h or d (e.g. 30d, 12h, 90m); at least the Idempotency-Key lifetime.",
            valueName: "duration"))
    var olderThan: String
    @Option(help: "Prune only this event (refused, exit 1, while it is on sale).") var event: Int64?
    @Option(help: "Outcomes (and Idempotency-Keys) deleted per statement (1...100000).") var batchSize = Retention.pruneBatchSizeDefault
    @OptionGroup var retention: RetentionOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1...100000") }
        guard Self.parseDuration(olderThan) != nil else { throw ValidationError("--older-than must look like 30d, 12h, 90m or 3600s") }
    }

    /// `30d`, `12h`, `90m`, `45s` or bare seconds; nil for anything else.
    static func parseDuration(_ text: String) -> Duration? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let last = trimmed.last else { return nil }
        let (digits, unit) = units[last].map { (trimmed.dropLast(), $0) } ?? (Substring(trimmed), 1)
        guard let value = Int(digits), value >= 0, value <= 100 * 365 * 86_400 / unit else { return nil }
        return .seconds(value * unit)
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.prune")
        guard let olderThan = Self.parseDuration(olderThan) else { throw ValidationError("--older-than must look like 30d, 12h, 90m or 3600s") }
        let event = self.event
        let batchSize = self.batchSize
        let started = ContinuousClock.now
        do {
            let summary = try await withStore(
                try database.configuration(), logger: logger, idempotencyKeyLifetime: try retention.idempotencyKeyLifetime()
            ) {
                try await $0.prune(olderThan: olderThan, eventID: event, batchSize: batchSize) { step in
                    switch step {
                    case .keys(let total): print("idempotency keys: \(total) deleted")
                    case .batch(let id, let batch, let total):
                        print("event \(id): \(batch.outcomes) outcomes (\(batch.quarantined) quarantined) deleted, \(total) so far")
                    case .skipped(let id): print("event \(id): on sale (queued intents), skipped")
                    }
                }
            }
            let seconds = (ContinuousClock.now - started).components.seconds
            print(
                "pruned \(summary.outcomes) outcomes of \(summary.prunedEvents.count) events in \(summary.batches) batches, "
                    + "\(summary.keys) idempotency keys, \(summary.skippedOnSale.count) events skipped on sale, \(seconds) s")
        } catch let refusal as PruneRefusal {
            throw CommandError("prune refused: \(refusal)")
        }
    }
}
