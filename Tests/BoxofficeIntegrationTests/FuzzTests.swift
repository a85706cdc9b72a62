import BoxofficeAPI
import BoxofficeHarness
import BoxofficeMetrics
import Foundation
import Testing

/// The repository checkout these tests were built from.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The virtualenv `scripts/fuzz-api` uses; `.ci/run` creates it (schemathesis comes from PyPI).
let fuzzVirtualenv =
    ProcessInfo.processInfo.environment["FUZZ_VENV"]
    ?? repositoryRoot.appendingPathComponent(".build/fuzz-venv").path

extension IntegrationTests {
    @Suite("Hostile input")
    struct FuzzTests {
        @Test(
            "schemathesis, driven by /openapi.json, finds no 5xx, no crash and no response that breaks the document",
            .enabled(
                if: FileManager.default.isExecutableFile(atPath: fuzzVirtualenv + "/bin/schemathesis"),
                "needs schemathesis in \(fuzzVirtualenv): `.ci/run` installs it, or run scripts/fuzz-api once"))
        func schemathesis() async throws {
            let producer = AccessControl.randomToken()
            let admin = AccessControl.randomToken()
            // Metrics on, as `serve` runs by default: /metrics is in the document (a registry of its own,
            // so the Prometheus test's process-wide counters are not this run's).
            try await withLiveAPI(configure: {
                $0.access = .tokens(producer: producer, admin: admin)
                $0.metrics = BoxofficeMetrics()
            }) { api in
                // Workers settle what the fuzzer enqueues, so long-polls in its stateful phase end early.
                let workers = workerProcesses(api.database, batchSize: 64)
                try workers.spawn(1)
                let process = Process()
                process.executableURL = repositoryRoot.appendingPathComponent("scripts/fuzz-api")
                process.arguments = [api.baseURL]
                var environment = ProcessInfo.processInfo.environment
                environment["BOXOFFICE_ADMIN_TOKEN"] = admin
                environment["BOXOFFICE_PRODUCER_TOKEN"] = producer
                environment["FUZZ_VENV"] = fuzzVirtualenv
                environment["FUZZ_EXAMPLES"] = environment["FUZZ_EXAMPLES"] ?? "100"
                environment["FUZZ_STATE"] =
                    FileManager.default.temporaryDirectory
                    .appendingPathComponent("boxoffice-fuzz-\(getpid())").path
                process.environment = environment
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                try process.run()
                let text = await Task.detached { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }.value
                process.waitUntilExit()
                let codes = await workers.terminateAll()
                #expect(process.terminationStatus == 0, "the fuzzer found failures:\n\(text.suffix(20_000))")
                #expect(codes == [0])
                // The case count is the report's: print it for the run's log.
                let summary = text.split(separator: "\n").filter { $0.hasPrefix("fuzz-api: ") && $0.contains("test cases") }
                #expect(!summary.isEmpty, "no summary line from scripts/fuzz-api:\n\(text.suffix(5_000))")
                for line in summary { print(line) }
                // And what the stateful sequences got from each operation: following the document's links
                // (enqueue, await the outcome, then confirm, release or cancel), each transition reached an
                // intent a sequence made (an answer about that intent, not 404 for a drawn id).
                let stateful = text.split(separator: "\n").filter { $0.hasPrefix("fuzz-api: stateful ") }
                for line in stateful { print(line) }
                for transition in ["confirm", "release", "cancel"] {
                    let line = stateful.first { $0.hasPrefix("fuzz-api: stateful POST /intents/{intent}/\(transition): ") }
                    let reached = line.map { line in [" 200 x", " 403 x", " 409 x"].contains { line.contains($0) } } ?? false
                    #expect(reached, "no stateful sequence reached a real intent's \(transition): \(line.map(String.init) ?? "no such line")")
                }
                // The server is still whole after the onslaught.
                #expect(try await api.get("/health").status == 200)
            }
        }
    }
}
