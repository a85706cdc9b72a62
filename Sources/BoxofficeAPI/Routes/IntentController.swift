import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird

/// Intents: producers enqueue them one at a time (group commit) or in bulk; anyone holding an id
/// reads its status, optionally long-polling for the outcome.
struct IntentController: APIController {
    let store: BoundedStore
    let groupCommit: IntakeGroupCommit
    let watcher: OutcomeWatcher
    let configuration: APIConfiguration
    /// At most ``APIConfiguration/bulkRequestsMax`` bulk bodies are buffered at once.
    let bulkSlots: Slots

    var path: String { "" }

    var routes: [APIRoute] {
        [
            .post("/events/:event/intents", as: .producer) { request, context in try await enqueue(request, context) },
            .post("/events/:event/intents/batch", as: .producer) { request, context in try await enqueueBulk(request, context) },
            .get("/intents/:intent") { request, context in try await status(request, context) },
        ]
    }

    func enqueue(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try EventValidation.eventID(context.parameters.get("event"))
        let key = try IntentValidation.idempotencyKeyHeader(request.headers[.idempotencyKey], lengthMax: configuration.idempotencyKeyLengthMax)
        let body = try await JSONObject.read(request, bodyBytesMax: configuration.bodyBytesMax, allowed: IntentValidation.fields)
        // Stamped once the body is in (reading it has its own deadline): finding the event and the
        // group commit share this one bound.
        let deadline = store.requestDeadline()
        guard let layout = try await store.layout(of: id, deadline: deadline) else { throw APIError.eventNotFound(id) }
        let draft = try IntentValidation.draft(body, eventID: id, layout: layout, idempotencyKey: key, limits: configuration)
        let result: IntakeResult
        do {
            result = try await groupCommit.submit(draft, deadline: deadline)
        } catch let refusal as IntakeGroupCommit.Refusal {
            switch refusal {
            case .overloaded: throw APIError.unavailable("overloaded", "too many intents are waiting to be written; retry shortly")
            case .stopped: throw APIError.unavailable("shutting_down", "this server is shutting down; retry on another")
            case .deadlineExceeded, .databaseFailing: throw APIError.databaseUnavailable
            }
        }
        switch result {
        case .accepted(let publicID), .replayed(let publicID):
            var headers: HTTPFields = [.location: "/intents/\(publicID.text)"]
            if case .replayed = result { headers[.idempotentReplayed] = "true" }
            return AcceptedBody(id: publicID).response(headers: headers)
        case .keyReused:
            throw APIError.keyReused(key ?? "")
        }
    }

    /// Bulk intake for producers that batch on their side: a JSON array or NDJSON of intents, written
    /// with one statement (one fsync). Each item succeeds or fails on its own; a malformed body, an
    /// unknown event or too many items refuse the whole request and write nothing.
    func enqueueBulk(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try EventValidation.eventID(context.parameters.get("event"))
        // A slot before the body is read: at most bulkRequestsMax bodies are buffered at once.
        guard bulkSlots.acquire() else {
            throw APIError.unavailable("overloaded", "\(configuration.bulkRequestsMax) bulk requests are already in progress here; retry shortly")
        }
        defer { bulkSlots.release() }
        let values = try BulkValidation.items(
            try await collectBody(request, bytesMax: configuration.bulkBodyBytesMax),
            ndjson: request.headers[.contentType]?.lowercased().hasPrefix("application/x-ndjson") ?? false,
            itemsMax: configuration.bulkItemsMax)
        let deadline = store.requestDeadline()
        guard let layout = try await store.layout(of: id, deadline: deadline) else { throw APIError.eventNotFound(id) }
        let items = try values.map { try BulkValidation.item($0, eventID: id, layout: layout, limits: configuration) }
        let drafts = items.compactMap(\.draft)
        let written = try await store.call(until: deadline) { try await $0.enqueue(drafts, sendBefore: deadline) }
        return BulkBody(items: items, written: written).response()
    }

    func status(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try IntentValidation.intentID(context.parameters.get("intent"))
        let waitSeconds = try IntentValidation.waitSeconds(request.uri.queryParameters.get("wait"), max: configuration.longPollSecondsMax)
        guard var status = try await store.call({ try await $0.status(of: id) }) else {
            throw APIError(.notFound, "intent_not_found", "there is no intent \(id)")
        }
        var headers: HTTPFields = [:]
        if case .pending = status.state, waitSeconds > 0 {
            // The recheck reads only the outcome (one index probe), not the queue position.
            let waited = await watcher.wait(for: id, event: status.eventID, timeout: .seconds(waitSeconds)) {
                try? await store.call { try await $0.decidedStatuses(among: [id])[id] }
            }
            switch waited {
            case .decided(let decided):
                status = decided
            case .timedOut:
                // Still pending: read the status again for its current queue position.
                status = try await store.call { try await $0.status(of: id) } ?? status
            case .refused:
                // Too many long-polls here or on this intent: the status as it stands, and when to ask again.
                headers[.retryAfter] = "\(Int.random(in: APIError.retryAfterSeconds))"
            }
        }
        return StatusBody(status).response(headers: headers)
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}
