import AsyncHTTPClient
import BoxofficeHarness
import BoxofficeStore
import Foundation
import Histogram

extension BenchRunner {
    /// Scenario 4: the API and two workers as processes, load from this one: closed-loop ceiling
    /// (GET /health against intake), bulk intake, open-loop latency at fixed offered rates.
    func httpScenario(_ results: inout BenchResults) async throws {
        say("\n== 4. end to end over HTTP: API and 2 workers as processes, load from this one ==")
        let plan = self.plan
        let outcome = try await withCellDatabase { database, store -> (BenchResults, AuditReport) in
            var partial = BenchResults()
            try await self.withHTTPCell(database, store, logDirectory: self.logRoot.appendingPathComponent("http")) { cell in
                let (api, workers) = (cell.api, cell.workers)
                // Peaks per phase: read, then start again from the current size.
                func notePeaks(_ phase: String) {
                    partial.peaksByPhase.append((phase, api.peakResidentKilobytes().max() ?? 0, workers.peakResidentKilobytes().max() ?? 0))
                    api.resetPeakResident()
                    workers.resetPeakResident()
                }
                notePeaks("started, idle")
                // Closed loop: this machine's HTTP ceiling (GET /health) against intake, same generator, same run.
                let wrk = Wrk.find()
                partial.saturationGenerator = Self.closedLoopGenerator(wrk)
                for connections in wrk == nil ? [HTTPCell.fallbackConnections] : plan.saturationConnections {
                    let health = try await self.healthCeiling(cell, wrk: wrk, connections: connections)
                    let intake = try await self.intakeCeiling(cell, wrk: wrk, connections: connections)
                    // The workers drain what intake queued before the next run, so no run pays for the last one's work.
                    try await self.waitForDrain(store, after: "the closed-loop intake run at \(connections) connections")
                    partial.saturation.append(
                        SaturationRow(
                            connections: connections, health: health.rate, intake: intake.rate, failures: health.failures + intake.failures))
                }
                for row in partial.saturation {
                    say(
                        String(
                            format: "  %4d connections: GET /health %8.0f req/s; POST intents %8.0f req/s (%.2f× health)%@",
                            row.connections, row.health, row.intake, row.intake / max(row.health, 1),
                            row.failures > 0 ? " (\(row.failures) failed)" : ""))
                }
                say("  generator: \(partial.saturationGenerator)")
                notePeaks("closed loop (\(partial.saturation.map { "\($0.connections)" }.joined(separator: ", ")) connections)")
                // Bulk intake: producers that batch on their side send 1,000 intents per request (NDJSON).
                let bulkItems = 1_000
                let bulkBody = (0..<bulkItems).map { #"{"customer": "bulk-\#($0)", "quantity": 1}"# }.joined(separator: "\n")
                let batchURL = "\(cell.intakeURL)/batch"
                let token = cell.producerToken
                let bulk = await Saturation.requestsPerSecond(
                    client: cell.client, connections: 8, duration: .seconds(plan.httpSeconds), expect: .ok
                ) { _ in
                    var request = HTTPClientRequest(url: batchURL)
                    request.method = .POST
                    request.headers.add(name: "Content-Type", value: "application/x-ndjson")
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    request.body = .bytes(.init(string: bulkBody))
                    return request
                }
                partial.bulkIntentsPerSecond = bulk.rate * Double(bulkItems)
                say(String(format: "  POST intents/batch: %8.0f intents/s (%d per request, 8 connections)", bulk.rate * Double(bulkItems), bulkItems))
                try await self.waitForDrain(store, after: "the bulk intake run", every: .milliseconds(500))
                notePeaks("bulk intake")
                try await store.vacuumAndCheckpoint()
                for rate in plan.httpRates {
                    let (load, result) = try await self.openLoad(cell, rate: rate)
                    // Every accepted intent's decision time, from the outcomes table once the queue is drained.
                    // Bounded: what is still queued after a minute is reported as undecided, not waited for.
                    _ = try await poll(every: .milliseconds(100), timeout: .seconds(60)) {
                        try await store.totalQueued() == 0 ? nil : "queued"
                    }
                    let decidedAt = try await store.decidedAt(result.acceptedIntents.map(\.id))
                    var decision = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
                    for (id, intended) in result.acceptedIntents {
                        guard let decided = decidedAt[id] else { continue }
                        _ = decision.record(UInt64(max(0, decided.timeIntervalSince(intended)) * 1_000_000))
                    }
                    let row = HTTPRow(
                        rate: rate, result: result, decisionLatency: decision, undecided: result.acceptedIntents.count - decidedAt.count)
                    partial.http.append(row)
                    let ms: (Histogram<UInt64>, Double) -> Double = { Double($0.valueAtPercentile($1)) / 1000 }
                    say(
                        String(
                            format:
                                "  offered %6d/s: accepted %d/%d, intake p50 %.1f p99 %.1f ms; intake→decided p50 %.1f p99 %.1f p99.9 %.1f ms; long-poll (1 in %d) p50 %.1f p99 %.1f ms",
                            rate, result.accepted, result.offered, ms(result.intakeLatency, 50), ms(result.intakeLatency, 99),
                            ms(decision, 50), ms(decision, 99), ms(decision, 99.9), load.longPollEvery,
                            ms(result.outcomeLatency, 50), ms(result.outcomeLatency, 99)))
                }
                notePeaks("open loop (\(plan.httpRates.map { "\($0)" }.joined(separator: ", ")) intents/s)")
                partial.apiPeakKilobytes = partial.peaksByPhase.map(\.api).max()
                partial.httpWorkerPeakKilobytes = partial.peaksByPhase.map(\.worker).max()
                partial.apiBreakdownKilobytes = api.residentBreakdownKilobytes().first
                partial.workerBreakdownKilobytes = workers.residentBreakdownKilobytes().max { $0.anonymous < $1.anonymous }
            }
            return (partial, try await store.audit())
        }
        results.http = outcome.0.http
        results.saturation = outcome.0.saturation
        results.saturationGenerator = outcome.0.saturationGenerator
        results.bulkIntentsPerSecond = outcome.0.bulkIntentsPerSecond
        results.apiPeakKilobytes = outcome.0.apiPeakKilobytes
        results.peaksByPhase = outcome.0.peaksByPhase
        results.apiBreakdownKilobytes = outcome.0.apiBreakdownKilobytes
        results.workerBreakdownKilobytes = outcome.0.workerBreakdownKilobytes
        results.httpWorkerPeakKilobytes = outcome.0.httpWorkerPeakKilobytes
        if !outcome.1.isClean { results.failures.append("http: \(outcome.1.violations.first ?? "")") }
        for peak in results.peaksByPhase { say("  peak RSS, \(peak.phase): API \(peak.api / 1024) MB, worker \(peak.worker / 1024) MB") }
        say(
            "  peak RSS: API \((results.apiPeakKilobytes ?? 0) / 1024) MB, worker \((results.httpWorkerPeakKilobytes ?? 0) / 1024) MB; audit \(outcome.1.isClean ? "clean" : "FAILED")"
        )
    }
}
