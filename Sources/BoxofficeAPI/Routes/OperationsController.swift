import Hummingbird

/// What operators and tools read: liveness, readiness (the database answers) and the OpenAPI document.
struct OperationsController: APIController {
    let store: BoundedStore

    var path: String { "" }

    var routes: [APIRoute] {
        let store = self.store.store
        let openAPI = OpenAPIDocument.bytes
        return [
            .get("health") { _, _ in try jsonResponse(["status": "ok"]) },
            .get("ready") { _, _ in
                guard await store.isReachable() else { throw APIError.databaseUnavailable }
                return try jsonResponse(["status": "ready"])
            },
            .get("openapi.json") { _, _ in
                Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: openAPI))
            },
        ]
    }
}
