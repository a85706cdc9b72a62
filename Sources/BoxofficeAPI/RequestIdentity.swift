import HTTPTypes
import Hummingbird
import Logging

/// The `X-Request-ID` of a request: the client's when it is sane (1 to ``lengthMax`` visible ASCII
/// characters), else one made here. ``ClientDeadlines`` settles it on every request head before the
/// router sees it (so the answers it writes itself, a `408` for a slow body, carry it too);
/// ``RequestIDMiddleware`` echoes it on every response and puts it in the request's log metadata.
enum RequestIdentity {
    /// Longest client-chosen id kept; a longer one is replaced, not truncated.
    static let lengthMax = 128
    /// The header's name, lowercased as HTTP/1 heads are compared.
    static let headerName = "x-request-id"
    /// The key of the id in a request's log metadata.
    static let metadataKey = "request_id"

    /// Whether a client's id is kept: 1 to ``lengthMax`` bytes, each visible ASCII (no spaces, no controls).
    static func isSane(_ value: String) -> Bool {
        var count = 0
        for byte in value.utf8 {
            count += 1
            guard count <= lengthMax, byte >= 0x21, byte <= 0x7E else { return false }
        }
        return count > 0
    }

    /// A fresh id: 32 lowercase hex digits, a per-process random prefix and a counter (Hummingbird's).
    static func generate() -> String { RequestID().description }

    /// The id to use for a request carrying `values` (every `X-Request-ID` field it sent): the only
    /// one when it is sane, else a generated one.
    static func settle(_ values: [String]) -> String {
        if values.count == 1, isSane(values[0]) { return values[0] }
        return generate()
    }
}

extension HTTPField.Name {
    static let requestID = Self("X-Request-ID")!
}

/// Echoes the request's id on its response, errors included, and carries it in `context.logger`.
/// Outermost, so every answer of the router passes through it.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id = RequestIdentity.settle(request.headers[values: .requestID])
        var context = context
        context.logger[metadataKey: RequestIdentity.metadataKey] = .string(id)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.requestID] = id
        return response
    }
}
