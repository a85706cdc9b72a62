import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation

/// One drain cell, shared by the drain scenarios (DrainScenarios.swift): intents pre-queued, then N
/// `boxoffice work` processes drain them; allocations/s from the first settled batch to the end or the time budget.
extension BenchRunner {
    func drainCell(
        label: String, workers: Int, batchSize: Int, layout: EventLayout, events: Int,
        quantities: [Int], sections: [String?], results: inout BenchResults
    ) async throws -> DrainRow {
        let plan = self.plan
        let logDirectory = logRoot.appendingPathComponent("cell-\(cellCounter.load(ordering: .relaxed) + 1)")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let (row, audit) = try await withCellDatabase { database, store in
            var eventIDs: [EventID] = []
            for index in 0..<events {
                let event = try await store.createEvent(name: "\(label) \(index)", layout: layout)
                eventIDs.append(event.id)
                try await store.prequeue(eventID: event.id, count: plan.intents / events, quantities: quantities, sections: sections)
            }
            try await store.vacuumQueue()
            let total = plan.intents / events * events
            let processes = ChildProcesses(
                executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
                arguments: ["--batch-size", "\(batchSize)", "--poll-milliseconds", "20", "--log-level", "info"], logDirectory: logDirectory)
            try processes.spawn(workers)
            let budget = ContinuousClock.now + .seconds(plan.cellSeconds + 10)
            // The clock starts at the first settled batch, so process start-up is not counted.
            var start: (ContinuousClock.Instant, Int)?
            var queued = total
            while ContinuousClock.now < budget {
                try await Task.sleep(for: .milliseconds(50))
                queued = try await store.totalQueued()
                if start == nil, queued < total { start = (.now, total - queued) }
                if let start, queued == 0 || ContinuousClock.now - start.0 > .seconds(plan.cellSeconds) { break }
            }
            let end = ContinuousClock.now
            let peak = processes.peakResidentKilobytes().max() ?? 0
            _ = await processes.terminateAll()
            let (startInstant, startDecided) = start ?? (end, 0)
            let decided = total - queued - startDecided
            let seconds = OpenLoad.seconds(end - startInstant)
            let records = processes.exitRecords()
            let batches = records.compactMap { Int($0["batches"] ?? "") }.reduce(0, +)
            let p50s = records.compactMap { Double($0["batch_p50_us"] ?? "") }.sorted()
            let p99 = records.compactMap { Double($0["batch_p99_us"] ?? "") }.max() ?? 0
            let audit = try await store.audit()
            let row = DrainRow(
                label: label, workers: workers, batchSize: batchSize, decided: decided, seconds: seconds,
                batches: batches,
                batchP50Milliseconds: (p50s.isEmpty ? 0 : p50s[p50s.count / 2]) / 1000, batchP99Milliseconds: p99 / 1000,
                drained: queued == 0, workerPeakKilobytes: peak)
            return (row, audit)
        }
        if !audit.isClean { results.failures.append("\(label) workers=\(workers) batch=\(batchSize): \(audit.violations.first ?? "")") }
        say(
            String(
                format: "  %@ workers=%d batch=%5d: %8.0f allocations/s, %7.1f batches/s, batch p50 %.2f ms p99 %.2f ms%@%@",
                label, workers, batchSize, row.allocationsPerSecond, row.batchesPerSecond, row.batchP50Milliseconds, row.batchP99Milliseconds,
                row.drained ? "" : " (time budget hit)", audit.isClean ? "" : " AUDIT FAILED"))
        return row
    }
}
