import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeCore
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Histogram

extension BenchRunner {
    /// Scenario 4: the API and two workers as processes, load from this one: closed-loop ceiling
    /// (GET /health against intake), bulk intake, open-loop latency at fixed offered rates.
    func httpScenario(_ results: inout BenchResults) async throws {
        say("\n== 4. end to end over HTTP: API and 2 workers as processes, load from this one ==")
        let plan = self.plan
        let logDirectory = logRoot.appendingPathComponent("http")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let token = AccessControl.randomToken()
        let outcome = try await withCellDatabase { database, store -> (BenchResults, AuditReport) in
            var partial = BenchResults()
            let event = try await store.createEvent(name: "http", layout: .generalAdmission(capacity: EventLayout.capacityMax))
            let port = try Loopback.freePort()
            let tokens = ["BOXOFFICE_PRODUCER_TOKEN": token, "BOXOFFICE_ADMIN_TOKEN": AccessControl.randomToken()]
            let api = ChildProcesses(
                executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
                arguments: ["--port", "\(port)", "--log-level", "warning", "--connections-max", "32"],
                logDirectory: logDirectory, subcommand: "serve", environment: tokens)
            let workers = ChildProcesses(
                executable: ChildProcesses.siblingExecutable(), databaseURL: database.url,
                arguments: ["--batch-size", "512", "--log-level", "warning"], logDirectory: logDirectory)
            try api.spawn(1)
            try workers.spawn(2)
            var httpConfiguration = HTTPClient.Configuration()
            httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
            let baseURL = "http://127.0.0.1:\(port)"
            // Peaks per phase: read, then start again from the current size.
            func notePeaks(_ phase: String) {
                partial.peaksByPhase.append((phase, api.peakResidentKilobytes().max() ?? 0, workers.peakResidentKilobytes().max() ?? 0))
                api.resetPeakResident()
                workers.resetPeakResident()
            }
            do {
                try await Self.waitForHealth(baseURL, client: client)
                notePeaks("started, idle")
                // Closed loop: this machine's HTTP ceiling (GET /health) against intake, same generator, same run.
                if let wrk = Wrk.find() {
                    partial.saturationGenerator = "\(wrk.version), one thread"
                    for connections in plan.saturationConnections {
                        let health = try wrk.run(url: "\(baseURL)/health", connections: connections, seconds: plan.httpSeconds)
                        let intake = try wrk.run(
                            url: "\(baseURL)/events/\(event.id)/intents", connections: connections, seconds: plan.httpSeconds,
                            post: #"{"customer": "wrk", "quantity": 1}"#, token: token)
                        // The workers drain what intake queued before the next run, so no run pays for the last one's work.
                        try await self.waitForDrain(store, after: "the closed-loop intake run at \(connections) connections")
                        partial.saturation.append(
                            SaturationRow(
                                connections: connections, health: health.rate, intake: intake.rate,
                                failures: health.failures + intake.failures))
                    }
                } else {
                    partial.saturationGenerator =
                        "AsyncHTTPClient in this process (install wrk for figures that measure the server, not the generator)"
                    let health = await Saturation.requestsPerSecond(
                        client: client, connections: 64, duration: .seconds(plan.httpSeconds), expect: .ok
                    ) { _ in
                        HTTPClientRequest(url: "\(baseURL)/health")
                    }
                    let intake = await Saturation.requestsPerSecond(
                        client: client, connections: 64, duration: .seconds(plan.httpSeconds), expect: .accepted
                    ) { index in
                        var request = HTTPClientRequest(url: "\(baseURL)/events/\(event.id)/intents")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.headers.add(name: "Authorization", value: "Bearer \(token)")
                        request.body = .bytes(.init(string: #"{"customer": "sat-\#(index)", "quantity": 1}"#))
                        return request
                    }
                    partial.saturation.append(
                        SaturationRow(connections: 64, health: health.rate, intake: intake.rate, failures: health.failures + intake.failures))
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
                let bulk = await Saturation.requestsPerSecond(client: client, connections: 8, duration: .seconds(plan.httpSeconds), expect: .ok) {
                    _ in
                    var request = HTTPClientRequest(url: "\(baseURL)/events/\(event.id)/intents/batch")
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
                    var load = OpenLoad.Configuration(baseURL: baseURL, eventID: event.id, rate: rate, duration: .seconds(plan.httpSeconds))
                    load.token = token
                    let result = try await OpenLoad(load).run()
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
            } catch {
                try? await client.shutdown()
                await api.terminateAll()
                await workers.terminateAll()
                throw error
            }
            try await client.shutdown()
            await api.terminateAll()
            await workers.terminateAll()
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
