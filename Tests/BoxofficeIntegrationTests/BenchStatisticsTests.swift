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
