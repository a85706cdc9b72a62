import AsyncHTTPClient
import BoxofficeHarness
import Foundation

/// Polls the operators' read endpoints as a Prometheus and an open dashboard would: every `interval`,
/// one GET of each target in turn, the next round due `interval` after the last one was (not after it
/// ended), so a slow round does not thin the load.
struct Scraper: Sendable {
    struct Target: Sendable {
        let name: String
        let url: String
        /// The Authorization header's value, for the dashboard's admin token.
        var authorization: String?
    }

    let client: HTTPClient
    let targets: [Target]
    let interval: Duration
    /// A scrape not answered within this counts as failed.
    static let timeoutSeconds: Int64 = 5
    /// The largest body read (a worker's or the API's exposition is a few hundred kilobytes at most).
    static let bodyBytesMax = 16 << 20

    /// Scrapes until the task is cancelled; what each target cost and how many rounds ran.
    func run() async -> (costs: [ScrapeCost], rounds: Int) {
        var costs = targets.map { ScrapeCost(endpoint: $0.name) }
        var rounds = 0
        var due = ContinuousClock.now
        while !Task.isCancelled {
            for (index, target) in targets.enumerated() {
                var request = HTTPClientRequest(url: target.url)
                if let authorization = target.authorization { request.headers.add(name: "Authorization", value: authorization) }
                let start = ContinuousClock.now
                let failure: String?
                do {
                    let response = try await client.execute(request, timeout: .seconds(Self.timeoutSeconds))
                    _ = try await response.body.collect(upTo: Self.bodyBytesMax)
                    failure = response.status == .ok ? nil : "\(target.name) answered \(response.status.code)"
                } catch {
                    // Stopping mid-request is the end of the trial, not a failed scrape.
                    if Task.isCancelled { return (costs, rounds) }
                    failure = "\(target.name): \(error)"
                }
                costs[index].record(seconds: OpenLoad.seconds(ContinuousClock.now - start), failure: failure)
            }
            rounds += 1
            due += interval
            do { try await Task.sleep(until: due, clock: .continuous) } catch { break }
        }
        return (costs, rounds)
    }
}
