/// SplitMix64 (Steele, Lea & Flood): a tiny seeded generator that gives the same sequence on every
/// platform and toolchain. The one seeded generator of the project: the sale generator (reproducible
/// buyers), the fault tests and the allocator's property tests (a failing case names its seed).
///
/// A `RandomNumberGenerator`, but code that must replay a recorded seed draws through ``int(_:)`` and
/// friends: the standard library's `random(in:using:)` algorithms are not promised to stay the same.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An integer in `range` (the modulo bias is irrelevant for generating cases and buyers).
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        return range.lowerBound + Int(next() % span)
    }

    /// True with probability `percent`/100.
    public mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }

    public mutating func element<T>(_ array: [T]) -> T { array[int(0...(array.count - 1))] }

    /// Fisher–Yates.
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            array.swapAt(i, int(0...i))
        }
    }
}
