import BoxofficeCore

extension BenchRunner {
    /// Scenario 1: one hot general-admission event, every worker count × batch size.
    func drainScenario(_ results: inout BenchResults) async throws {
        say("\n== 1. drain: one hot general-admission event, \(plan.intents) intents for \(plan.tickets) tickets ==")
        for workers in plan.workers {
            for batchSize in plan.batchSizes {
                results.drain.append(
                    try await drainCell(
                        label: "general admission", workers: workers, batchSize: batchSize,
                        layout: .generalAdmission(capacity: plan.tickets), events: 1,
                        quantities: [1], sections: [nil], results: &results))
            }
        }
    }
}
