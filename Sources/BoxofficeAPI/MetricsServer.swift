import BoxofficeMetrics
import BoxofficeStore
import Hummingbird
import HummingbirdCore
import Logging

/// A worker's metrics endpoint (`boxoffice work --metrics-port`): `GET /metrics` and `GET /health` on
/// their own port, under the same client bounds as the API (at most ``connectionsMax`` connections,
/// the same head/idle deadlines), every other path a JSON 404 and every other method a JSON 405.
public func buildMetricsApplication(
    metrics: BoxofficeMetrics, host: String, port: Int, logger: Logger, connectionsMax: Int = 64,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    buildMetricsApplication(
        exposition: { await metrics.exposition() }, host: host, port: port, logger: logger, connectionsMax: connectionsMax,
        onServerRunning: onServerRunning)
}

/// The same endpoint serving `exposition` (a worker pool's: its children's metrics and its own, merged).
public func buildMetricsApplication(
    exposition: @escaping @Sendable () async -> [UInt8], host: String, port: Int, logger: Logger, connectionsMax: Int = 64,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let routes = RouteTable(controllers: [WorkerOperationsController(exposition: exposition)])
    let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.middlewares.add(ErrorMappingMiddleware(failures: RepeatedLog(logger: logger)))
    router.middlewares.add(MethodGuardMiddleware(table: routes.allowedMethods))
    routes.register(on: router, access: .open)
    let limits = {
        var limits = ClientLimits()
        limits.connectionsMax = connectionsMax
        return limits
    }()
    let counters = ClientLimitCounters()
    let cap = ConnectionCap(connectionsMax: limits.connectionsMax, counters: counters, logger: logger)
    return Application(
        router: router,
        server: HTTPServerBuilder { responder in BoundedHTTP1Channel(responder: responder, limits: limits, counters: counters) },
        configuration: .init(address: .hostname(host, port: port), serverName: "boxoffice-worker", availableConnectionsDelegate: cap),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
        logger: logger)
}

struct WorkerOperationsController: APIController {
    let exposition: @Sendable () async -> [UInt8]
    var path: String { "" }
    var routes: [APIRoute] {
        let exposition = self.exposition
        return [
            .get("health") { _, _ in try jsonResponse(["status": "ok"]) },
            .get("metrics") { _, _ in metricsResponse(await exposition()) },
        ]
    }
}
