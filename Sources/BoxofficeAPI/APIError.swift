import BoxofficeStore
import Foundation
import Hummingbird
import Logging

/// An error the API answers with: a status and a JSON body `{"error": code, "message": text}`.
///
/// Every failure leaves through this type, so clients always get a machine-readable code and a
/// sentence that says what to do, never an empty 500.
public struct APIError: HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONWriter.response(status: status, headers: headers) { json in
            json.object { json in
                json.field("error", code)
                json.field("message", message)
            }
        }
    }

    static func invalid(_ message: String) -> APIError { APIError(.unprocessableContent, "invalid_request", message) }

    /// A `503` with a `Retry-After` of ``retryAfterSeconds`` seconds, drawn afresh for each answer: clients
    /// refused together (every request of an outage) must not all come back in the same second.
    static func unavailable(_ code: String, _ message: String) -> APIError {
        APIError(.serviceUnavailable, code, message, headers: [.retryAfter: "\(Int.random(in: retryAfterSeconds))"])
    }

    /// The spread of `Retry-After` on a `503`, in whole seconds (HTTP allows no fractions).
    static let retryAfterSeconds = 1...4

    /// The database did not answer in time: nothing was promised. A write that timed out may still
    /// commit late, which is why the message points at the Idempotency-Key.
    static var databaseUnavailable: APIError {
        unavailable(
            "database_unavailable",
            "the database did not answer in time; retry shortly (send an Idempotency-Key and a retry can never create a second intent)")
    }
}

/// Turns every error into an ``APIError`` response: Hummingbird's own (404, 413…) keep their status,
/// anything else (the database failing) becomes a 503 with Retry-After, so no request ends in a bare 500.
struct ErrorMappingMiddleware<Context: RequestContext>: RouterMiddleware {
    /// One line per window however many requests fail the same way (an outage).
    let failures: RepeatedLog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(error.status, Self.code(for: error.status), error.body ?? Self.message(for: error.status, path: request.uri.path))
        } catch {
            failures.log(
                .warning, key: "request failed", "request failed; answered 503",
                metadata: [
                    "path": "\(request.uri.path)", "error": "\(describeDatabaseError(error))",
                    RequestIdentity.metadataKey: context.logger[metadataKey: RequestIdentity.metadataKey] ?? "-",
                ])
            throw APIError.databaseUnavailable
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contentTooLarge: "body_too_large"
        case .badRequest: "bad_request"
        default: status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
        }
    }

    static func message(for status: HTTPResponse.Status, path: String) -> String {
        switch status {
        case .notFound: "no route matches \(path); see README.md for the API"
        case .methodNotAllowed: "this method is not allowed on \(path)"
        default: status.reasonPhrase
        }
    }
}
