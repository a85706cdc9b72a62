import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

@testable import BoxofficeAPI

@Suite("X-Request-ID rule and middleware")
struct RequestIdentityTests {
    struct TestSource: RequestContextSource {
        let logger = Logger(label: "boxoffice.tests.request-id")
    }

    struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        typealias Source = TestSource
        init(source: TestSource) { coreContext = .init(source: source) }
    }

    static func request(_ ids: [String]) -> Request {
        var head = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/health")
        for id in ids { head.headerFields.append(HTTPField(name: .requestID, value: id)) }
        return Request(head: head, body: RequestBody(buffer: ByteBuffer()))
    }

    @Test("Sane: 1 to 128 visible ASCII characters; anything else is replaced by 32 hex digits")
    func rule() {
        #expect(RequestIdentity.isSane("a"))
        #expect(RequestIdentity.isSane(String(repeating: "~", count: 128)))
        #expect(RequestIdentity.isSane("req-1.2_3:4/5!"))
        for insane in ["", String(repeating: "a", count: 129), "a b", "tab\t", "é", "nul\u{0}", "del\u{7F}"] {
            #expect(!RequestIdentity.isSane(insane), "\(insane.debugDescription)")
        }
        let generated = RequestIdentity.generate()
        #expect(generated.wholeMatch(of: #/[0-9a-f]{16,32}/#) != nil && RequestIdentity.isSane(generated), "\(generated)")
        #expect(RequestIdentity.generate() != generated)
        #expect(RequestIdentity.settle(["mine"]) == "mine")
        #expect(RequestIdentity.settle(["one", "two"]) != "one")
        #expect(RequestIdentity.settle([]) != "")
    }

    @Test("The middleware echoes the id on answers and errors, and puts it in the request's log metadata")
    func middleware() async throws {
        let middleware = RequestIDMiddleware<Context>()
        let logged = Mutex<String?>(nil)
        let ok = try await middleware.handle(Self.request(["abc-1"]), context: Context(source: TestSource())) { _, context in
            logged.withLock { $0 = context.logger[metadataKey: RequestIdentity.metadataKey]?.description }
            return Response(status: .ok)
        }
        #expect(ok.headers[.requestID] == "abc-1")
        #expect(logged.withLock { $0 } == "abc-1")

        let refused = try await middleware.handle(Self.request(["abc-2"]), context: Context(source: TestSource())) { _, _ in
            throw APIError(.notFound, "not_found", "nothing here")
        }
        #expect(refused.status == .notFound && refused.headers[.requestID] == "abc-2")

        let made = try await middleware.handle(Self.request(["has space"]), context: Context(source: TestSource())) { _, context in
            logged.withLock { $0 = context.logger[metadataKey: RequestIdentity.metadataKey]?.description }
            return Response(status: .ok)
        }
        let id = made.headers[.requestID] ?? ""
        #expect(id != "has space" && RequestIdentity.isSane(id) && logged.withLock { $0 } == id, "\(id)")
    }
}
