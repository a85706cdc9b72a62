import BoxofficeCore

extension BenchRunner {
    /// Scenario 1: one hot general-admission event, every worker count × batch size, on a fresh queue
    /// (filled by the intake statement moments before: the headline) and on a vacuumed one.
    func drainScenario(_ results: inout BenchResults) async throws {
        say("\n== 1. drain: one hot general-admission event, \(plan.intents) intents for \(plan.tickets) tickets ==")
        for workers in plan.workers {
            for batchSize in plan.batchSizes {
                for fill in [QueueFill.liveIntake, .vacuumed] {
                    results.drain.append(
                        try await drainCell(
                            label: fill == .liveIntake ? "general admission" : "general admission, \(fill.rawValue)", workers: workers,
                            batchSize: batchSize, layout: .generalAdmission(capacity: plan.tickets), events: 1,
                            quantities: [1], sections: [nil], fill: fill, results: &results))
                }
            }
        }
    }
}
