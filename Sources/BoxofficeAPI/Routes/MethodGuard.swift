import Hummingbird

/// Answers `405 Method Not Allowed` with an `Allow` header when a request names a path the API
/// serves with a method it does not serve there (RFC 9110 §15.5.6), instead of a misleading 404.
struct MethodGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    struct Route {
        let segments: [Substring]
        let allow: String
        let methods: Set<HTTPRequest.Method>
    }

    let routes: [Route]

    init(table: [(path: String, methods: [HTTPRequest.Method])]) {
        routes = table.map { entry in
            Route(
                segments: entry.path.split(separator: "/"),
                allow: entry.methods.map(\.rawValue).joined(separator: ", "),
                methods: Set(entry.methods))
        }
    }

    /// Costs nothing on a route that matched: the table is consulted only when the router found no
    /// handler for this method and path (its 404).
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            if let route = routes.first(where: { Self.matches($0.segments, segments) }), !route.methods.contains(request.method) {
                throw APIError(
                    .methodNotAllowed, "method_not_allowed",
                    "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(route.allow)",
                    headers: [.allow: route.allow])
            }
            throw error
        }
    }

    /// Literal segments must be equal; `:name` segments match any one segment.
    static func matches(_ pattern: [Substring], _ path: [Substring]) -> Bool {
        pattern.count == path.count && zip(pattern, path).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
    }
}
