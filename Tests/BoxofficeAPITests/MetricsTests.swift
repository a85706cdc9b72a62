import BoxofficeMetrics
import Testing

/// The exposition after some activity: every metric Boxoffice defines is there, with its Prometheus
/// type, conventional name and bounded labels. No database; no process-wide bootstrap.
@Suite("Metrics exposition")
struct MetricsTests {
    func exposition(_ metrics: BoxofficeMetrics) async -> String {
        String(decoding: await metrics.exposition(), as: UTF8.self)
    }

    @Test("Intake and worker metrics appear with their types, units and labels")
    func namesAndTypes() async {
        let metrics = BoxofficeMetrics()
        let intake = IntakeMetrics(metrics)
        let worker = WorkerMetrics(metrics)
        intake.answered(.accepted, waited: .milliseconds(3))
        intake.answered(.accepted, waited: .milliseconds(7))
        intake.answered(.overloaded)
        intake.committedGroup(size: 2)
        worker.setRunning(true)
        worker.settled(
            intents: 3, confirmed: 2, rejectedByReason: ["sold_out": 1], ticketsSold: 4, decisionSeconds: [0.01, 0.02, 0.2],
            duration: .milliseconds(4))
        worker.failed()
        let text = await exposition(metrics)
        for (name, type) in [
            ("boxoffice_intake_requests_total", "counter"), ("boxoffice_intake_group_size", "histogram"),
            ("boxoffice_intake_commit_duration_seconds", "histogram"), ("boxoffice_worker_claims_total", "counter"),
            ("boxoffice_worker_claim_failures_total", "counter"), ("boxoffice_worker_claim_duration_seconds", "histogram"),
            ("boxoffice_worker_claim_intents", "histogram"), ("boxoffice_decisions_total", "counter"),
            ("boxoffice_tickets_sold_total", "counter"), ("boxoffice_decision_latency_seconds", "histogram"),
            ("boxoffice_worker_last_claim_timestamp_seconds", "gauge"), ("boxoffice_worker_running", "gauge"),
        ] {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name) should be a \(type):\n\(text)")
        }
        #expect(text.contains(#"boxoffice_intake_requests_total{result="accepted"} 2"#))
        #expect(text.contains(#"boxoffice_intake_requests_total{result="overloaded"} 1"#))
        #expect(text.contains("boxoffice_intake_commit_duration_seconds_count 2"))
        #expect(text.contains("boxoffice_tickets_sold_total 4"))
        #expect(text.contains(#"boxoffice_decisions_total{status="confirmed",reason=""} 2"#))
        #expect(text.contains(#"boxoffice_decisions_total{status="rejected",reason="sold_out"} 1"#))
        #expect(text.contains("boxoffice_decision_latency_seconds_count 3"))
        #expect(text.contains(#"boxoffice_decision_latency_seconds_bucket{le="0.025"} 2"#))
        #expect(
            text.contains(#"boxoffice_worker_claim_intents_bucket{le="4.0"} 1"#) || text.contains(#"boxoffice_worker_claim_intents_bucket{le="4"} 1"#)
        )
        #expect(text.contains("boxoffice_worker_claims_total 1"))
        #expect(text.contains("boxoffice_worker_running 1"))
        #expect(!text.contains("_total_total"))
        // promtool check metrics wants a HELP line per family.
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.count
        #expect(families > 0 && text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.count == families)
        #expect(text.contains("# HELP boxoffice_tickets_sold_total Tickets"))
    }

    @Test("Hummingbird's HTTP metrics are renamed to Prometheus conventions with route-template labels")
    func httpNames() async {
        let metrics = BoxofficeMetrics()
        let counter = metrics.factory.makeCounter(
            label: "hb.requests",
            dimensions: [("http.route", "/events/{event}"), ("http.request.method", "GET"), ("http.response.status_code", "200")])
        counter.increment(by: 1)
        let timer = metrics.factory.makeTimer(
            label: "http.server.request.duration",
            dimensions: [("http.route", "/events/{event}"), ("http.request.method", "GET"), ("http.response.status_code", "200")])
        timer.recordNanoseconds(2_000_000)
        let text = await exposition(metrics)
        #expect(text.contains("# TYPE http_server_requests_total counter"), "\(text)")
        #expect(text.contains(#"http_server_requests_total{route="/events/{event}",method="GET",status="200"} 1"#), "\(text)")
        #expect(text.contains("# TYPE http_server_request_duration_seconds histogram"), "\(text)")
    }
}
