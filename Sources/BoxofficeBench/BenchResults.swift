import BoxofficeHarness
import Histogram

/// What each scenario measured, one row per cell, for the report.
struct DrainRow: Sendable {
    let label: String
    let workers: Int
    let batchSize: Int
    let decided: Int
    let seconds: Double
    let batches: Int
    let batchP50Milliseconds: Double
    let batchP99Milliseconds: Double
    let drained: Bool
    let workerPeakKilobytes: Int
    var allocationsPerSecond: Double { Double(decided) / max(seconds, 0.001) }
    var batchesPerSecond: Double { Double(batches) / max(seconds, 0.001) }
}

/// A holds cell: the drain row, and what the lifecycle did in it.
struct HoldsRow: Sendable {
    let drain: DrainRow
    let confirmed: Int
    let expired: Int
    let released: Int
    let capacity: Int
}

struct HTTPRow: Sendable {
    let rate: Int
    let result: OpenLoad.Result
    /// Intended send → `outcomes.decided_at`, every accepted intent, microseconds.
    let decisionLatency: Histogram<UInt64>
    /// Accepted intents with no outcome when the drain wait ended (should be 0).
    let undecided: Int
}

struct ReferenceRow: Sendable {
    let strategy: ReferenceStrategy
    let clients: Int
    let purchasesPerSecond: Double
}

struct SaturationRow: Sendable {
    let connections: Int
    let health: Double
    let intake: Double
    let failures: Int
}

struct QueueRow: Sendable {
    let length: Int
    let batchP50Milliseconds: Double
    let batchP99Milliseconds: Double
}

/// One trial of the scrape scenario: an intake ceiling and an open-loop run, with or without the scraper.
struct ScrapeTrial: Sendable {
    let scraped: Bool
    /// Closed-loop accepted `POST /events/{id}/intents` per second.
    let intakeCeiling: Double
    let ceilingFailures: Int
    let intakeP50Milliseconds: Double
    let intakeP99Milliseconds: Double
    let accepted: Int
    let offered: Int
    /// Scrape rounds (every endpoint once) during the trial; 0 without the scraper.
    let rounds: Int
}

/// What scraping one endpoint cost the scraper, over every trial with it.
struct ScrapeCost: Sendable {
    let endpoint: String
    var scrapes = 0
    /// Answers other than 200, or none (timeout, connection error).
    var failures = 0
    var firstFailure: String?
    var totalSeconds = 0.0
    var maxSeconds = 0.0
    var meanMilliseconds: Double { totalSeconds / Double(max(scrapes, 1)) * 1000 }

    init(endpoint: String) { self.endpoint = endpoint }

    mutating func record(seconds: Double, failure: String?) {
        scrapes += 1
        totalSeconds += seconds
        maxSeconds = max(maxSeconds, seconds)
        if let failure {
            failures += 1
            if firstFailure == nil { firstFailure = failure }
        }
    }

    mutating func add(_ other: ScrapeCost) {
        scrapes += other.scrapes
        failures += other.failures
        firstFailure = firstFailure ?? other.firstFailure
        totalSeconds += other.totalSeconds
        maxSeconds = max(maxSeconds, other.maxSeconds)
    }
}

/// The scrape scenario: its set-up, every trial in the order run, and what the scrapes cost.
struct ScrapeResults: Sendable {
    let interval: Duration
    let connections: Int
    let rate: Int
    let seconds: Int
    let generator: String
    var trials: [ScrapeTrial] = []
    var costs: [ScrapeCost] = []

    /// Each figure's arms compared: the ceiling (higher is better), intake p50 and p99 (lower is better).
    var comparisons: [ArmComparison] {
        [
            ArmComparison(figure: "intake ceiling", unit: "req/s", trials: trials, \.intakeCeiling),
            ArmComparison(figure: "open-loop intake p50", unit: "ms", trials: trials, \.intakeP50Milliseconds),
            ArmComparison(figure: "open-loop intake p99", unit: "ms", trials: trials, \.intakeP99Milliseconds),
        ]
    }
}

/// One figure measured in both arms, and whether scraping moves it.
///
/// The rule (``rule``): the difference of the two medians is within noise when it is no larger than
/// the larger of the two arms' ranges (max − min over each arm's trials): the same setup, unchanged,
/// already varies that much from trial to trial. Simple and conservative: with few trials it says
/// "within noise" to effects it cannot tell from the spread, never "moves" to noise.
struct ArmComparison: Sendable {
    static let rule =
        "within noise: the difference of the two arms' medians is no larger than the larger arm's min–max range over its trials; otherwise MOVES the figure"

    let figure: String
    let unit: String
    let without: [Double]
    let with: [Double]

    init(figure: String, unit: String, trials: [ScrapeTrial], _ value: KeyPath<ScrapeTrial, Double>) {
        self.figure = figure
        self.unit = unit
        without = trials.filter { !$0.scraped }.map { $0[keyPath: value] }
        with = trials.filter(\.scraped).map { $0[keyPath: value] }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }

    static func range(_ values: [Double]) -> Double { (values.max() ?? 0) - (values.min() ?? 0) }

    var medianWithout: Double { Self.median(without) }
    var medianWith: Double { Self.median(with) }
    var difference: Double { medianWith - medianWithout }
    /// The larger arm's min–max range: what the rule compares the difference with.
    var noise: Double { max(Self.range(without), Self.range(with)) }
    var withinNoise: Bool { abs(difference) <= noise }

    /// "intake ceiling −2.1% (within-arm spread 18%): within noise", percentages of the unscraped median.
    var verdict: String {
        let base = max(abs(medianWithout), .ulpOfOne)
        return String(
            format: "%@ %@%.1f%% (within-arm spread %.0f%%): %@", figure, difference < 0 ? "−" : "+", abs(difference) / base * 100,
            noise / base * 100, withinNoise ? "within noise" : "MOVES the figure")
    }
}

package struct BenchResults: Sendable {
    var drain: [DrainRow] = []
    var holds: [HoldsRow] = []
    var http: [HTTPRow] = []
    /// Closed-loop `GET /health` against intake, per connection count.
    var saturation: [SaturationRow] = []
    var saturationGenerator = ""
    /// Bulk intake: intents per second through `POST /events/{id}/intents/batch`, 1,000 per request.
    var bulkIntentsPerSecond: Double?
    var apiPeakKilobytes: Int?
    /// Peak resident size of the API and of the larger worker in each phase of the HTTP run, kilobytes.
    var peaksByPhase: [(phase: String, api: Int, worker: Int)] = []
    var httpWorkerPeakKilobytes: Int?
    /// Resident memory after the HTTP load: anonymous (heap) and file-backed (code, shared libraries).
    var apiBreakdownKilobytes: (anonymous: Int, file: Int)?
    var workerBreakdownKilobytes: (anonymous: Int, file: Int)?
    var reference: [ReferenceRow] = []
    var queue: [QueueRow] = []
    var scrape: ScrapeResults?
    package var failures: [String] = []
}
