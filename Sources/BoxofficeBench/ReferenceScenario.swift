import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation

extension BenchRunner {
    /// Scenario 5: the usual designs (ReferenceDesigns.swift), one transaction per purchase, same schema.
    func referenceScenario(_ results: inout BenchResults) async throws {
        say("\n== 5. reference designs: one transaction per purchase, same schema ==")
        let plan = self.plan
        for strategy in ReferenceStrategy.allCases {
            for clients in plan.referenceClients {
                let (rate, audit) = try await withCellDatabase { _, store -> (Double, AuditReport) in
                    let capacity = 1_000_000
                    let event = try await store.createEvent(name: strategy.rawValue, layout: .generalAdmission(capacity: capacity))
                    if strategy == .skipLockedSeat { try await store.prepareReferenceSeats(eventID: event.id, capacity: capacity) }
                    let deadline = ContinuousClock.now + .seconds(plan.referenceSeconds)
                    let start = ContinuousClock.now
                    let sold = try await withThrowingTaskGroup(of: Int.self) { group in
                        for client in 0..<clients {
                            group.addTask {
                                var purchase = 0
                                var sold = 0
                                while ContinuousClock.now < deadline {
                                    purchase += 1
                                    if try await store.referencePurchase(strategy, eventID: event.id, customer: "ref-\(client)-\(purchase)") {
                                        sold += 1
                                    }
                                }
                                return sold
                            }
                        }
                        return try await group.reduce(0, +)
                    }
                    let rate = Double(sold) / OpenLoad.seconds(ContinuousClock.now - start)
                    if strategy == .skipLockedSeat { try await store.reconcileReferenceSeats(eventID: event.id) }
                    return (rate, try await store.audit())
                }
                results.reference.append(ReferenceRow(strategy: strategy, clients: clients, purchasesPerSecond: rate))
                if !audit.isClean { results.failures.append("reference \(strategy.rawValue): \(audit.violations.first ?? "")") }
                say(String(format: "  %@, %3d clients: %8.0f purchases/s%@", strategy.title, clients, rate, audit.isClean ? "" : " AUDIT FAILED"))
            }
        }
    }
}
