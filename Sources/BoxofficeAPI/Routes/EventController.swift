import BoxofficeCore
import Hummingbird

/// Events: created by administrators, read by anyone.
struct EventController: APIController {
    let store: BoundedStore
    let configuration: APIConfiguration

    var path: String { "/events" }

    var routes: [APIRoute] {
        [
            .post("", as: .admin) { request, _ in try await create(request) },
            .get(":event") { _, context in try await read(context) },
        ]
    }

    func create(_ request: Request) async throws -> Response {
        let body = try await JSONObject.read(request, bodyBytesMax: configuration.bodyBytesMax, allowed: EventValidation.fields)
        let event = try EventValidation.newEvent(body, limits: configuration)
        let summary = try await store.call { try await $0.createEvent(name: event.name, layout: event.layout, holdSeconds: event.holdSeconds) }
        return try jsonResponse(EventBody(summary), status: .created, headers: [.location: "/events/\(summary.id)"])
    }

    func read(_ context: BasicRequestContext) async throws -> Response {
        let id = try EventValidation.eventID(context.parameters.get("event"))
        guard let summary = try await store.call({ try await $0.eventSummary(id) }) else { throw APIError.eventNotFound(id) }
        return try jsonResponse(EventBody(summary))
    }
}
