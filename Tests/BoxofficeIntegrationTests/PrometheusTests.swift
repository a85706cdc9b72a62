import AsyncHTTPClient
import BoxofficeHarness
import BoxofficeMetrics
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import NIOCore
import Testing

extension IntegrationTests {
    @Suite("Metrics scraped by Prometheus")
    struct PrometheusTests {
        @Test(
            "A real Prometheus scrapes the API and a worker during a sale: tickets sold equal the inventory's, claims are timed, the queue depth returns to 0",
            .enabled(if: PrometheusServer.executable != nil, "needs Debian's prometheus (`.ci/run` installs it)"))
        func scrapedDuringASale() async throws {
            try await withLiveAPI(configure: { $0.metrics = .processWide }) { api in
                let metricsPort = try Loopback.freePort()
                let apiTarget = String(api.baseURL.dropFirst("http://".count))
                let prometheus = try PrometheusServer(targets: [("boxoffice-api", apiTarget), ("boxoffice-worker", "127.0.0.1:\(metricsPort)")])
                defer { prometheus.stop() }
                let capacity = 300
                let event = try await api.createGeneralAdmission(capacity)

                // Queued before any worker runs: a scrape sees the queue depth above 0.
                for customer in 0..<20 {
                    let reply = try await api.post("/events/\(event)/intents", #"{"customer": "early-\#(customer)", "quantity": 1}"#)
                    #expect(reply.status == 202)
                }
                try await waitUntil("Prometheus to see the queue depth", every: .milliseconds(200), timeout: .seconds(30)) {
                    let depth = try await prometheus.query("boxoffice_queue_depth{event=\"\(event)\"}", http: api.http)
                    return depth.first.map(\.value) == 20 ? nil : "boxoffice_queue_depth: \(depth)"
                }

                let workers = workerProcesses(api.database, batchSize: 32, extra: ["--metrics-port", "\(metricsPort)"])
                try workers.spawn(1)
                var load = SaleLoad.Configuration(baseURL: api.baseURL, eventID: event, intents: 600)
                load.clients = 16
                load.quantities = 1...2
                let result = await SaleLoad(load).run(client: api.http)
                #expect(result.undecided == 0 && result.transportErrors == 0)

                var sold = 0
                for try await value in try await api.store.client.query("SELECT sold FROM inventory WHERE event_id = \(event)").decode(Int.self) {
                    sold = value
                }
                #expect(sold == capacity)

                // The last scrapes: the worker's counter equals the inventory's, the queue is empty.
                let expectations: [(String, (Double) -> Bool, String)] = [
                    ("sum(boxoffice_tickets_sold_total)", { $0 == Double(sold) }, "== \(sold)"),
                    ("sum(boxoffice_decisions_total)", { $0 == Double(620) }, "== 620 decided"),
                    (#"sum(boxoffice_intake_requests_total{result="accepted"})"#, { $0 == Double(620) }, "== 620 accepted"),
                    ("sum(boxoffice_worker_claim_duration_seconds_count)", { $0 > 0 }, "> 0 claims timed"),
                    ("sum(boxoffice_decision_latency_seconds_count)", { $0 == Double(620) }, "== 620 latencies"),
                    ("max(boxoffice_queue_depth)", { $0 == 0 }, "== 0"),
                    (#"sum(up{job=~"boxoffice-api|boxoffice-worker"})"#, { $0 == 2 }, "== 2 targets up"),
                    ("boxoffice_worker_running", { $0 == 1 }, "== 1"),
                    (#"sum(http_server_requests_total{route="/events/{event}/intents",method="POST",status="202"})"#, { $0 >= 620 }, ">= 620"),
                    // The pools: the worker's two connections (batch, LISTEN), LISTEN held; every lease timed.
                    (#"max(boxoffice_db_connections_max{pool="worker"})"#, { $0 == 2 }, "== 2"),
                    (#"max(boxoffice_db_connections_in_use{pool="worker"})"#, { $0 >= 1 && $0 <= 2 }, "1…2 (LISTEN held)"),
                    (#"sum(boxoffice_db_lease_wait_seconds_count{pool="worker"})"#, { $0 > 0 }, "> 0"),
                    (#"sum(boxoffice_db_lease_wait_seconds_count{pool="api"})"#, { $0 > 0 }, "> 0"),
                    (#"max(boxoffice_db_connections_max{pool="api"})"#, { $0 == 32 }, "== 32 (the tests' pool)"),
                ]
                try await waitUntil("Prometheus to scrape the sale's end", every: .milliseconds(250), timeout: .seconds(30)) {
                    var pending: [String] = []
                    for (query, holds, wanted) in expectations {
                        let series = try await prometheus.query(query, http: api.http)
                        if let value = series.first?.value, holds(value) { continue }
                        pending.append("\(query) = \(series.map(\.value)) (want \(wanted))")
                    }
                    return pending.isEmpty ? nil : pending.joined(separator: "; ")
                }

                // promtool lints what each endpoint serves.
                for url in [api.baseURL + "/metrics", "http://127.0.0.1:\(metricsPort)/metrics"] {
                    let response = try await api.http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
                    #expect(response.status.code == 200)
                    #expect(response.headers["Content-Type"].first?.hasPrefix("text/plain; version=0.0.4") == true)
                    let body = String(buffer: try await response.body.collect(upTo: 1 << 22))
                    let complaint = try PrometheusServer.check(metrics: body)
                    #expect(complaint == nil, "promtool check metrics on \(url): \(complaint ?? "")\n\(body.prefix(3_000))")
                }
                let codes = await workers.terminateAll()
                #expect(codes == [0], "the worker must exit 0 on SIGTERM: \(codes)\n\(workerLogTail())")
            }
        }
    }
}
