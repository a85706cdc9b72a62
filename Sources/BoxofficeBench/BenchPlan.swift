import BoxofficeCore

/// What to run, parsed and bounded.
package struct BenchPlan: Sendable {
    var scenarios: Set<String>
    var workers: [Int]
    var batchSizes: [Int]
    var intents: Int
    var tickets: Int
    var cellSeconds: Int
    var httpRates: [Int]
    var httpSeconds: Int
    var saturationConnections: [Int]
    var referenceClients: [Int]
    var referenceSeconds: Int
    var queueLengths: [Int]
    /// Trials per arm of the scrape scenario (without scraping, with it).
    var scrapeTrials: Int
    var scrapeInterval: Duration

    /// The command's options as given: lists are comma-separated; values out of range are dropped
    /// (lists) or clamped (numbers).
    package init(
        scenarios: String, workers: String, batchSizes: String, intents: Int, tickets: Int, cellSeconds: Int,
        httpRates: String, httpSeconds: Int, saturationConnections: String, referenceClients: String,
        referenceSeconds: Int, queueLengths: String, scrapeTrials: Int, scrapeIntervalMilliseconds: Int
    ) {
        let numbers: (String) -> [Int] = { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        self.scenarios = Set(scenarios.split(separator: ",").map { String($0) })
        self.workers = numbers(workers).filter { (1...32).contains($0) }
        self.batchSizes = numbers(batchSizes).filter { (1...100_000).contains($0) }
        self.intents = min(max(intents, 100), 5_000_000)
        self.tickets = min(max(tickets, 100), EventLayout.capacityMax)
        self.cellSeconds = min(max(cellSeconds, 1), 600)
        self.httpRates = numbers(httpRates).filter { (1...200_000).contains($0) }
        self.httpSeconds = min(max(httpSeconds, 1), 120)
        self.saturationConnections = numbers(saturationConnections).filter { (1...1_000).contains($0) }
        self.referenceClients = numbers(referenceClients).filter { (1...250).contains($0) }
        self.referenceSeconds = min(max(referenceSeconds, 1), 120)
        self.queueLengths = numbers(queueLengths).filter { (1_000...50_000_000).contains($0) }
        self.scrapeTrials = min(max(scrapeTrials, 1), 50)
        self.scrapeInterval = .milliseconds(min(max(scrapeIntervalMilliseconds, 100), 60_000))
    }

    /// A small, quick run (smoke test): small counts, short cells.
    package mutating func shrink() {
        workers = [1, 2]
        batchSizes = [64, 512]
        intents = 4_000
        tickets = 2_000
        cellSeconds = 10
        httpRates = [200]
        httpSeconds = 2
        saturationConnections = [16]
        referenceClients = [8]
        referenceSeconds = 2
        queueLengths = [2_000, 20_000]
        scrapeTrials = 2
    }
}
