import BoxofficeHarness
import BoxofficeStore
import Foundation

extension ScrapeResults {
    /// "every 1 s", "every 0.5 s".
    static func every(_ interval: Duration) -> String { "every \(OpenLoad.seconds(interval).formatted()) s" }
    var every: String { Self.every(interval) }

    /// Each figure per arm (median, min–max), the verdicts, the rule, and what the scrapes cost.
    var summaryLines: [String] {
        let withoutCount = trials.filter { !$0.scraped }.count
        var lines = ["\(withoutCount) trials without scraping, \(trials.count - withoutCount) scraping \(every), interleaved (AB BA AB …)"]
        let comparisons = self.comparisons
        for comparison in comparisons {
            lines.append(
                "\(comparison.figure) (\(comparison.unit)): without median \(ArmComparison.summary(comparison.without)); scraping median \(ArmComparison.summary(comparison.with))"
            )
        }
        lines += comparisons.map { "scraping \(every): \($0.verdict)" }
        lines.append("rule: \(ArmComparison.rule)")
        for cost in costs {
            lines.append(
                String(
                    format: "%@: %d scrapes, mean %.1f ms, max %.1f ms, %d failed", cost.endpoint, cost.scrapes, cost.meanMilliseconds,
                    cost.maxSeconds * 1000, cost.failures))
        }
        return lines
    }

    func markdown() -> [String] {
        var lines = [
            "## What scraping costs intake (scenario 4b)", "",
            "The HTTP scenario's processes (API, 2 workers each with `--metrics-port`); \(trials.count) trials of \(seconds) s per measurement, interleaved without (A) and with (B) a scraper in the bench process that GETs the API's `/metrics`, every worker's `/metrics` and `/dashboard/data` (admin token) \(every), in the order AB BA AB … Each trial: the closed-loop intake ceiling (\(generator), \(connections) connections), then an open-loop run at \(rate) intents/s; the queue is drained and the tables vacuumed before each.",
            "",
            "| trial | arm | intake ceiling req/s | open-loop accepted | intake p50 ms | intake p99 ms | scrape rounds |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for (index, trial) in trials.enumerated() {
            lines.append(
                String(
                    format: "| %d | %@ | %.0f | %d/%d | %.1f | %.1f | %d |", index + 1, trial.scraped ? "B, scraping" : "A, none",
                    trial.intakeCeiling,
                    trial.accepted, trial.offered, trial.intakeP50Milliseconds, trial.intakeP99Milliseconds, trial.rounds))
        }
        lines += ["", "| figure | A median (min–max) | B median (min–max) | verdict |", "|---|---:|---:|---|"]
        for comparison in comparisons {
            lines.append(
                "| \(comparison.figure) (\(comparison.unit)) | \(ArmComparison.summary(comparison.without)) | \(ArmComparison.summary(comparison.with)) | \(comparison.verdict) |"
            )
        }
        lines += ["", "Rule: \(ArmComparison.rule).", "", "| endpoint | scrapes | mean ms | max ms | failed |", "|---|---:|---:|---:|---:|"]
        for cost in costs {
            lines.append(
                String(
                    format: "| %@ | %d | %.1f | %.1f | %d |", cost.endpoint, cost.scrapes, cost.meanMilliseconds, cost.maxSeconds * 1000,
                    cost.failures))
        }
        lines.append("")
        return lines
    }
}

extension BenchResults {
    /// The best single-event general-admission drain on a fresh queue (filled by the intake statement
    /// moments before, as a sale fills it): Boxoffice's headline figure.
    var bestHotEvent: DrainRow? {
        drain.filter { $0.label == "general admission" }.max { $0.allocationsPerSecond < $1.allocationsPerSecond }
    }

    package func markdown(plan: BenchPlan, environment: [String], command: String, picture: String? = nil) -> String {
        var lines: [String] = ["# Boxoffice benchmarks", ""]
        lines += environment.map { "- \($0)" }
        lines += ["- command: `\(command)`", ""]
        if let picture {
            lines += ["![Allocations/s by batch size against the reference designs, and HTTP intake→decided latency by percentile](\(picture))", ""]
        }
        let f0: (Double) -> String = { String(format: "%.0f", $0) }
        let f1: (Double) -> String = { String(format: "%.1f", $0) }
        let f2: (Double) -> String = { String(format: "%.2f", $0) }
        if !drain.isEmpty {
            lines += [
                "## Drain (scenarios 1–3)", "",
                "Intents queued, then N `boxoffice work` processes drain them; allocations/s counts decided intents from the first settled batch to the end (or the time budget).",
                "",
                "**Fresh queue** (the headline, rows without a suffix): filled by the intake statement (the API's group commit, groups of \(BenchRunner.intakeGroupRows) rows from \(BenchRunner.intakeWriters) writers, one transaction each) moments before the workers start, no VACUUM or CHECKPOINT in between: tuples without hint bits or visibility-map bits, autovacuum due during the drain, as in a real on-sale. **Vacuumed queue**: one bulk insert, then `VACUUM ANALYZE`, as earlier reports measured it; faster, and not what a sale meets.",
                "",
                "One batch, whatever its size: BEGIN; pick the event and lock its inventory row (`FOR NO KEY UPDATE SKIP LOCKED`); claim up to *batch* intents (an index range scan; no row locks: the inventory row is the allocation right); for a seat map, read the rows with free seats; allocate in memory; one settle statement (delete the intents by primary key, insert their outcomes, update the seat rows and the inventory, NOTIFY); COMMIT. That is 5 round trips (6 for a seat map), *batch* + 1 rows written, and one WAL flush.",
                "",
                "| scenario | workers | batch | allocations/s | batches/s | batch p50 ms | batch p99 ms | drained | worker peak RSS MB |",
                "|---|---:|---:|---:|---:|---:|---:|---|---:|",
            ]
            for row in drain {
                lines.append(
                    "| \(row.label) | \(row.workers) | \(row.batchSize) | \(f0(row.allocationsPerSecond)) | \(f1(row.batchesPerSecond)) | \(f2(row.batchP50Milliseconds)) | \(f2(row.batchP99Milliseconds)) | \(row.drained ? "yes" : "budget") | \(row.workerPeakKilobytes / 1024) |"
                )
            }
            lines.append("")
        }
        if !holds.isEmpty {
            lines += [
                "## The sale lifecycle at drain speed (scenario 1b)", "",
                "A general-admission event holding each grant 5 s (capacity: one two-hundredth of the intents, so the queue outlasts several hold periods), a fresh queue, and 10% more intents arriving through intake during the drain. \(BenchRunner.payers) payers confirm 70% of the holds through the Store's transition (the API's path) as soon as they see them (on the same 2 cores: a confirm they reach too late expires, so more than 30% may); the other 30% expire, and the worker holding the event puts their tickets back before its next allocation, so the intents still queued get them. Decisions/s counts every decision, resales included; the ratio sets it beside the fresh-queue drain with the same workers and batch size (target ≥ 0.8).",
                "",
                "| workers | batch | decisions/s | plain drain | ratio | confirmed | expired (resold) | capacity | batch p50 ms | batch p99 ms |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for row in holds {
                let plain = drain.first { $0.label == "general admission" && $0.workers == row.drain.workers && $0.batchSize == row.drain.batchSize }
                let ratio = plain.map { row.drain.allocationsPerSecond / max($0.allocationsPerSecond, 1) }
                lines.append(
                    "| \(row.drain.workers) | \(row.drain.batchSize) | \(f0(row.drain.allocationsPerSecond)) | \(plain.map { f0($0.allocationsPerSecond) } ?? "–") | \(ratio.map(f2) ?? "–") | \(row.confirmed) | \(row.expired) | \(row.capacity) | \(f2(row.drain.batchP50Milliseconds)) | \(f2(row.drain.batchP99Milliseconds)) |"
                )
            }
            lines.append("")
        }
        if !saturation.isEmpty {
            lines += [
                "## End to end over HTTP (scenario 4)", "",
                "API and 2 workers (draining what intake queues) as separate processes, all on the same 2 cores as the load generator.", "",
                "Closed loop, generator: \(saturationGenerator).", "",
                "| connections | `GET /health` req/s (HTTP ceiling) | `POST /events/{id}/intents` req/s (group commit) | intake / health |",
                "|---:|---:|---:|---:|",
            ]
            for row in saturation {
                lines.append("| \(row.connections) | \(f0(row.health)) | \(f0(row.intake)) | \(f2(row.intake / max(row.health, 1)))× |")
            }
            lines.append("")
            if let bulk = bulkIntentsPerSecond {
                lines += [
                    "Bulk intake, `POST /events/{id}/intents/batch`, 1,000 intents per NDJSON request, 8 connections: **\(f0(bulk)) intents/s**.", "",
                ]
            }
            if !http.isEmpty {
                lines += [
                    "Open loop (a wrk2-style generator in this process: raw HTTP/1.1 on one event-loop thread, up to 256 kept-alive connections, one request at a time on each): a fixed offered rate that does not slow down when the server does; every latency from the intended send time (ms). *Decided* is `outcomes.decided_at` of every accepted intent (the settle statement's start, same clock); *long-poll* is what a client polling `GET /intents/{id}?wait=15` saw, for 1 intent in 10.",
                    "",
                    "| offered/s | accepted | intake p50 | intake p99 | decided p50 | decided p99 | decided p99.9 | long-poll p50 | long-poll p99 |",
                    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                ]
                for row in http {
                    let r = row.result
                    let ms: (UInt64) -> String = { String(format: "%.1f", Double($0) / 1000) }
                    lines.append(
                        "| \(row.rate) | \(r.accepted)/\(r.offered) | \(ms(r.intakeLatency.valueAtPercentile(50))) | \(ms(r.intakeLatency.valueAtPercentile(99))) | \(ms(row.decisionLatency.valueAtPercentile(50))) | \(ms(row.decisionLatency.valueAtPercentile(99))) | \(ms(row.decisionLatency.valueAtPercentile(99.9))) | \(ms(r.outcomeLatency.valueAtPercentile(50))) | \(ms(r.outcomeLatency.valueAtPercentile(99))) |"
                    )
                }
                lines.append("")
            }
            lines += ["Peak RSS under load: API \((apiPeakKilobytes ?? 0) / 1024) MB, worker \((httpWorkerPeakKilobytes ?? 0) / 1024) MB.", ""]
            if !peaksByPhase.isEmpty {
                lines += ["| phase of the HTTP run | API peak RSS (MB) | worker peak RSS (MB) |", "|---|---:|---:|"]
                lines += peaksByPhase.map { "| \($0.phase) | \($0.api / 1024) | \($0.worker / 1024) |" }
                lines += [""]
            }
            if let api = apiBreakdownKilobytes, let worker = workerBreakdownKilobytes {
                lines += [
                    "Resident after the load, heap (anonymous) + code and shared libraries (file-backed, the same pages in every Boxoffice process): API \(api.anonymous / 1024) + \(api.file / 1024) MB, worker \(worker.anonymous / 1024) + \(worker.file / 1024) MB.",
                    "",
                ]
            }
        }
        if !reference.isEmpty {
            lines += [
                "## Reference designs (scenario 5)", "",
                "One transaction per purchase of one ticket, each recording an order row, same schema, same cluster.", "",
                "| design | clients | purchases/s | Boxoffice ratio |", "|---|---:|---:|---:|",
            ]
            let best = bestHotEvent?.allocationsPerSecond
            for row in reference {
                let ratio = best.map { f1($0 / max(row.purchasesPerSecond, 1)) + "×" } ?? "—"
                lines.append("| \(row.strategy.title) | \(row.clients) | \(f0(row.purchasesPerSecond)) | \(ratio) |")
            }
            if let hot = bestHotEvent {
                lines += [
                    "", "Boxoffice: \(f0(hot.allocationsPerSecond)) allocations/s (\(hot.workers) worker(s), batch \(hot.batchSize)), durable.",
                ]
            }
            lines.append("")
        }
        if !queue.isEmpty {
            lines += ["## Claim cost vs queue length (scenario 6)", "", "| queued | batch p50 ms | batch p99 ms |", "|---:|---:|---:|"]
            for row in queue { lines.append("| \(row.length) | \(f2(row.batchP50Milliseconds)) | \(f2(row.batchP99Milliseconds)) |") }
            if let first = queue.first, let last = queue.last, queue.count > 1 {
                lines += [
                    "", "p50 at \(last.length) / p50 at \(first.length): \(f2(last.batchP50Milliseconds / max(first.batchP50Milliseconds, 0.001)))×",
                ]
            }
            lines.append("")
        }
        if let scrape { lines += scrape.markdown() }
        lines.append(failures.isEmpty ? "Every cell's invariant audit was clean." : "FAILED: \(failures.joined(separator: "; "))")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Throughput vs batch size (one line per worker count) and the HTTP latency percentiles, as SVG.
    package func svg() -> String {
        let width = 960.0
        let height = 420.0
        var parts: [String] = [
            #"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="420" font-family="sans-serif" font-size="12">"#,
            #"<rect width="960" height="420" fill="white"/>"#,
        ]
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        // Left: allocations/s vs batch size (log x), general admission.
        let rows = drain.filter { $0.label == "general admission" }
        let batchSizes = Array(Set(rows.map(\.batchSize))).sorted()
        let maxRate = max(rows.map(\.allocationsPerSecond).max() ?? 1, 1)
        let plot = (x: 60.0, y: 40.0, w: 380.0, h: 320.0)
        parts.append(#"<text x="60" y="24" font-size="14">Drain, one hot event: allocations/s vs batch size</text>"#)
        parts.append("<rect x=\"\(plot.x)\" y=\"\(plot.y)\" width=\"\(plot.w)\" height=\"\(plot.h)\" fill=\"none\" stroke=\"#999\"/>")
        let xFor: (Int) -> Double = { size in
            guard let index = batchSizes.firstIndex(of: size), batchSizes.count > 1 else { return plot.x + plot.w / 2 }
            return plot.x + 20 + (plot.w - 40) * Double(index) / Double(batchSizes.count - 1)
        }
        let yFor: (Double) -> Double = { plot.y + plot.h - plot.h * $0 / (maxRate * 1.1) }
        for size in batchSizes {
            parts.append("<text x=\"\(xFor(size))\" y=\"\(plot.y + plot.h + 16)\" text-anchor=\"middle\">\(size)</text>")
        }
        for step in 0...4 {
            let value = maxRate * 1.1 * Double(step) / 4
            parts.append("<text x=\"\(plot.x - 6)\" y=\"\(yFor(value) + 4)\" text-anchor=\"end\">\(Int(value / 1000))k</text>")
            parts.append("<line x1=\"\(plot.x)\" x2=\"\(plot.x + plot.w)\" y1=\"\(yFor(value))\" y2=\"\(yFor(value))\" stroke=\"#eee\"/>")
        }
        parts.append("<text x=\"\(plot.x + plot.w / 2)\" y=\"\(plot.y + plot.h + 34)\" text-anchor=\"middle\">intents per batch</text>")
        for (index, workers) in Array(Set(rows.map(\.workers))).sorted().enumerated() {
            let points = rows.filter { $0.workers == workers }.sorted { $0.batchSize < $1.batchSize }
                .map { "\(xFor($0.batchSize)),\(yFor($0.allocationsPerSecond))" }.joined(separator: " ")
            let colour = colours[index % colours.count]
            parts.append("<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>")
            parts.append(
                "<text x=\"\(plot.x + 10)\" y=\"\(plot.y + 16 + Double(index) * 16)\" fill=\"\(colour)\">\(workers) worker\(workers == 1 ? "" : "s")</text>"
            )
        }
        for row in reference.filter({ $0.clients == reference.map(\.clients).max() }) {
            let y = yFor(row.purchasesPerSecond)
            parts.append("<line x1=\"\(plot.x)\" x2=\"\(plot.x + plot.w)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>")
            parts.append(
                "<text x=\"\(plot.x + plot.w - 4)\" y=\"\(y - 3)\" text-anchor=\"end\" fill=\"#666\">\(row.strategy.title.prefix(3)) \(Int(row.purchasesPerSecond))/s</text>"
            )
        }
        // Right: intake→outcome latency percentiles per offered rate (log y).
        let right = (x: 540.0, y: 40.0, w: 380.0, h: 320.0)
        parts.append(#"<text x="540" y="24" font-size="14">HTTP intake→decided latency by percentile (ms)</text>"#)
        parts.append("<rect x=\"\(right.x)\" y=\"\(right.y)\" width=\"\(right.w)\" height=\"\(right.h)\" fill=\"none\" stroke=\"#999\"/>")
        let percentiles = [50.0, 90.0, 99.0, 99.9]
        let maxLatency = max(http.map { Double($0.decisionLatency.valueAtPercentile(99.9)) / 1000 }.max() ?? 1, 1)
        let logMax = log10(maxLatency * 2)
        let logMin = log10(0.5)
        let latencyY: (Double) -> Double = { right.y + right.h - right.h * (log10(max($0, 0.5)) - logMin) / (logMax - logMin) }
        for (index, p) in percentiles.enumerated() {
            let x = right.x + 30 + (right.w - 60) * Double(index) / Double(percentiles.count - 1)
            parts.append("<text x=\"\(x)\" y=\"\(right.y + right.h + 16)\" text-anchor=\"middle\">p\(p == 99.9 ? "99.9" : String(Int(p)))</text>")
        }
        var tick = 1.0
        while tick <= maxLatency * 2 {
            parts.append(
                "<text x=\"\(right.x - 6)\" y=\"\(latencyY(tick) + 4)\" text-anchor=\"end\">\(tick >= 1 ? String(Int(tick)) : String(tick))</text>")
            parts.append("<line x1=\"\(right.x)\" x2=\"\(right.x + right.w)\" y1=\"\(latencyY(tick))\" y2=\"\(latencyY(tick))\" stroke=\"#eee\"/>")
            tick *= 10
        }
        for (index, row) in http.enumerated() {
            let colour = colours[index % colours.count]
            let points = percentiles.enumerated().map { offset, p in
                "\(right.x + 30 + (right.w - 60) * Double(offset) / Double(percentiles.count - 1)),\(latencyY(Double(row.decisionLatency.valueAtPercentile(p)) / 1000))"
            }.joined(separator: " ")
            parts.append("<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>")
            parts.append("<text x=\"\(right.x + 10)\" y=\"\(right.y + 16 + Double(index) * 16)\" fill=\"\(colour)\">\(row.rate)/s offered</text>")
        }
        _ = (width, height)
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }
}
