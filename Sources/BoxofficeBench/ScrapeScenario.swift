import BoxofficeHarness
import BoxofficeStore
import Foundation

extension BenchRunner {
    /// Scenario 4b: does scraping `/metrics` (the API's and every worker's) and `/dashboard/data` once
    /// per `--scrape-interval-ms` move the intake figures? The http scenario's processes, workers with
    /// metrics ports; interleaved trials without (A) and with (B) a scraper in this process, in the order
    /// AB BA AB … so drift over the run falls on both arms alike; each trial an intake ceiling (closed
    /// loop) and an open-loop run at the first `--http-rates`, the queue drained and the tables vacuumed
    /// before each. The verdict is a Mann–Whitney U test of the two arms' trials (``ArmComparison``).
    func scrapeScenario(_ results: inout BenchResults) async throws {
        let plan = self.plan
        say("\n== 4b. what scraping /metrics and /dashboard/data \(ScrapeResults.every(plan.scrapeInterval)) costs intake ==")
        guard let rate = plan.httpRates.first, let requestedConnections = plan.saturationConnections.first else {
            results.failures.append("scrape: needs one --http-rates and one --saturation-connections at least")
            return
        }
        let outcome = try await withCellDatabase { database, store -> (ScrapeResults, AuditReport) in
            let wrk = Wrk.find()
            var scrape = ScrapeResults(
                interval: plan.scrapeInterval, connections: wrk == nil ? HTTPCell.fallbackConnections : requestedConnections, rate: rate,
                seconds: plan.httpSeconds, generator: Self.closedLoopGenerator(wrk))
            try await self.withHTTPCell(database, store, logDirectory: self.logRoot.appendingPathComponent("scrape"), workerMetrics: true) {
                cell in
                let targets =
                    [Scraper.Target(name: "API /metrics", url: "\(cell.baseURL)/metrics")]
                    + cell.workerMetricsURLs.enumerated().map { Scraper.Target(name: "worker \($0.offset + 1) /metrics", url: $0.element) }
                    + [Scraper.Target(name: "API /dashboard/data", url: "\(cell.baseURL)/dashboard/data", authorization: "Bearer \(cell.adminToken)")]
                let scraper = Scraper(client: cell.client, targets: targets, interval: plan.scrapeInterval)
                scrape.costs = targets.map { ScrapeCost(endpoint: $0.name) }
                for pair in 0..<plan.scrapeTrials {
                    for scraped in pair.isMultiple(of: 2) ? [false, true] : [true, false] {
                        try await store.vacuumAndCheckpoint()
                        let (trial, costs) = try await self.scrapeTrial(
                            cell, store: store, wrk: wrk, connections: scrape.connections, rate: rate, scraper: scraped ? scraper : nil)
                        for index in costs.indices { scrape.costs[index].add(costs[index]) }
                        scrape.trials.append(trial)
                        say(
                            String(
                                format: "  trial %2d, %@: intake ceiling %6.0f req/s%@; offered %d/s: accepted %d/%d, intake p50 %.1f p99 %.1f ms%@",
                                scrape.trials.count, scraped ? "scraping   " : "no scraping", trial.intakeCeiling,
                                trial.ceilingFailures > 0 ? " (\(trial.ceilingFailures) failed)" : "", rate, trial.accepted, trial.offered,
                                trial.intakeP50Milliseconds, trial.intakeP99Milliseconds, scraped ? "; \(trial.rounds) scrape rounds" : ""))
                    }
                }
            }
            return (scrape, try await store.audit())
        }
        let scrape = outcome.0
        results.scrape = scrape
        for cost in scrape.costs where cost.failures > 0 {
            results.failures.append(
                "scrape: \(cost.failures) of \(cost.scrapes) scrapes of \(cost.endpoint) failed (first: \(cost.firstFailure ?? ""))")
        }
        if !outcome.1.isClean { results.failures.append("scrape: \(outcome.1.violations.first ?? "")") }
        for line in scrape.summaryLines { say("  \(line)") }
        say("  audit \(outcome.1.isClean ? "clean" : "FAILED")")
    }

    /// One trial: the closed-loop intake ceiling, then an open-loop run at `rate`, each followed by a
    /// drain; with `scraper`, it runs during both measured runs (not during the drains).
    func scrapeTrial(
        _ cell: HTTPCell, store: Store, wrk: Wrk?, connections: Int, rate: Int, scraper: Scraper?
    ) async throws -> (ScrapeTrial, [ScrapeCost]) {
        var costs = (scraper?.targets ?? []).map { ScrapeCost(endpoint: $0.name) }
        var rounds = 0
        // Runs `body` with the scraper going, and adds what it scraped.
        func whileScraping<T: Sendable>(_ body: () async throws -> T) async throws -> T {
            guard let scraper else { return try await body() }
            let scraping = Task { await scraper.run() }
            let value: T
            do {
                value = try await body()
            } catch {
                scraping.cancel()
                _ = await scraping.value
                throw error
            }
            scraping.cancel()
            let scraped = await scraping.value
            rounds += scraped.rounds
            for index in costs.indices { costs[index].add(scraped.costs[index]) }
            return value
        }
        let ceiling = try await whileScraping { try await self.intakeCeiling(cell, wrk: wrk, connections: connections) }
        try await waitForDrain(store, after: "the closed-loop intake run of a scrape trial")
        let load = try await whileScraping { try await self.openLoad(cell, rate: rate).result }
        try await waitForDrain(store, after: "the open-loop run of a scrape trial")
        let ms: (Double) -> Double = { Double(load.intakeLatency.valueAtPercentile($0)) / 1000 }
        let trial = ScrapeTrial(
            scraped: scraper != nil, intakeCeiling: ceiling.rate, ceilingFailures: ceiling.failures, intakeP50Milliseconds: ms(50),
            intakeP99Milliseconds: ms(99), accepted: load.accepted, offered: load.offered, rounds: rounds)
        return (trial, costs)
    }
}
