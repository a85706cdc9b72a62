import BoxofficeMetrics
import BoxofficePool
import Testing

@Suite("Worker pool: restart back-off and the give-up rule")
struct RestartPolicyTests {
    @Test("The back-off doubles from the minimum to the cap")
    func doubling() {
        var policy = RestartPolicy()
        policy.backoffMin = .milliseconds(100)
        policy.backoffMax = .milliseconds(1_000)
        #expect((1...6).map(policy.delay) == [100, 200, 400, 800, 1_000, 1_000].map { Duration.milliseconds($0) })
        #expect(policy.delay(10_000) == .milliseconds(1_000), "no overflow, however many failures")
    }

    @Test("A healthy period resets the back-off; more than failuresMax within the window gives up")
    func resetAndGiveUp() {
        var policy = RestartPolicy()
        policy.backoffMin = .milliseconds(100)
        policy.backoffMax = .seconds(10)
        policy.backoffReset = .seconds(30)
        policy.failuresMax = 3
        policy.window = .seconds(60)
        let start = ContinuousClock.now
        #expect(policy.failed(at: start) == .milliseconds(100))
        #expect(policy.failed(at: start + .seconds(1)) == .milliseconds(200))
        // 30 s without a failure: the back-off starts again from the minimum, but the window still holds 0 s and 1 s.
        #expect(policy.failed(at: start + .seconds(31)) == .milliseconds(100))
        // The 4th failure within 60 s (0, 1, 31, 32) is more than 3: give up.
        #expect(policy.failed(at: start + .seconds(32)) == nil)
    }

    @Test("Failures spread wider than the window never give up")
    func spreadOut() {
        var policy = RestartPolicy()
        policy.failuresMax = 2
        policy.window = .seconds(10)
        let start = ContinuousClock.now
        for minute in 0..<20 { #expect(policy.failed(at: start + .seconds(6 * minute)) != nil) }
    }
}

@Suite("Worker pool: one exposition from several processes")
struct MetricsMergeTests {
    @Test("Each family once, every part's samples under it, the part's label added to each sample")
    func merge() {
        let worker = """
            # HELP boxoffice_worker_claims_total Claims.
            # TYPE boxoffice_worker_claims_total counter
            boxoffice_worker_claims_total 3
            # HELP boxoffice_decisions_total Decisions.
            # TYPE boxoffice_decisions_total counter
            boxoffice_decisions_total{status="confirmed",reason=""} 5
            # TYPE boxoffice_worker_claim_intents histogram
            boxoffice_worker_claim_intents_bucket{le="1"} 0
            boxoffice_worker_claim_intents_sum 7
            boxoffice_worker_claim_intents_count 3

            """
        let other = worker.replacingOccurrences(of: " 3\n", with: " 4\n")
        let own = "# HELP boxoffice_pool_workers_alive Alive.\n# TYPE boxoffice_pool_workers_alive gauge\nboxoffice_pool_workers_alive 2\n"
        let merged = PrometheusText.merge([(("worker", "0"), worker), (("worker", "1"), other), (nil, own)])
        #expect(
            merged == """
                # HELP boxoffice_worker_claims_total Claims.
                # TYPE boxoffice_worker_claims_total counter
                boxoffice_worker_claims_total{worker="0"} 3
                boxoffice_worker_claims_total{worker="1"} 4
                # HELP boxoffice_decisions_total Decisions.
                # TYPE boxoffice_decisions_total counter
                boxoffice_decisions_total{worker="0",status="confirmed",reason=""} 5
                boxoffice_decisions_total{worker="1",status="confirmed",reason=""} 5
                # TYPE boxoffice_worker_claim_intents histogram
                boxoffice_worker_claim_intents_bucket{worker="0",le="1"} 0
                boxoffice_worker_claim_intents_sum{worker="0"} 7
                boxoffice_worker_claim_intents_count{worker="0"} 3
                boxoffice_worker_claim_intents_bucket{worker="1",le="1"} 0
                boxoffice_worker_claim_intents_sum{worker="1"} 7
                boxoffice_worker_claim_intents_count{worker="1"} 4
                # HELP boxoffice_pool_workers_alive Alive.
                # TYPE boxoffice_pool_workers_alive gauge
                boxoffice_pool_workers_alive 2

                """)
    }
}
