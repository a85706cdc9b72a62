import ArgumentParser
import BoxofficeBench
import Foundation
import Logging

/// `boxoffice bench`: the options and the report files. The plan, the runner and every scenario are
/// the BoxofficeBench target's; the command stays here because parsing and logging set-up belong to
/// the executable (LoggingOptions bootstraps the process-wide logging system once), and the library
/// stays free of ArgumentParser.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Boxoffice against the usual designs, on this machine, and print the table.",
        discussion: """
            Runs against a private PostgreSQL with default durability (fsync and synchronous_commit on), \
            or DATABASE_URL. Every cell gets a fresh database and ends with the invariant audit; a cell \
            with a violation fails the run. Scenarios: drain (one hot general-admission event), \
            seatmap (best available in a section, 1–4 seats), events (50 events at once), http (intake \
            ceiling vs GET /health, open-loop latency), reference (row-lock designs), queue (claim cost \
            vs queue length), scrape (what scraping every /metrics and /dashboard/data costs intake: \
            interleaved trials without and with a scraper, and a verdict against the trials' own spread; \
            not in the default list). Build with -c release for meaningful figures.
            """)

    @Option(help: "Comma-separated scenarios: drain, holds, seatmap, events, http, reference, queue, scrape.") var scenarios =
        "drain,holds,seatmap,events,http,reference,queue"
    @Option(help: "Worker process counts to try.") var workers = "1,2,4"
    @Option(help: "Batch sizes to try.") var batchSizes = "1,64,512,4096"
    @Option(help: "Intents pre-queued per drain cell.") var intents = 200_000
    @Option(help: "Tickets of the hot event.") var tickets = 100_000
    @Option(help: "Time budget per drain cell, in seconds (batch size 1 will not drain 200,000 in it).") var cellSeconds = 20
    @Option(help: "Offered intake rates for the open-loop HTTP run (intents/s).") var httpRates = "1000,2500,5000"
    @Option(help: "Seconds per HTTP rate and per saturation run.") var httpSeconds = 8
    @Option(help: "Connection counts for the closed-loop health/intake runs (with wrk; without it, 64 only).") var saturationConnections = "64,256"
    @Option(help: "Concurrent clients for the reference designs.") var referenceClients = "32,128"
    @Option(help: "Seconds per reference run.") var referenceSeconds = 8
    @Option(help: "Queue lengths for the claim-cost run.") var queueLengths = "10000,1000000,10000000"
    @Option(help: "Scrape scenario: trials per arm (1...50), each an intake ceiling and an open-loop run at the first --http-rates.")
    var scrapeTrials = 5
    @Option(help: "Scrape scenario: milliseconds between two scrapes of every endpoint (100...60000).") var scrapeIntervalMs = 1000
    @Option(help: "Write the Markdown report here (e.g. docs/benchmarks.md).") var report: String?
    @Option(help: "Write the SVG chart here (e.g. docs/benchmarks.svg).") var svg: String?
    @Flag(help: "A small, quick run (smoke test): small counts, short cells.") var quick = false
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        var logger = logging.bootstrap(label: "boxoffice.bench")
        logger.logLevel = max(logging.logLevel, .warning)
        var plan = BenchPlan(
            scenarios: scenarios, workers: workers, batchSizes: batchSizes, intents: intents, tickets: tickets,
            cellSeconds: cellSeconds, httpRates: httpRates, httpSeconds: httpSeconds, saturationConnections: saturationConnections,
            referenceClients: referenceClients, referenceSeconds: referenceSeconds, queueLengths: queueLengths,
            scrapeTrials: scrapeTrials, scrapeIntervalMilliseconds: scrapeIntervalMs)
        if quick { plan.shrink() }
        let runner = try await BenchRunner.start(plan: plan, logger: logger)
        defer { runner.finish() }
        let results = try await runner.runAll()
        // The picture is linked relative to the report when both are written.
        let picture = svg.flatMap { svg in
            report.map { report in
                URL(fileURLWithPath: report).deletingLastPathComponent().path == URL(fileURLWithPath: svg).deletingLastPathComponent().path
                    ? URL(fileURLWithPath: svg).lastPathComponent : svg
            }
        }
        let markdown = results.markdown(plan: plan, environment: runner.environmentLines, command: Self.commandLine(), picture: picture)
        print("\n" + markdown)
        if let report { try markdown.write(toFile: report, atomically: true, encoding: .utf8) }
        if let svg { try results.svg().write(toFile: svg, atomically: true, encoding: .utf8) }
        if !results.failures.isEmpty {
            print("FAILED: \(results.failures.joined(separator: "; "))")
            throw ExitCode(1)
        }
    }

    static func commandLine() -> String {
        (["swift run -c release boxoffice"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
    }
}
