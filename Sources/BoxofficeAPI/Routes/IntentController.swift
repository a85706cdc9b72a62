import BoxofficeCore
import BoxofficeStore
import Foundation
import HTTPTypes
import Hummingbird

/// Intents: producers enqueue them one at a time (group commit) or in bulk; anyone holding an id
/// reads its status, optionally long-polling until it changes; producers confirm and release holds,
/// administrators cancel confirmed orders.
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
            .post("/intents/:intent/confirm", as: .producer) { request, context in try await transition(.confirm, request, context) },
            .post("/intents/:intent/release", as: .producer) { request, context in try await transition(.release, request, context) },
            .post("/intents/:intent/cancel", as: .admin) { request, context in try await transition(.cancel, request, context) },
        ]
    }

    /// A transition of a decided intent: `200` with its status when made now or before (a repeat), a
    /// `409` whose code says why when impossible from where the intent stands; nothing is written then.
    func transition(_ kind: TransitionValidation.Kind, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try IntentValidation.intentID(context.parameters.get("intent"))
        let (transition, customer) = try TransitionValidation.transition(
            kind, body: try await collectBody(request, bytesMax: configuration.bodyBytesMax), customerLengthMax: configuration.customerLengthMax)
        guard let result = try await store.call({ try await $0.transition(transition, of: id, customer: customer) }) else {
            throw APIError(.notFound, "intent_not_found", "there is no intent \(id)")
        }
        // With the request id (context.logger carries it): who changed which intent, for an operator's audit.
        context.logger.log(
            level: kind == .cancel ? .notice : .debug, "intent transition",
            metadata: ["intent": "\(id.uuidString.lowercased())", "transition": "\(kind.rawValue)", "result": "\(result.logWord)"])
        switch result {
        case .done(let status):
            return StatusBody(status).response()
        case .refused(let status, let pastExpiry):
            throw TransitionValidation.refusal(status, pastExpiry: pastExpiry)
        case .paymentReferenceDiffers:
            throw APIError(
                .conflict, "payment_reference_differs",
                "intent \(id) was confirmed with another payment_reference; this payment is not for it (refund it)")
        case .anotherCustomer:
            throw APIError(.forbidden, "customer_mismatch", "intent \(id) is not customer \(customer ?? "")'s")
        }
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
        let waitWhile = try TransitionValidation.waitWhile(request.uri.queryParameters.get("while"))
        guard var status = try await store.call({ try await $0.status(of: id) }) else {
            throw APIError(.notFound, "intent_not_found", "there is no intent \(id)")
        }
        var headers: HTTPFields = [:]
        if status.word == waitWhile, waitSeconds > 0 {
            // The recheck reads only the outcome (one index probe), not the queue position.
            let waited = await watcher.wait(for: id, event: status.eventID, while: waitWhile, timeout: .seconds(waitSeconds)) {
                try? await store.call { try await $0.decidedStatuses(among: [id])[id] }.flatMap { $0.word == waitWhile ? nil : $0 }
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

extension TransitionResult {
    /// One word for a log line: done, refused, payment_reference_differs, customer_mismatch.
    var logWord: String {
        switch self {
        case .done: "done"
        case .refused(let status, _): "refused (\(status.word.rawValue))"
        case .paymentReferenceDiffers: "payment_reference_differs"
        case .anotherCustomer: "customer_mismatch"
        }
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}
