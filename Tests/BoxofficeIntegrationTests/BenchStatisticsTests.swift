import BoxofficeBench
import Testing

/// The scrape scenario's verdict rests on this test of two arms of trials: checked against values
/// worked out by hand, on both of its paths (exact enumeration and normal approximation).
@Suite("Bench statistics: the Mann–Whitney U test")
struct BenchStatisticsTests {
    @Test("Exact: fully separated arms of 4 give p = 2/70; identical arms p = 1; one swapped pair p = 4/70")
    func exact() {
        #expect(abs(ArmComparison.mannWhitneyP([1, 2, 3, 4], [5, 6, 7, 8]) - 2.0 / 70) < 1e-9)
        #expect(abs(ArmComparison.mannWhitneyP([5, 6, 7, 8], [1, 2, 3, 4]) - 2.0 / 70) < 1e-9)
        #expect(ArmComparison.mannWhitneyP([3, 3, 3], [3, 3, 3]) == 1)
        // U = 15 of 16 (or 1): the two most extreme splits on each side, 4 of 70.
        #expect(abs(ArmComparison.mannWhitneyP([1, 2, 3, 5], [4, 6, 7, 8]) - 4.0 / 70) < 1e-9)
        #expect(ArmComparison.mannWhitneyP([], [1]) == 1)
    }

    @Test("The published scrape run (docs/metrics.md): its trials give the p-values the docs print")
    func publishedRun() {
        // 8 trials per arm, without and with scraping, in the order run (A, then B).
        let ceiling = ([6068.0, 5379, 5149, 5705, 6233, 6606, 6166, 6971], [8649.0, 6583, 5345, 5494, 7745, 7621, 6153, 6160])
        let p50 = ([8.7, 6.9, 10.0, 9.3, 4.6, 5.3, 5.3, 6.8], [3.7, 14.5, 8.3, 11.3, 5.1, 5.8, 8.7, 4.7])
        let p99 = ([35.5, 35.9, 87.6, 62.2, 76.6, 21.6, 17.1, 21.4], [12.2, 58.6, 32.0, 34.6, 39.0, 28.7, 39.8, 16.1])
        // Exact: 4,920, 12,558 and 5,686 of the 12,870 splits are at least as extreme.
        #expect(abs(ArmComparison.mannWhitneyP(ceiling.0, ceiling.1) - 4_920.0 / 12_870) < 1e-9)
        #expect(abs(ArmComparison.mannWhitneyP(p50.0, p50.1) - 12_558.0 / 12_870) < 1e-9)
        #expect(abs(ArmComparison.mannWhitneyP(p99.0, p99.1) - 5_686.0 / 12_870) < 1e-9)
    }

    @Test("Normal approximation past 10 trials per arm: separated arms of 12 are significant, interleaved ones are not")
    func approximate() {
        let low = (0..<12).map(Double.init)
        let high = (12..<24).map(Double.init)
        let separated = ArmComparison.mannWhitneyP(low, high)
        // U = 0, mean 72, sd √300 = 17.32: z = 71.5 / 17.32 = 4.13, p ≈ 3.7e-5.
        #expect(separated > 2e-5 && separated < 6e-5, "\(separated)")
        let evens = stride(from: 0, to: 24, by: 2).map(Double.init)
        let odds = stride(from: 1, to: 24, by: 2).map(Double.init)
        #expect(ArmComparison.mannWhitneyP(evens, odds) > 0.5)
    }
}
