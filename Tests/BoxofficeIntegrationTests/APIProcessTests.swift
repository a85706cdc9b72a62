import BoxofficeAPI
import BoxofficeHarness
import EmbeddedPostgres
import Foundation
import Testing

extension IntegrationTests {
    @Suite("API processes")
    struct APIProcessTests {
        /// One `boxoffice serve` child on its own port, with tokens, and a LiveAPI that talks to it.
        struct Server {
            let process: ChildProcesses
            let api: LiveAPI

            init(_ base: LiveAPI, producer: String, admin: String) throws {
                let port = try Loopback.freePort()
                process = ChildProcesses(
                    executable: ChildProcesses.siblingExecutable(), databaseURL: base.database.url,
                    arguments: ["--port", "\(port)", "--log-level", "warning"], logDirectory: workerLogDirectory,
                    subcommand: "serve", environment: ["BOXOFFICE_PRODUCER_TOKEN": producer, "BOXOFFICE_ADMIN_TOKEN": admin])
                api = LiveAPI(store: base.store, baseURL: "http://127.0.0.1:\(port)", database: base.database, http: base.http)
            }

            func start() async throws {
                try process.spawn(1)
                let unhealthy = try await poll(timeout: .seconds(30)) { (try? await api.get("/health"))?.status != 200 ? "no 200" : nil }
                if unhealthy != nil {
                    Issue.record("boxoffice serve did not answer /health at \(api.baseURL) within 30 s\n\(workerLogTail())")
                    throw CancellationError()
                }
            }
        }

        @Test(
            "Two API processes: one Idempotency-Key across both makes one intent; SIGTERM drains in-flight intake and exits 0; after a restart the key still replays, and another body with it is refused"
        )
        func idempotencyAcrossProcessesAndShutdown() async throws {
            try await withLiveAPI { base in
                let event = try await base.createGeneralAdmission(100_000)
                let producer = AccessControl.randomToken()
                let servers = try [
                    Server(base, producer: producer, admin: AccessControl.randomToken()),
                    Server(base, producer: producer, admin: AccessControl.randomToken()),
                ]
                for server in servers { try await server.start() }
                let auth = ("Authorization", "Bearer \(producer)")
                let body = #"{"customer": "c-1", "quantity": 1}"#

                // 50 concurrent retries of one request, spread over both processes: one intent.
                let replies = await withTaskGroup(of: LiveAPI.Reply?.self) { group in
                    for index in 0..<50 {
                        group.addTask {
                            try? await servers[index % 2].api.post("/events/\(event)/intents", body, headers: [auth, ("Idempotency-Key", "shared")])
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(replies.allSatisfy { $0?.status == 202 }, "\(replies.map { $0?.status ?? -1 })")
                let ids = Set(replies.compactMap { $0?["id"] })
                #expect(ids.count == 1, "one key, one intent: got \(ids)")
                #expect(try await base.count("intents") == 1)

                // SIGTERM while 64 keyed requests are in flight: each is answered (202 only once committed)
                // or refused before anything is written; the process exits 0.
                let inFlight = Task {
                    await withTaskGroup(of: (String, Int?).self) { group in
                        for index in 0..<64 {
                            group.addTask {
                                let key = "drain-\(index)"
                                let reply = try? await servers[0].api.post(
                                    "/events/\(event)/intents", body, headers: [auth, ("Idempotency-Key", key)])
                                return (key, reply?.status)
                            }
                        }
                        return await group.reduce(into: []) { $0.append($1) }
                    }
                }
                try await Task.sleep(for: .milliseconds(15))
                let codes = await servers[0].process.terminateAll()
                #expect(codes == [0], "the API must exit 0 on SIGTERM: \(codes)\n\(workerLogTail())")
                let drained = await inFlight.value
                #expect(drained.allSatisfy { [202, 503, nil].contains($0.1) }, "\(Set(drained.map { $0.1 ?? -1 }))")
                print(
                    "api SIGTERM drain: \(drained.filter { $0.1 == 202 }.count) accepted, \(drained.filter { $0.1 == 503 }.count) answered 503, \(drained.filter { $0.1 == nil }.count) refused at connect"
                )
                var committed = Set<String>()
                for try await key in try await base.store.client.query("SELECT key FROM idempotency_keys").decode(String.self) {
                    committed.insert(key)
                }
                for (key, status) in drained where status == 202 { #expect(committed.contains(key), "202 for \(key), but it was not committed") }

                // A new process still knows the key (it lives in the database, not in memory). It gets a new
                // port: the stopped one's may meanwhile be some client connection's ephemeral port.
                let restarted = try Server(base, producer: producer, admin: AccessControl.randomToken())
                try await restarted.start()
                let replay = try await restarted.api.post("/events/\(event)/intents", body, headers: [auth, ("Idempotency-Key", "shared")])
                #expect(replay.status == 202)
                #expect(replay["id"] == ids.first)
                #expect(replay.headers.contains { $0.0.lowercased() == "idempotent-replayed" && $0.1 == "true" })
                let other = try await servers[1].api.post(
                    "/events/\(event)/intents", #"{"customer": "c-1", "quantity": 2}"#,
                    headers: [auth, ("Idempotency-Key", "shared")])
                #expect(other.status == 422)
                #expect(other.error == "idempotency_key_reused")
                for server in [servers[1], restarted] { #expect(await server.process.terminateAll() == [0]) }
                #expect(try await base.count("intents") == committed.count)
            }
        }

        @Test("SIGTERM answers a held long-poll at once with the intent's current status, and the process exits 0 long before the wait would end")
        func shutdownAnswersLongPolls() async throws {
            try await withLiveAPI { base in
                let event = try await base.createGeneralAdmission(10)
                let producer = AccessControl.randomToken()
                let server = try Server(base, producer: producer, admin: AccessControl.randomToken())
                try await server.start()
                // No worker runs: the intent stays pending, so the long-poll can only end by its timeout or by shutdown.
                let accepted = try await server.api.post(
                    "/events/\(event)/intents", #"{"customer": "c-1", "quantity": 1}"#,
                    headers: [("Authorization", "Bearer \(producer)")])
                #expect(accepted.status == 202)
                let id = try #require(accepted["id"])
                let poll = Task { try await server.api.get("/intents/\(id)?wait=25") }
                try await Task.sleep(for: .milliseconds(500))
                let stopping = ContinuousClock.now
                let codes = await server.process.terminateAll()
                #expect(codes == [0], "the API must exit 0 on SIGTERM: \(codes)\n\(workerLogTail())")
                let reply = try await poll.value
                let waited = ContinuousClock.now - stopping
                #expect(reply.status == 200)
                #expect(reply["status"] == "pending")
                #expect(waited < .seconds(15), "shutdown waited out the long-poll: \(waited)")
            }
        }
    }
}
