import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation
import Synchronization

/// How a drain cell's queue is filled before the workers start.
enum QueueFill: String, Sendable {
    /// As a real on-sale fills it: the intake statement (the API's group commit), groups of
    /// ``BenchRunner/intakeGroupRows`` rows from several concurrent writers, the workers started the
    /// moment it is full: no VACUUM, no CHECKPOINT. Fresh tuples: no hint bits, no visibility map,
    /// autovacuum due. The headline.
    case liveIntake = "fresh queue"
    /// One bulk insert, then `VACUUM ANALYZE`: the queue a maintenance window would leave. Faster to
    /// drain, and not what a sale meets; kept for comparison with earlier reports.
    case vacuumed = "vacuumed queue"
}

/// The lifecycle mixed into a drain cell (the holds scenario): the event holds each grant for
/// `holdSeconds`; payers confirm `confirmShare` of the holds through the Store's transition (the
/// API's path) as soon as they see them; the rest expire and are resold to the intents still queued,
/// while `extraIntents` more arrive through intake during the drain.
struct HoldsMix: Sendable {
    let holdSeconds: Int
    let confirmShare: Double
    let extraIntents: Int
}

/// What the lifecycle did in a holds cell.
struct HoldsOutcome: Sendable {
    var confirmed = 0
    var expired = 0
    var ticketsGranted = 0
    var capacity = 0
    /// Tickets granted beyond the capacity: resold after an expiry.
    var resold: Int { max(0, ticketsGranted - capacity) }
}

/// One drain cell, shared by the drain scenarios (DrainScenarios.swift): intents queued, then N
/// `boxoffice work` processes drain them; allocations/s from the first settled batch to the end or the time budget.
extension BenchRunner {
    func drainCell(
        label: String, workers: Int, batchSize: Int, layout: EventLayout, events: Int,
        quantities: [Int], sections: [String?], fill: QueueFill = .liveIntake, holds: HoldsMix? = nil,
        results: inout BenchResults
    ) async throws -> DrainRow {
        let plan = self.plan
        let logDirectory = logRoot.appendingPathComponent("cell-\(cellCounter.load(ordering: .relaxed) + 1)")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let (row, audit) = try await withCellDatabase { database, store in
            var eventIDs: [EventID] = []
            for index in 0..<events {
                let event = try await store.createEvent(name: "\(label) \(index)", layout: layout, holdSeconds: holds?.holdSeconds ?? 0)
                eventIDs.append(event.id)
                switch fill {
                case .liveIntake:
                    try await store.fillLikeIntake(eventID: event.id, count: plan.intents / events, quantities: quantities, sections: sections)
                case .vacuumed:
                    try await store.prequeue(eventID: event.id, count: plan.intents / events, quantities: quantities, sections: sections)
                }
            }
            if fill == .vacuumed { try await store.vacuumQueue() }
            let total = plan.intents / events * events
            let processes = ChildProcesses(
                executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
                arguments: ["--batch-size", "\(batchSize)", "--poll-milliseconds", "20", "--log-level", "info"], logDirectory: logDirectory)
            try processes.spawn(workers)
            let budget = ContinuousClock.now + .seconds(plan.cellSeconds + 10)
            // The clock starts at the first settled batch, so process start-up is not counted; a holds
            // cell's payers and late arrivals start then too.
            var start: (ContinuousClock.Instant, Int)?
            var arrivals: Task<Void, Never>?
            var payers: Task<Void, Never>?
            let arrived = ArrivalsDone()
            var queued = total
            while ContinuousClock.now < budget {
                try await Task.sleep(for: .milliseconds(50))
                queued = try await store.totalQueued()
                if start == nil, queued < total {
                    start = (.now, try await store.decidedCount())
                    if let mix = holds {
                        let event = eventIDs[0]
                        arrivals = Task {
                            await BenchRunner.arrive(store: store, eventID: event, mix: mix, quantities: quantities)
                            arrived.done.store(true, ordering: .releasing)
                        }
                        payers = Task { await BenchRunner.pay(store: store, eventID: event, mix: mix) }
                    }
                }
                let allIn = holds == nil || arrived.done.load(ordering: .acquiring)
                if let start, (queued == 0 && allIn) || ContinuousClock.now - start.0 > .seconds(plan.cellSeconds) {
                    break
                }
            }
            let end = ContinuousClock.now
            let decidedAtEnd = try await store.decidedCount()
            arrivals?.cancel()
            payers?.cancel()
            _ = await arrivals?.value
            _ = await payers?.value
            if let holds {
                // The last holds expire and go back before the audit (a worker is still running).
                try await waitUntil("the last holds to expire", every: .milliseconds(100), timeout: .seconds(holds.holdSeconds + 60)) {
                    let summary = try await store.eventSummary(eventIDs[0])
                    return (summary?.held ?? 0) > 0 ? "holds left" : nil
                }
            }
            let peak = processes.peakResidentKilobytes().max() ?? 0
            _ = await processes.terminateAll()
            let (startInstant, startDecided) = start ?? (end, decidedAtEnd)
            let decided = decidedAtEnd - startDecided
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
        if holds != nil {
            results.holds.append(
                HoldsRow(drain: row, confirmed: audit.confirmed, expired: audit.expired, released: audit.released, capacity: layout.capacity))
        }
        say(
            String(
                format: "  %@ workers=%d batch=%5d: %8.0f allocations/s, %7.1f batches/s, batch p50 %.2f ms p99 %.2f ms%@%@",
                label, workers, batchSize, row.allocationsPerSecond, row.batchesPerSecond, row.batchP50Milliseconds, row.batchP99Milliseconds,
                row.drained ? "" : " (time budget hit)", audit.isClean ? "" : " AUDIT FAILED"))
        return row
    }
}

/// Set once a holds cell's late arrivals are all in.
final class ArrivalsDone: Sendable {
    let done = Atomic<Bool>(false)
}
