import BoxofficeAPI
import Foundation
import Testing

extension IntegrationTests {
    @Suite("X-Request-ID")
    struct RequestIDTests {
        @Test(
            "A sane X-Request-ID is echoed, a missing or insane one is replaced by a generated one, on answers of routes, of errors and of the client bounds below the router"
        )
        func requestIDOnEveryAnswer() async throws {
            // The body deadline (1 s) is shorter than the idle one (15 s) armed when the connection opened:
            // its 408 must still come on time.
            try await withLiveAPI(configure: { $0.clients.bodyReadTimeout = .seconds(1) }) { api in
                func requestID(_ reply: LiveAPI.Reply) -> [String] { reply.headers.filter { $0.0.lowercased() == "x-request-id" }.map(\.1) }
                let generated = #/^[0-9a-f]{16,32}$/#

                let plain = try await api.get("/health")
                #expect(plain.status == 200)
                let first = requestID(plain)
                #expect(first.count == 1 && first.allSatisfy { $0.wholeMatch(of: generated) != nil }, "\(first)")
                let second = requestID(try await api.get("/health"))
                #expect(second.count == 1 && second != first, "two requests got \(first) and \(second)")

                let chosen = "req-42.Z_~" + String(repeating: "x", count: 118)  // 128 visible ASCII characters
                for (path, status) in [("/health", 200), ("/events/999999", 404), ("/nowhere", 404), ("/intents/not-a-uuid", 400)] {
                    let reply = try await api.send(.GET, path, headers: [("X-Request-ID", chosen)])
                    #expect(reply.status == status, "\(path)")
                    #expect(requestID(reply) == [chosen], "\(path): \(requestID(reply))")
                }
                let comma = try await api.send(.GET, "/health", headers: [("X-Request-ID", "a,b;c=d")])
                #expect(requestID(comma) == ["a,b;c=d"], "a comma is visible ASCII: \(requestID(comma))")
                let refused = try await api.post("/events", #"{"name": ""}"#, headers: [("X-Request-ID", "abc")])
                #expect(refused.status >= 400 && requestID(refused) == ["abc"], "\(refused.status) \(requestID(refused))")

                for insane in [chosen + "x", "has space", "tab\there", "é-unicode", ""] {
                    let reply = try await api.send(.GET, "/health", headers: [("X-Request-ID", insane)])
                    let ids = requestID(reply)
                    #expect(ids.count == 1 && ids.allSatisfy { $0.wholeMatch(of: generated) != nil }, "\(insane.debugDescription) → \(ids)")
                }
                let twice = try await api.send(.GET, "/health", headers: [("X-Request-ID", "one"), ("X-Request-ID", "two")])
                #expect(requestID(twice).count == 1 && requestID(twice).allSatisfy { $0.wholeMatch(of: generated) != nil }, "\(requestID(twice))")

                // Answers written below the router: a 408 for a slow body carries the request's id; a 431
                // (no head was parsed) carries a fresh one.
                let port = Int(api.baseURL.split(separator: ":").last ?? "") ?? 0
                let event = try await api.createGeneralAdmission(10)
                let slowBody = await rawExchange(
                    port: port,
                    Array("POST /events/\(event)/intents HTTP/1.1\r\nHost: x\r\nX-Request-ID: slow-1\r\nContent-Length: 100\r\n\r\n{".utf8),
                    timeout: 5)
                #expect(slowBody.response.hasPrefix("HTTP/1.1 408") && slowBody.seconds < 2.5, "\(slowBody)")
                #expect(slowBody.response.lowercased().contains("x-request-id: slow-1\r\n"), "\(slowBody.response)")
                let bigHead = await rawExchange(
                    port: port, Array(("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n").utf8),
                    timeout: 5)
                #expect(bigHead.response.hasPrefix("HTTP/1.1 431"), "\(bigHead.response.prefix(300))")
                #expect(bigHead.response.lowercased().contains("x-request-id: "), "\(bigHead.response.prefix(300))")
            }
        }
    }
}
