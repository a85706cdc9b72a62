import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import Foundation
import Histogram

extension BenchRunner {
    /// Scenario 6: how one claim's cost grows with the queue's length (it should not).
    func queueScenario(_ results: inout BenchResults) async throws {
        say("\n== 6. claim cost vs queue length (batch 512, one worker in this process) ==")
        for length in plan.queueLengths {
            let row = try await withCellDatabase { _, store -> QueueRow in
                let event = try await store.createEvent(name: "queue \(length)", layout: .generalAdmission(capacity: EventLayout.capacityMax))
                // The measured batches take 30 × 512 intents: queue those on top, so the length holds.
                var remaining = length + 30 * 512
                while remaining > 0 {
                    let chunk = min(remaining, 500_000)
                    try await store.prequeue(eventID: event.id, count: chunk)
                    remaining -= chunk
                }
                try await store.vacuumAndCheckpoint()
                var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                for _ in 0..<30 {
                    let started = ContinuousClock.now
                    _ = try await store.allocateNextBatch(batchSizeMax: 512) { Allocator.allocate($1, from: &$0) }
                    _ = histogram.record(SaleLoad.microseconds(ContinuousClock.now - started))
                }
                return QueueRow(
                    length: length, batchP50Milliseconds: Double(histogram.valueAtPercentile(50)) / 1000,
                    batchP99Milliseconds: Double(histogram.valueAtPercentile(99)) / 1000)
            }
            results.queue.append(row)
            say(String(format: "  %10d queued: batch p50 %.2f ms, p99 %.2f ms", length, row.batchP50Milliseconds, row.batchP99Milliseconds))
        }
    }
}
