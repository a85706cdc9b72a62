import BoxofficeCore

extension BenchRunner {
    /// Scenario 3: 50 general-admission events at once, batch 512.
    func eventsScenario(_ results: inout BenchResults) async throws {
        say("\n== 3. drain: 50 events at once ==")
        let perEvent = max(2, plan.tickets / 50)
        for workers in plan.workers {
            results.drain.append(
                try await drainCell(
                    label: "50 events", workers: workers, batchSize: 512,
                    layout: .generalAdmission(capacity: perEvent), events: 50,
                    quantities: [1], sections: [nil], results: &results))
        }
    }
}
