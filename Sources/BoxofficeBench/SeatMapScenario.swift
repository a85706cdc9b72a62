import BoxofficeCore

extension BenchRunner {
    /// Scenario 2: reserved seating, best available in a section, 1–4 seats per intent.
    func seatMapScenario(_ results: inout BenchResults) async throws {
        let rowsPerSection = max(1, plan.tickets / 4 / 100)
        let layout = EventLayout.seatMap(["A", "B", "C", "D"].map { SectionLayout(name: $0, rows: rowsPerSection, seatsPerRow: 100) })
        say("\n== 2. drain: reserved seating, \(layout.capacity) seats, best available in a section, 1–4 seats ==")
        for workers in plan.workers {
            for batchSize in plan.batchSizes where batchSize > 1 {
                results.drain.append(
                    try await drainCell(
                        label: "seat map", workers: workers, batchSize: batchSize, layout: layout, events: 1,
                        quantities: [1, 2, 3, 4], sections: ["A", "B", "C", "D", nil], results: &results))
            }
        }
    }
}
