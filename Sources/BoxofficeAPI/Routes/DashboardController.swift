import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// The live sale dashboard: a page for an administrator's browser and the JSON it polls every second.
/// Both need the admin token, as a bearer token or as the password of HTTP Basic credentials (the
/// browser asks for it); `serve --no-auth` leaves them open like everything else.
struct DashboardController: APIController {
    let samples: DashboardSamples

    var path: String { "/dashboard" }

    var routes: [APIRoute] {
        let samples = self.samples
        return [
            .browse("") { _, _ in DashboardPage.response() },
            .browse("data") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                    body: .init(byteBuffer: try await samples.body()))
            },
        ]
    }
}

/// The dashboard's JSON, read from the database at most once per ``cacheFor`` per process: every poll
/// within it gets the same bytes, and polls that arrive while a read is in flight wait for that read.
/// So a hundred open dashboards cost the database one sample (two statements) per second, and a
/// database that is down costs one read in flight at a time.
final class DashboardSamples: Sendable {
    let store: BoundedStore
    let cacheFor: Duration

    private struct State {
        var body: ByteBuffer?
        var readAt: ContinuousClock.Instant?
        var inFlight: Task<ByteBuffer, any Error>?
    }
    private let state = Mutex(State())

    init(store: BoundedStore, cacheFor: Duration = .seconds(1)) {
        self.store = store
        self.cacheFor = cacheFor
    }

    func body() async throws -> ByteBuffer {
        let now = ContinuousClock.now
        let task = state.withLock { state -> Task<ByteBuffer, any Error> in
            if let body = state.body, let at = state.readAt, now - at < cacheFor { return Task { body } }
            if let inFlight = state.inFlight { return inFlight }
            let read = Task { try await self.read() }
            state.inFlight = read
            return read
        }
        return try await task.value
    }

    private func read() async throws -> ByteBuffer {
        do {
            let sample = try await store.call { try await $0.dashboardSample() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = ByteBuffer(bytes: try encoder.encode(DashboardBody(sample)))
            state.withLock { state in
                state.body = body
                state.readAt = .now
                state.inFlight = nil
            }
            return body
        } catch {
            state.withLock { $0.inFlight = nil }
            throw error
        }
    }
}

/// `GET /dashboard/data`: the sample, with the bounds it was read under.
struct DashboardBody: Encodable {
    struct Event: Encodable {
        let id: EventID
        let name: String
        let capacity: Int
        let sold: Int
        let held: Int
        let available: Int
        let pending: Int
        let servedSecondsAgo: Double?
        let recentDecisions: Int
        let decisionsPerSecond: Double
        let decisionLatencyP50Seconds: Double?
        let decisionLatencyP99Seconds: Double?

        enum CodingKeys: String, CodingKey {
            case id, name, capacity, sold, held, available, pending
            case servedSecondsAgo = "served_seconds_ago"
            case recentDecisions = "recent_decisions"
            case decisionsPerSecond = "decisions_per_second"
            case decisionLatencyP50Seconds = "decision_latency_p50_seconds"
            case decisionLatencyP99Seconds = "decision_latency_p99_seconds"
        }
    }

    let sampledAt: Double
    let workersAlive: Int
    let eventsMax = Store.dashboardEventsMax
    let latencyWindowSeconds = Store.dashboardLatencyWindowSeconds
    let latencySamplesMax = Store.dashboardLatencySamplesMax
    let events: [Event]

    enum CodingKeys: String, CodingKey {
        case sampledAt = "sampled_at"
        case workersAlive = "workers_alive"
        case eventsMax = "events_max"
        case latencyWindowSeconds = "latency_window_seconds"
        case latencySamplesMax = "latency_samples_max"
        case events
    }

    init(_ sample: DashboardSample) {
        sampledAt = sample.takenAt
        workersAlive = sample.workersAlive
        events = sample.events.map { event in
            Event(
                id: event.id, name: event.name, capacity: event.capacity, sold: event.sold, held: event.held,
                available: event.available, pending: event.pending, servedSecondsAgo: event.servedSecondsAgo, recentDecisions: event.recentDecisions,
                decisionsPerSecond: event.decisionsPerSecond,
                decisionLatencyP50Seconds: event.latencyP50Seconds, decisionLatencyP99Seconds: event.latencyP99Seconds)
        }
    }
}

/// The dashboard's page (`Resources/dashboard.html`, compiled in by the EmbedFiles plugin): one
/// self-contained document, its script and style inline, fetching nothing but `/dashboard/data`.
///
/// Served under a strict Content-Security-Policy: nothing loads from anywhere (`default-src 'none'`),
/// the inline script and style run only with this response's nonce (drawn per response, so an
/// injected `<script>` cannot carry it), `fetch` reaches this origin only, and no page may frame it.
enum DashboardPage {
    static let placeholder = "__CSP_NONCE__"

    static let text: String = {
        guard let page = Embedded.files.first(where: { $0.name == "dashboard.html" }) else {
            preconditionFailure("dashboard.html was not embedded in BoxofficeAPI; the package build is broken")
        }
        return page.text
    }()

    static func response() -> Response {
        var generator = SystemRandomNumberGenerator()
        let nonce = Data((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
        let policy =
            "default-src 'none'; script-src 'nonce-\(nonce)'; style-src 'nonce-\(nonce)'; connect-src 'self'; "
            + "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: policy, .cacheControl: "no-store",
                .xContentTypeOptions: "nosniff", HTTPField.Name("Referrer-Policy")!: "no-referrer",
            ],
            body: .init(byteBuffer: ByteBuffer(string: text.replacingOccurrences(of: placeholder, with: nonce))))
    }
}
