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
    package var failures: [String] = []
}
