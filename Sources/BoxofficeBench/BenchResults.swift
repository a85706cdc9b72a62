import BoxofficeHarness
import Foundation
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
/// The rule (``rule``): a Mann–Whitney U test of the two arms' trials, two-sided. Scraping *moves* a
/// figure when p < 0.05: the trials with scraping rank above (or below) those without more often than
/// a coin would put them there. No assumption about the shape of the trials' spread (latency tails are
/// anything but normal); exact (every split of the trials enumerated) up to 200,000 splits (10 trials
/// per arm), normal approximation with tie correction beyond. With few trials it cannot see small
/// effects: the medians and each arm's min–max range are printed beside it.
package struct ArmComparison: Sendable {
    static let significance = 0.05
    static let rule =
        "MOVES the figure when a two-sided Mann–Whitney U test of the trials with against those without scraping gives p < 0.05; within noise otherwise"

    let figure: String
    let unit: String
    let without: [Double]
    let with: [Double]
    /// The test's p, computed once (the exact path enumerates up to 200,000 splits).
    let pValue: Double

    init(figure: String, unit: String, trials: [ScrapeTrial], _ value: KeyPath<ScrapeTrial, Double>) {
        self.figure = figure
        self.unit = unit
        without = trials.filter { !$0.scraped }.map { $0[keyPath: value] }
        with = trials.filter(\.scraped).map { $0[keyPath: value] }
        pValue = Self.mannWhitneyP(without, with)
    }

    /// True when even the most lopsided outcome could not reach significance: with 3 trials per arm
    /// or fewer the smallest two-sided p is 2 / C(2n, n) ≥ 0.1, so no verdict can say "moves".
    var tooFewTrials: Bool {
        without.isEmpty || with.isEmpty || 2 / Double(Self.binomial(without.count + with.count, without.count)) >= Self.significance
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
    }

    /// "6117.2 (5149.5–6970.9)": an arm's median and its min–max.
    static func summary(_ values: [Double]) -> String {
        String(format: "%.1f (%.1f–%.1f)", median(values), values.min() ?? 0, values.max() ?? 0)
    }

    static func range(_ values: [Double]) -> Double { (values.max() ?? 0) - (values.min() ?? 0) }

    var medianWithout: Double { Self.median(without) }
    var medianWith: Double { Self.median(with) }
    var difference: Double { medianWith - medianWithout }
    /// The larger arm's min–max range: what the rule compares the difference with.
    var noise: Double { max(Self.range(without), Self.range(with)) }
    var withinNoise: Bool { pValue >= Self.significance }

    /// "intake ceiling −2.1% (within-arm spread 18%, p = 0.38): within noise", percentages of the unscraped median.
    var verdict: String {
        let base = max(abs(medianWithout), .ulpOfOne)
        return String(
            format: "%@ %@%.1f%% (within-arm spread %.0f%%, Mann–Whitney p = %.2f): %@", figure, difference < 0 ? "−" : "+",
            abs(difference) / base * 100, noise / base * 100, pValue,
            tooFewTrials ? "too few trials to tell (at least 4 per arm)" : withinNoise ? "within noise" : "MOVES the figure")
    }

    /// U of `a` over `b`: pairs where a's value is above b's, ties counting half.
    static func u(_ a: [Double], over b: [Double]) -> Double {
        var u = 0.0
        for x in a { for y in b { u += x > y ? 1 : x == y ? 0.5 : 0 } }
        return u
    }

    /// Two-sided p of the Mann–Whitney U test: how often a split of all trials into arms of these sizes,
    /// chosen at random, puts U at least as far from its middle as the split measured. 1 for an empty arm.
    package static func mannWhitneyP(_ a: [Double], _ b: [Double]) -> Double {
        guard !a.isEmpty, !b.isEmpty else { return 1 }
        let middle = Double(a.count * b.count) / 2
        let observed = abs(u(a, over: b) - middle)
        let all = a + b
        if binomial(all.count, a.count) <= 200_000 {
            var extreme = 0
            var splits = 0
            var chosen: [Int] = []
            func visit(from start: Int) {
                if chosen.count == a.count {
                    let set = Set(chosen)
                    let left = chosen.map { all[$0] }
                    let right = all.indices.filter { !set.contains($0) }.map { all[$0] }
                    splits += 1
                    if abs(u(left, over: right) - middle) >= observed - 1e-9 { extreme += 1 }
                    return
                }
                guard start < all.count else { return }
                for index in start..<all.count where all.count - index >= a.count - chosen.count {
                    chosen.append(index)
                    visit(from: index + 1)
                    chosen.removeLast()
                }
            }
            visit(from: 0)
            return Double(extreme) / Double(max(splits, 1))
        }
        // Normal approximation: ranks' ties shrink the variance; 0.5 corrects for continuity.
        let n1 = Double(a.count)
        let n2 = Double(b.count)
        let n = n1 + n2
        var ties = 0.0
        for group in Dictionary(grouping: all, by: { $0 }).values where group.count > 1 {
            let t = Double(group.count)
            ties += t * t * t - t
        }
        let variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
        guard variance > 0 else { return 1 }
        let z = max(observed - 0.5, 0) / variance.squareRoot()
        return min(1, erfc(z / 2.0.squareRoot()))
    }

    static func binomial(_ n: Int, _ k: Int) -> Int {
        var result = 1
        for i in 0..<min(k, n - k) {
            result = result * (n - i) / (i + 1)
            if result > 1_000_000_000 { return result }
        }
        return result
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
