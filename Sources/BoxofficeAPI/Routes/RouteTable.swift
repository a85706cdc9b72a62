import HTTPTypes
import Hummingbird

/// One route of the API, declared once: method, path, the role it needs and its handler. The router's
/// registration and the 405 guard are both built from these declarations, so they cannot disagree.
struct APIRoute: Sendable {
    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    let method: HTTPRequest.Method
    /// Relative to its controller's path (`""` is the controller's path itself).
    let path: String
    /// Who may call it; nil when anyone may (reads: ids are unguessable, event counts are public).
    let role: AccessControl.Role?
    /// The role's token is accepted as the password of HTTP Basic credentials too, and a request
    /// without credentials is challenged for them: a page a browser opens (it cannot send a bearer header).
    var acceptsBasic = false
    let handler: Handler

    /// A read anyone may make; HEAD is answered too (the router generates it, the guard allows it).
    static func get(_ path: String, _ handler: @escaping Handler) -> APIRoute {
        APIRoute(method: .get, path: path, role: nil, handler: handler)
    }

    /// A read for an administrator's browser: the admin token as a bearer token or as the password of
    /// HTTP Basic credentials (see ``AccessControl/authorize(_:as:acceptingBasic:)``); HEAD answered too.
    static func browse(_ path: String, _ handler: @escaping Handler) -> APIRoute {
        APIRoute(method: .get, path: path, role: .admin, acceptsBasic: true, handler: handler)
    }

    /// A write that needs a token granting `role`, checked before the body is read.
    static func post(_ path: String, as role: AccessControl.Role, _ handler: @escaping Handler) -> APIRoute {
        APIRoute(method: .post, path: path, role: role, handler: handler)
    }
}

/// A resource's routes under one path: registered as one Hummingbird `RouteCollection` at ``path``.
protocol APIController: Sendable {
    /// Where the routes live (`/events`); `""` for the root.
    var path: String { get }
    var routes: [APIRoute] { get }
}

/// Every route of the API, from its controllers: what the router registers and what the 405 guard reads.
struct RouteTable: Sendable {
    let controllers: [any APIController]

    /// Registers each controller as one route collection; a route that needs a role is authorized
    /// before its handler runs (so before its body is read).
    func register(on router: Router<BasicRequestContext>, access: AccessControl) {
        for controller in controllers {
            let collection = RouteCollection(context: BasicRequestContext.self)
            for route in controller.routes {
                let (role, acceptsBasic, handler) = (route.role, route.acceptsBasic, route.handler)
                collection.on(RouterPath(route.path), method: route.method) { request, context in
                    if let role { try access.authorize(request, as: role, acceptingBasic: acceptsBasic) }
                    return try await handler(request, context)
                }
            }
            router.addRoutes(collection, atPath: RouterPath(controller.path))
        }
    }

    /// Each full path the API serves and the methods it answers there, in declaration order; every
    /// GET brings its HEAD (the router answers HEAD for every GET route).
    var allowedMethods: [(path: String, methods: [HTTPRequest.Method])] {
        var table: [(path: String, methods: [HTTPRequest.Method])] = []
        for controller in controllers {
            for route in controller.routes {
                let path = Self.join(controller.path, route.path)
                let methods = route.method == .get ? [HTTPRequest.Method.get, .head] : [route.method]
                if let at = table.firstIndex(where: { $0.path == path }) {
                    table[at].methods += methods.filter { !table[at].methods.contains($0) }
                } else {
                    table.append((path, methods))
                }
            }
        }
        return table
    }

    /// The full path of `path` under `prefix`, as the router joins them (`/events` + `:event` is `/events/:event`).
    static func join(_ prefix: String, _ path: String) -> String {
        "/" + (prefix.split(separator: "/") + path.split(separator: "/")).joined(separator: "/")
    }
}
