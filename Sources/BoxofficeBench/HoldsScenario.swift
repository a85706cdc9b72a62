import BoxofficeCore
import BoxofficeStore
import Foundation
import Synchronization

extension BenchRunner {
    /// Rows of one intake group when the bench fills a queue as intake does (the API's group commit
    /// writes groups of this order under load).
    static let intakeGroupRows = 500
    /// Concurrent writers filling a queue as intake does.
    static let intakeWriters = 4
    /// Concurrent payers confirming holds in the holds scenario.
    static let payers = 16

    /// Scenario 1b: the sale lifecycle at drain speed. A general-admission event with 5 s holds and
    /// a fresh queue: payers confirm 70% of the holds through the Store's transition as soon as they
    /// see them, the other 30% expire and go back into the sale, where the intents still queued get
    /// them, while 10% more intents arrive through intake. Allocations/s counts every decision
    /// (resales included), from the first settled batch to the drained queue; the report sets it
    /// beside the plain fresh-queue drain of the same workers and batch size.
    func holdsScenario(_ results: inout BenchResults) async throws {
        let capacity = min(plan.tickets, max(100, plan.intents / 200))
        say("\n== 1b. holds: \(plan.intents) intents for \(capacity) tickets held 5 s; 70% confirmed, 30% expire and are resold ==")
        for workers in plan.workers {
            for batchSize in plan.batchSizes where batchSize > 1 {
                let row = try await drainCell(
                    label: "holds", workers: workers, batchSize: batchSize, layout: .generalAdmission(capacity: capacity), events: 1,
                    quantities: [1], sections: [nil], fill: .liveIntake,
                    holds: HoldsMix(holdSeconds: 5, confirmShare: 0.7, extraIntents: plan.intents / 10), results: &results)
                if let holds = results.holds.last {
                    say(
                        "    confirmed \(holds.confirmed), expired \(holds.expired) (resold to intents still queued), \(String(format: "%.0f", row.allocationsPerSecond)) decisions/s"
                    )
                }
            }
        }
    }

    /// A holds cell's late arrivals: `extraIntents` more through intake, in groups, spread over the
    /// first seconds of the drain.
    static func arrive(store: Store, eventID: EventID, mix: HoldsMix, quantities: [Int]) async {
        var sent = 0
        var index = 0
        while sent < mix.extraIntents, !Task.isCancelled {
            let drafts = (0..<min(intakeGroupRows, mix.extraIntents - sent)).map { row in
                IntentDraft(
                    eventID: eventID, customer: "late-\(index)-\(row)", request: .anywhere(quantity: quantities[row % quantities.count]),
                    idempotencyKey: nil)
            }
            _ = try? await store.enqueue(drafts)
            sent += drafts.count
            index += 1
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A holds cell's payers, until cancelled: they confirm `confirmShare` of the event's new holds
    /// (chosen by a byte of the id, so every run picks the same share) with the Store's transition,
    /// ``payers`` at a time.
    static func pay(store: Store, eventID: EventID, mix: HoldsMix) async {
        var seen: Set<UUID> = []
        while !Task.isCancelled {
            let held = (try? await store.heldIntents(of: eventID, limit: 5_000)) ?? []
            let toConfirm = held.filter { seen.insert($0).inserted && Double($0.uuid.15) < 256 * mix.confirmShare }
            let next = WorkCursor()
            await withTaskGroup(of: Void.self) { payers in
                for _ in 0..<BenchRunner.payers {
                    payers.addTask {
                        while true {
                            let index = next.take()
                            guard index < toConfirm.count else { return }
                            _ = try? await store.transition(.confirm(paymentReference: nil), of: toConfirm[index], customer: nil)
                        }
                    }
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Hands out 0, 1, 2… to concurrent workers of one job.
final class WorkCursor: Sendable {
    private let next = Atomic<Int>(0)

    func take() -> Int { next.add(1, ordering: .relaxed).oldValue }
}
