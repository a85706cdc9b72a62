import BoxofficeMetrics
import Hummingbird

/// What operators and tools read: liveness, readiness (the database answers), the OpenAPI document and,
/// when metrics are on, the Prometheus exposition.
struct OperationsController: APIController {
    let store: BoundedStore
    let metrics: BoxofficeMetrics?

    var path: String { "" }

    var routes: [APIRoute] {
        let store = self.store.store
        let openAPI = OpenAPIDocument.bytes
        var routes: [APIRoute] = [
            .get("health") { _, _ in try jsonResponse(["status": "ok"]) },
            .get("ready") { _, _ in
                guard await store.isReachable() else { throw APIError.databaseUnavailable }
                return try jsonResponse(["status": "ready"])
            },
            .get("openapi.json") { _, _ in
                Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: openAPI))
            },
        ]
        if let metrics { routes.append(.get("metrics") { _, _ in await metricsResponse(metrics) }) }
        return routes
    }
}

/// The Prometheus text exposition of `metrics` (the API's `/metrics` and a worker's).
func metricsResponse(_ metrics: BoxofficeMetrics) async -> Response {
    metricsResponse(await metrics.exposition())
}

/// A Prometheus text exposition as the answer.
func metricsResponse(_ exposition: [UInt8]) -> Response {
    Response(status: .ok, headers: [.contentType: BoxofficeMetrics.contentType], body: .init(byteBuffer: ByteBuffer(bytes: exposition)))
}
