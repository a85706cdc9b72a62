import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import NIOCore
import Testing

extension IntegrationTests {
    @Suite("Live sale dashboard")
    struct DashboardTests {
        @Test(
            "The dashboard and its data need the admin token: no credentials get a Basic challenge, a wrong or producer password is challenged again, the admin token as the Basic password or as a bearer token is served; the page carries a strict CSP; --no-auth leaves it open"
        )
        func access() async throws {
            let producer = AccessControl.randomToken()
            let admin = AccessControl.randomToken()
            try await withLiveAPI(configure: { $0.access = .tokens(producer: producer, admin: admin) }) { api in
                func basic(_ user: String, _ password: String) -> (String, String) {
                    ("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
                }
                for path in ["/dashboard", "/dashboard/data"] {
                    for headers in [[], [basic("admin", "wrong")], [basic("admin", producer)], [basic("", "")], [("Authorization", "Basic %%%")]] {
                        let reply = try await api.send(.GET, path, headers: headers)
                        #expect(reply.status == 401, "\(path) with \(headers)")
                        #expect(reply.error == "unauthorized")
                        let challenge = reply.headers.first { $0.0.lowercased() == "www-authenticate" }?.1
                        #expect(challenge?.hasPrefix("Basic realm=") == true, "\(path) must ask a browser for credentials: \(challenge ?? "none")")
                    }
                    // The producer's bearer token does not administer.
                    #expect(try await api.send(.GET, path, headers: [("Authorization", "Bearer \(producer)")]).status == 403)
                }
                for headers in [[basic("admin", admin)], [basic("anyone", admin)], [("Authorization", "Bearer \(admin)")]] {
                    var request = HTTPClientRequest(url: api.baseURL + "/dashboard")
                    for (name, value) in headers { request.headers.add(name: name, value: value) }
                    let response = try await api.http.execute(request, timeout: .seconds(10))
                    #expect(response.status.code == 200)
                    #expect(response.headers["Content-Type"].first == "text/html; charset=utf-8")
                    let policy = try #require(response.headers["Content-Security-Policy"].first)
                    let page = String(buffer: try await response.body.collect(upTo: 1 << 20))
                    // One nonce per response, in the policy and on the page's one script and one style.
                    let nonce = try #require(policy.firstMatch(of: /script-src 'nonce-([A-Za-z0-9+\/=]{24})'/)?.1)
                    #expect(policy.hasPrefix("default-src 'none'; ") && policy.contains("style-src 'nonce-\(nonce)'"), "\(policy)")
                    #expect(policy.contains("connect-src 'self'") && policy.contains("frame-ancestors 'none'"))
                    #expect(page.ranges(of: "nonce=\"\(nonce)\"").count == 2 && !page.contains("__CSP_NONCE__"))
                    // Self-contained: nothing fetched from elsewhere.
                    #expect(!page.contains("http://") && !page.contains("https://") && !page.contains("src="))

                    let data = try await api.sendJSON(.GET, "/dashboard/data", headers: headers)
                    #expect(data.status == 200)
                    #expect(data.object["workers_alive"] as? Int == 0 && (data.object["events"] as? [Any])?.isEmpty == true)
                }
                // A hundred pages polling at once share one sample (one read of the database).
                let (status, taken) = try await withThrowingTaskGroup(of: (Int, Double?).self) { group in
                    for _ in 0..<100 {
                        group.addTask {
                            let reply = try await api.sendJSON(.GET, "/dashboard/data", headers: [basic("admin", admin)])
                            return (reply.status, reply.object["sampled_at"] as? Double)
                        }
                    }
                    return try await group.reduce(into: (Set<Int>(), Set<Double?>())) {
                        $0.0.insert($1.0)
                        $0.1.insert($1.1)
                    }
                }
                #expect(status == [200])
                // At most two samples if the second turned while the hundred were answered.
                #expect((1...2).contains(taken.count) && !taken.contains(nil), "samples: \(taken)")

                // The route table's 405 covers the dashboard like every route.
                let post = try await api.send(.POST, "/dashboard/data", body: "{}", headers: [basic("admin", admin)])
                #expect(post.status == 405 && post.headers.contains { $0.0.lowercased() == "allow" && $0.1 == "GET, HEAD" })
            }
            try await withLiveAPI { api in
                let page = try await api.send(.GET, "/dashboard")
                let data = try await api.send(.GET, "/dashboard/data")
                #expect(page.status == 200 && data.status == 200, "--no-auth: \(page.status), \(data.status)")
            }
        }

        @Test(
            "Headless Chromium shows a real sale live (API and workers as processes): the numbers on the page move, then finish equal to GET /events/{id}; workers alive go from 2 to 0 as they exit; a screenshot is saved",
            .enabled(if: HeadlessChromium.executable != nil, "needs Debian's chromium (`.ci/run` installs it)"))
        func liveInChromium() async throws {
            try await withLiveAPI { base in
                let producer = AccessControl.randomToken()
                let admin = AccessControl.randomToken()
                let server = try APIProcessTests.Server(base, producer: producer, admin: admin)
                try await server.start()
                let workers = workerProcesses(base.database, batchSize: 64)
                try workers.spawn(2)

                // An earlier sale, sold out: listed below the live one.
                let earlier = try #require(Int64(try await base.post("/events", #"{"name": "Opening night", "capacity": 400}"#)["id"] ?? ""))
                var first = SaleLoad.Configuration(baseURL: server.api.baseURL, eventID: earlier, intents: 500)
                first.token = producer
                first.clients = 16
                first.quantities = 1...2
                let early = await SaleLoad(first).run(client: base.http)
                #expect(early.undecided == 0 && early.transportErrors == 0 && early.ticketsConfirmed == 400)
                // A sale with holds: three buyers hold 2 tickets each, none pays yet.
                let matinee = try #require(
                    Int64(try await base.post("/events", #"{"name": "Matinee", "capacity": 10, "hold_seconds": 600}"#)["id"] ?? ""))
                for buyer in 1...3 {
                    _ = try await base.post("/events/\(matinee)/intents", #"{"customer": "m-\#(buyer)", "quantity": 2}"#)
                }
                let event = try #require(Int64(try await base.post("/events", #"{"name": "Encore", "capacity": 100000}"#)["id"] ?? ""))

                let browser = try HeadlessChromium()
                defer { browser.stop() }
                let port = try #require(URL(string: server.api.baseURL)?.port)
                // Basic credentials in the URL: Chromium answers the page's challenge with them and sends
                // them again on the page's polls of /dashboard/data (same origin, same realm).
                try await browser.open("http://admin:\(admin)@127.0.0.1:\(port)/dashboard", width: 1280, height: 280)
                try await waitUntil("the page to show the three events and both workers", every: .milliseconds(200), timeout: .seconds(30)) {
                    let page = try await Page.read(browser)
                    return page.row(event) != nil && page.row(earlier) != nil && page.row(matinee) != nil && page.workers == "2"
                        && page.status == "live" ? nil : "\(page)"
                }

                var load = OpenLoad.Configuration(baseURL: server.api.baseURL, eventID: event, rate: 300, duration: .seconds(8))
                load.token = producer
                let sale = Task { try await OpenLoad(load).run() }
                var soldSeen: [Int] = []
                var rates: [String] = []
                var decisions: [String] = []
                var latencies: [String] = []
                var screenshot: Data?
                let start = ContinuousClock.now
                while ContinuousClock.now - start < .seconds(8) {
                    try await Task.sleep(for: .milliseconds(250))
                    let page = try await Page.read(browser)
                    guard let row = page.row(event) else { continue }
                    if let sold = row.number("sold") { soldSeen.append(sold) }
                    rates.append(row["rate"] ?? "")
                    decisions.append(row["decisions"] ?? "")
                    latencies.append(row["p99"] ?? "")
                    if screenshot == nil, ContinuousClock.now - start > .seconds(5) { screenshot = try await browser.screenshot() }
                }
                let result = try await sale.value
                #expect(result.accepted == result.offered && result.failed == 0 && result.notSent == 0)

                // The page moved: several different sold figures, never going back.
                let distinct = Set(soldSeen)
                #expect(distinct.count >= 4, "the sold figure must move while the sale runs: \(soldSeen)")
                #expect(soldSeen == soldSeen.sorted(), "sold never goes back: \(soldSeen)")
                let positive = { (text: String) in Int(text.replacingOccurrences(of: ",", with: "")).map { $0 > 0 } ?? false }
                #expect(rates.contains(where: positive), "tickets/s: \(rates)")
                #expect(decisions.contains(where: positive), "decisions/s: \(decisions)")
                #expect(latencies.contains { $0.hasSuffix(" ms") || $0.hasSuffix(" s") }, "latency p99: \(latencies)")

                // And finishes equal to the API's figures, for all three events, holds included.
                try await waitUntil("the page to finish equal to GET /events/{id}", every: .milliseconds(250), timeout: .seconds(60)) {
                    let page = try await Page.read(browser)
                    var differences: [String] = []
                    for id in [earlier, event, matinee] {
                        let reply = try await server.api.get("/events/\(id)")
                        let api = ["sold", "held", "available", "pending"].map { reply[$0].flatMap { Int($0) } }
                        let shown = ["sold", "held", "available", "pending"].map { page.row(id)?.number($0) }
                        if api != shown || reply["pending"] != "0" { differences.append("event \(id): API \(api), page \(shown)") }
                    }
                    return differences.isEmpty ? nil : differences.joined(separator: "; ")
                }
                let final = try await server.api.get("/events/\(event)")
                #expect(final["sold"] == "\(result.accepted)", "every accepted intent bought one ticket")
                let held = try #require(try await Page.read(browser).row(matinee))
                #expect(held.number("held") == 6 && held.number("sold") == 0 && held.number("available") == 4, "\(held)")

                let png = try #require(screenshot)
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 10_000, "a PNG: \(png.count) bytes")
                let path =
                    ProcessInfo.processInfo.environment["BOXOFFICE_DASHBOARD_SCREENSHOT"]
                    ?? FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-dashboard-\(getpid()).png").path
                try png.write(to: URL(fileURLWithPath: path))
                print("dashboard screenshot: \(path)")

                #expect(await workers.terminateAll() == [0, 0], "\(workerLogTail())")
                // Workers alive counts connected worker processes: none once they have exited.
                try await waitUntil("the page to show no worker alive", every: .milliseconds(250), timeout: .seconds(30)) {
                    let page = try await Page.read(browser)
                    return page.workers == "0" ? nil : "\(page)"
                }
                #expect(await server.process.terminateAll() == [0], "\(workerLogTail())")
            }
        }
    }
}

/// What the dashboard page shows, read from its DOM (the text a person sees, not the JSON it polled).
struct Page: Decodable, CustomStringConvertible {
    let rows: [[String: String]]
    let workers: String
    let status: String

    static let script = """
        JSON.stringify({
          rows: Array.from(document.querySelectorAll("tr[data-event]")).map(row => {
            const cells = { id: row.dataset.event };
            for (const cell of row.querySelectorAll("td[data-field]")) cells[cell.dataset.field] = cell.textContent;
            return cells;
          }),
          workers: document.getElementById("workers")?.textContent ?? "",
          status: document.getElementById("status")?.textContent ?? location.href
        })
        """

    static func read(_ browser: HeadlessChromium) async throws -> Page {
        guard let text = try await browser.evaluate(script) as? String else { throw HeadlessChromium.ChromiumError(description: "no page state") }
        return try JSONDecoder().decode(Page.self, from: Data(text.utf8))
    }

    func row(_ event: Int64) -> Row? { rows.first { $0["id"] == "\(event)" }.map(Row.init) }

    struct Row {
        let cells: [String: String]
        subscript(field: String) -> String? { cells[field] }
        /// A count as shown (`12,345`).
        func number(_ field: String) -> Int? { cells[field].flatMap { Int($0.replacingOccurrences(of: ",", with: "")) } }
    }

    var description: String { "workers \(workers), status \(status), rows \(rows)" }
}
