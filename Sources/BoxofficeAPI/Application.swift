import BoxofficeCore
import BoxofficeMetrics
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging

/// Limits and behaviour of the HTTP API; every bound has a name and a default here.
public struct APIConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest request body accepted (413 above).
    public var bodyBytesMax = 16 * 1024
    /// Most tickets one intent may ask for.
    public var quantityMax = 10
    /// Longest `?wait=` a status request may hold.
    public var longPollSecondsMax = 30
    public var customerLengthMax = 128
    public var idempotencyKeyLengthMax = 255
    public var eventNameLengthMax = 200
    public var sectionsMax = 100
    /// Largest body of a bulk intake request (413 above).
    public var bulkBodyBytesMax = 1024 * 1024
    /// Most intents in one bulk intake request (413 above); counted while parsing, so a body of a
    /// million tiny items is refused at item 1,001, not after building all of them.
    public var bulkItemsMax = 1_000
    /// Bulk intake requests in progress at once per process (each may buffer up to ``bulkBodyBytesMax``
    /// and ``bulkItemsMax`` parsed items, about 2 MiB together); past it `503 overloaded` before the
    /// body is read. Sixteen hold at most ~32 MiB, and leave room for the benchmark's 8 producers.
    public var bulkRequestsMax = 16
    /// Longest a request waits on the database (a lease, a statement) before answering 503: a
    /// database that is down or stuck never holds a client past this.
    public var databaseWaitMilliseconds = 5_000
    /// Who may write. `serve` insists on tokens unless told `--no-auth`.
    public var access = AccessControl.open
    /// What each client connection may hold (connections, head bytes, read deadlines).
    public var clients = ClientLimits()
    /// Connections waiting in the kernel to be accepted while ``ClientLimits/connectionsMax`` are open
    /// (capped by the kernel's `net.core.somaxconn`).
    public var acceptBacklog = 1_024
    /// What the client bounds did: read by tests and the shutdown log line.
    public var clientCounters = ClientLimitCounters()
    public var groupCommit = IntakeGroupCommit.Configuration()
    public var watcher = OutcomeWatcher.Configuration()
    /// Serves `GET /metrics` and records HTTP, intake and queue-depth metrics there; nil: no metrics.
    public var metrics: BoxofficeMetrics?

    public init() {}
}

/// Builds the HTTP application with its services: the Store's pool first, then group commit and
/// the long-poll watcher, so shutdown drains HTTP, then intake, then closes the pool.
public func buildApplication(
    store: Store, configuration: APIConfiguration, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let groupCommit = IntakeGroupCommit(
        store: store, configuration: configuration.groupCommit, logger: logger, metrics: configuration.metrics.map(IntakeMetrics.init))
    if let metrics = configuration.metrics { metrics.add(QueueDepthRefresher(store: store, metrics: metrics)) }
    let watcher = OutcomeWatcher(store: store, configuration: configuration.watcher, logger: logger)
    let routes = RouteTable.api(store: store, groupCommit: groupCommit, watcher: watcher, configuration: configuration)
    // HEAD is answered for every GET route (same status and headers, no body).
    let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
    // First: every answer, errors included, carries the request's id.
    router.middlewares.add(RequestIDMiddleware())
    // Next, so it sees every answer's status (by route template, never the raw path).
    if configuration.metrics != nil { router.middlewares.add(MetricsMiddleware()) }
    router.middlewares.add(ErrorMappingMiddleware(failures: RepeatedLog(logger: logger)))
    router.middlewares.add(MethodGuardMiddleware(table: routes.allowedMethods))
    routes.register(on: router, access: configuration.access)
    let limits = configuration.clients
    let counters = configuration.clientCounters
    let cap = ConnectionCap(connectionsMax: limits.connectionsMax, counters: counters, logger: logger)
    return Application(
        router: router,
        server: HTTPServerBuilder { responder in BoundedHTTP1Channel(responder: responder, limits: limits, counters: counters) },
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "boxoffice",
            backlog: configuration.acceptBacklog, availableConnectionsDelegate: cap),
        services: [StoreService(store: store), groupCommit, watcher, MemoryTrimmer(counters: counters)],
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger)
}

extension RouteTable {
    /// The API's routes, one controller per resource.
    static func api(store: Store, groupCommit: IntakeGroupCommit, watcher: OutcomeWatcher, configuration: APIConfiguration) -> RouteTable {
        let bounded = BoundedStore(store: store, waitMilliseconds: configuration.databaseWaitMilliseconds)
        return RouteTable(controllers: [
            OperationsController(store: bounded, metrics: configuration.metrics),
            DashboardController(samples: DashboardSamples(store: bounded)),
            EventController(store: bounded, configuration: configuration),
            IntentController(
                store: bounded, groupCommit: groupCommit, watcher: watcher, configuration: configuration,
                bulkSlots: Slots(configuration.bulkRequestsMax)),
        ])
    }
}
