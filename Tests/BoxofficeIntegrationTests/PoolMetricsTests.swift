import BoxofficeHarness
import BoxofficeMetrics
import BoxofficeStore
import Foundation
import Testing

extension IntegrationTests {
    /// The pool metrics count what the Store's pool really does: a pool of two real connections held by
    /// LISTEN, a third statement queued behind them, one abandoned and one granted once a connection
    /// came back.
    @Suite("Database pool metrics")
    struct PoolMetricsTests {
        /// The sample of `series` (name with labels, as exposed) in `metrics`' exposition, nil when absent.
        static func sample(_ series: String, in metrics: BoxofficeMetrics) async -> Double? {
            exposedSample(series, in: String(decoding: await metrics.exposition(), as: UTF8.self))
        }

        /// Waits until every series in `wanted` has its value.
        static func expect(_ wanted: [(String, Double)], in metrics: BoxofficeMetrics, _ what: String) async throws {
            try await waitUntil(what, every: .milliseconds(20), timeout: .seconds(20)) {
                var off: [String] = []
                for (series, value) in wanted {
                    let seen = await Self.sample(series, in: metrics)
                    if seen != value { off.append("\(series) = \(seen.map { "\($0)" } ?? "absent"), want \(value)") }
                }
                return off.isEmpty ? nil : off.joined(separator: "; ")
            }
        }

        @Test("In use, waiting, abandoned and granted leases of a two-connection pool, each seen in the exposition")
        func leasesAreCounted() async throws {
            var database = try await TestCluster.freshDatabase()
            database.connectionsMax = 2
            let metrics = BoxofficeMetrics()
            let observer = DatabasePoolMetrics(metrics, pool: .api, connectionsMax: 2)
            let inUse = #"boxoffice_db_connections_in_use{pool="api"}"#
            let waiting = #"boxoffice_db_lease_waiting{pool="api"}"#
            @Sendable func expect(_ wanted: [(String, Double)], _ what: String) async throws {
                try await Self.expect(wanted, in: metrics, what)
            }
            try await withStore(database, logger: testLogger, leaseObserver: observer) { store in
                // checkReachable leased and returned one connection.
                try await expect(
                    [
                        (#"boxoffice_db_connections_max{pool="api"}"#, 2), (inUse, 0), (waiting, 0),
                        (#"boxoffice_db_lease_wait_seconds_count{pool="api"}"#, 1),
                    ],
                    "the idle pool")

                let listeners = (0..<2).map { index in
                    Task { try await store.listen(on: "pool_metrics_\(index)") { _ in } }
                }
                try await expect([(inUse, 2), (waiting, 0)], "both connections held by LISTEN")

                // A third statement waits; cancelled (a request's deadline), it is an abandoned lease.
                let abandoned = Task { try await store.eventExists(1) }
                try await expect([(inUse, 2), (waiting, 1)], "a third lease waiting")
                try await Task.sleep(for: .milliseconds(300))
                abandoned.cancel()
                #expect((try? await abandoned.value) == nil, "a cancelled wait for a connection must fail")
                try await expect(
                    [(inUse, 2), (waiting, 0), (#"boxoffice_db_lease_failures_total{pool="api"}"#, 1)], "the abandoned lease counted")

                // A fourth waits until a LISTEN gives its connection back, then runs.
                let granted = Task { try await store.eventExists(1) }
                try await expect([(waiting, 1)], "a fourth lease waiting")
                try await Task.sleep(for: .milliseconds(300))
                listeners[0].cancel()
                #expect(try await granted.value == false)
                listeners[1].cancel()
                for listener in listeners { _ = await listener.result }
                try await expect(
                    [(inUse, 0), (waiting, 0), (#"boxoffice_db_lease_failures_total{pool="api"}"#, 1)], "every connection back")

                // 5 waits recorded: the reachability check, 2 LISTENs, the abandoned and the granted one; the
                // last two waited at least 300 ms each, so at most 3 fall in the 100 ms bucket.
                let count = await Self.sample(#"boxoffice_db_lease_wait_seconds_count{pool="api"}"#, in: metrics)
                let sum = await Self.sample(#"boxoffice_db_lease_wait_seconds_sum{pool="api"}"#, in: metrics) ?? 0
                let fast = await Self.sample(#"boxoffice_db_lease_wait_seconds_bucket{pool="api",le="0.1"}"#, in: metrics) ?? .infinity
                #expect(count == 5)
                #expect(sum >= 0.6, "two waits of ≥ 300 ms each: sum \(sum)")
                #expect(fast <= 3, "the two long waits must be above 100 ms: \(fast) at or below it")
            }
        }
    }
}
