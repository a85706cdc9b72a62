import AsyncHTTPClient
import BoxofficeAPI
import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import NIOCore
import Synchronization
import Testing

// Long on purpose: one attack per test (idle, slowloris, slow body, big head, long-polls, intake during
// an outage), each with its server, its client and the figures it prints; the helpers they share follow.

/// The `boxoffice` binary the hostile-client tests attack: the release build when `.ci/run` (or you)
/// built one from the current sources, else the debug build beside the tests. Figures in the README
/// come from the release build.
let hostileTarget: URL = {
    if let path = ProcessInfo.processInfo.environment["BOXOFFICE_HOSTILE_BINARY"] { return URL(fileURLWithPath: path) }
    func modified(_ path: String) -> Date? { (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date }
    let sources = repositoryRoot.appendingPathComponent("Sources")
    let newest = (FileManager.default.enumerator(atPath: sources.path)?.compactMap { modified(sources.path + "/" + ($0 as! String)) } ?? []).max()
    // `.build-release` is where a release build lives beside a debug one being edited (no shared lock).
    for folder in [".build", ".build-release"] {
        let release = repositoryRoot.appendingPathComponent("\(folder)/release/boxoffice")
        if let built = modified(release.path), let newest, newest <= built { return release }
    }
    return ChildProcesses.siblingExecutable()
}()

extension IntegrationTests {
    @Suite("Hostile clients")
    struct HostileClientTests {
        /// One `boxoffice serve` child (the hostile target) and what the test watches of it.
        struct Target {
            let process: ChildProcesses
            let port: Int
            let producer = AccessControl.randomToken()
            let logDirectory: URL

            init(_ api: LiveAPI, arguments: [String]) throws {
                port = try Loopback.freePort()
                logDirectory = workerLogDirectory.appendingPathComponent("hostile-\(UInt32.random(in: 0...UInt32.max))")
                try? FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
                process = ChildProcesses(
                    executable: hostileTarget, databaseURL: api.database.url,
                    arguments: ["--port", "\(port)", "--log-level", "info"] + arguments, logDirectory: logDirectory,
                    subcommand: "serve", environment: ["BOXOFFICE_PRODUCER_TOKEN": producer, "BOXOFFICE_ADMIN_TOKEN": AccessControl.randomToken()])
            }

            var baseURL: String { "http://127.0.0.1:\(port)" }
            var pid: Int32 { process.pids.first ?? 0 }

            func start(_ api: LiveAPI) async throws {
                try process.spawn(1)
                let unhealthy = try await poll(timeout: .seconds(30)) { (try? await Self.health(api, baseURL))?.0 != 200 ? "no 200" : nil }
                if unhealthy != nil {
                    Issue.record("boxoffice serve did not answer /health within 30 s\n\(log.suffix(3_000))")
                    throw CancellationError()
                }
            }

            static func health(_ api: LiveAPI, _ baseURL: String) async throws -> (Int, Duration) {
                let started = ContinuousClock.now
                let response = try await api.http.execute(HTTPClientRequest(url: baseURL + "/health"), timeout: .seconds(10))
                _ = try await response.body.collect(upTo: 1 << 16)
                return (Int(response.status.code), ContinuousClock.now - started)
            }

            /// Resident memory (VmRSS) and open descriptors of the server now.
            var residentKilobytesAndDescriptors: (Int, Int)? {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                    let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                    let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? ""),
                    let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
                else { return nil }
                return (kilobytes, descriptors)
            }

            var isAlive: Bool { pid > 0 && kill(pid, 0) == 0 && process.count == 1 }

            var log: String {
                (try? String(contentsOfFile: logDirectory.appendingPathComponent("serve-1.log").path, encoding: .utf8)) ?? ""
            }

            /// The JSON log lines at warning or above.
            var warningLines: [String] {
                log.split(separator: "\n").map(String.init).filter {
                    $0.contains(#""level":"warning""#) || $0.contains(#""level":"error""#) || $0.contains(#""level":"critical""#)
                }
            }

            /// The client-limit counters the server logged at shutdown.
            var shutdownCounters: [String: Int] {
                guard let line = log.split(separator: "\n").last(where: { $0.contains("client limits at shutdown") }),
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else { return [:] }
                return object.compactMapValues { ($0 as? String).flatMap(Int.init) ?? ($0 as? Int) }
            }
        }

        /// What scripts/hostile-client reports for one kind of connection.
        struct Figures: Sendable, CustomStringConvertible {
            var counts: [String: Int] = [:]
            var seconds: [String: Double] = [:]
            var statuses: [String: Int] = [:]

            subscript(_ name: String) -> Int { counts[name] ?? 0 }
            var description: String { "\(counts) \(seconds) statuses \(statuses)" }
        }

        /// Runs scripts/hostile-client with `arguments` and returns its report (kind → figures).
        static func hostileClient(_ arguments: [String]) async throws -> [String: Figures] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/hostile-client").path] + arguments
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.standardError
            // Waits without blocking a thread of the test's small cooperative pool (the buyer and the
            // sampler run there); the report is one short line, well within the pipe's buffer.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                process.terminationHandler = { _ in continuation.resume() }
                do { try process.run() } catch { continuation.resume() }
            }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            guard process.terminationStatus == 0,
                let report = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let kinds = report["kinds"] as? [String: [String: Any]]
            else {
                Issue.record("hostile-client \(arguments) failed (exit \(process.terminationStatus)): \(String(decoding: data, as: UTF8.self))")
                return [:]
            }
            return kinds.mapValues { raw in
                var figures = Figures()
                for (name, value) in raw {
                    if name.contains("seconds") {
                        if let value = value as? Double { figures.seconds[name] = value }
                    } else if let value = value as? Int {
                        figures.counts[name] = value
                    } else if let value = value as? [String: Int] {
                        figures.statuses = value
                    }
                }
                return figures
            }
        }

        /// A well-behaved buyer during an attack: a health check and an intent every 200 ms on a kept-alive
        /// connection; the slowest answer and anything that was not 200/202.
        final class Buyer: Sendable {
            let slowest = Mutex<Duration>(.zero)
            let failures = Mutex<[String]>([])
            let requests = Atomic<Int>(0)

            func run(_ api: LiveAPI, target: Target, event: Int64, until stop: StopFlag) async {
                while !stop.isSet {
                    let started = ContinuousClock.now
                    do {
                        let (status, _) = try await Target.health(api, target.baseURL)
                        var request = HTTPClientRequest(url: target.baseURL + "/events/\(event)/intents")
                        request.method = .POST
                        request.headers.add(name: "Authorization", value: "Bearer \(target.producer)")
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(ByteBuffer(string: #"{"customer": "well-behaved", "quantity": 1}"#))
                        let response = try await api.http.execute(request, timeout: .seconds(10))
                        _ = try await response.body.collect(upTo: 1 << 16)
                        if status != 200 || response.status.code != 202 {
                            failures.withLock { $0.append("health \(status), intake \(response.status.code)") }
                        }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                    let elapsed = ContinuousClock.now - started
                    slowest.withLock { $0 = max($0, elapsed) }
                    requests.add(1, ordering: .relaxed)
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }

        /// Samples the target's memory and descriptors every 200 ms until stopped.
        final class Sampler: Sendable {
            let samples = Mutex<[(kilobytes: Int, descriptors: Int)]>([])

            func run(_ target: Target, until stop: StopFlag) async {
                while !stop.isSet {
                    if let sample = target.residentKilobytesAndDescriptors { samples.withLock { $0.append(sample) } }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }

            var peakKilobytes: Int { samples.withLock { $0.map(\.kilobytes).max() ?? 0 } }
            var peakDescriptors: Int { samples.withLock { $0.map(\.descriptors).max() ?? 0 } }
        }

        static let timeoutSeconds = 4.0

        @Test(
            "30,000 connections against a 20,000-descriptor server from 3 processes (idle, slowloris heads, slow bodies, unfinished big heads): it never dies, closes each within its timeout, keeps answering a buyer within 1 s, and gives its memory back"
        )
        func connectionFlood() async throws {
            try await withLiveAPI { api in
                let timeout = Self.timeoutSeconds
                // 20,000 descriptors whatever the machine's limit: the attack opens 30,000 connections.
                let target = try Target(
                    api,
                    arguments: [
                        "--client-idle-seconds", "\(timeout)", "--client-head-seconds", "\(timeout)", "--client-body-seconds", "\(timeout)",
                        "--open-files-max", "20000",
                    ])
                try await target.start(api)
                let event = try await api.createGeneralAdmission(1_000_000)
                try await Task.sleep(for: .seconds(1))
                let baseline = try #require(target.residentKilobytesAndDescriptors)

                let stop = StopFlag()
                let buyer = Buyer()
                let sampler = Sampler()
                let started = ContinuousClock.now
                let reports = try await withThrowingTaskGroup(of: [String: Figures]?.self) { group in
                    group.addTask {
                        await buyer.run(api, target: target, event: event, until: stop)
                        return nil
                    }
                    group.addTask {
                        await sampler.run(target, until: stop)
                        return nil
                    }
                    for (index, source) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].enumerated() {
                        group.addTask {
                            try await Self.hostileClient(
                                [
                                    "--port", "\(target.port)", "--source", source, "--duration", "45", "--ramp", "6",
                                    "--idle", "3000", "--slowloris", "3000", "--slow-body", "2500", "--big-header", "1500",
                                    "--path", "/events/\(event)/intents", "--header-bytes", "\(15_000 + index)",
                                ] + (index == 0 ? ["--token", target.producer] : []))
                        }
                    }
                    var reports: [[String: Figures]] = []
                    for try await report in group {
                        guard let report else { continue }
                        reports.append(report)
                        if reports.count == 3 { break }
                    }
                    // The attack is over: every connection the server held must be gone within a timeout
                    // (plus the sampler's and the trimmer's periods), and its memory given back.
                    let quiet = ContinuousClock.now + .seconds(timeout + 10)
                    while ContinuousClock.now < quiet {
                        if let (_, descriptors) = target.residentKilobytesAndDescriptors, descriptors <= baseline.1 + 8 { break }
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    try await Task.sleep(for: .seconds(6))
                    stop.set()
                    try await group.waitForAll()
                    return reports
                }
                let attackSeconds = OpenLoad.seconds(ContinuousClock.now - started)
                let after = try #require(target.residentKilobytesAndDescriptors, "the server died")

                #expect(target.isAlive, "the server died under the attack\n\(target.log.suffix(3_000))")
                let failures = buyer.failures.withLock { $0 }
                #expect(failures.isEmpty, "the well-behaved buyer was refused: \(failures.prefix(5))")
                let slowest = buyer.slowest.withLock { $0 }
                #expect(slowest < .seconds(1), "the buyer waited \(slowest) for an answer")
                #expect(buyer.requests.load(ordering: .relaxed) > 50)

                var totals: [String: [String: Int]] = [:]
                for report in reports {
                    for (kind, figures) in report {
                        for (name, value) in figures.counts { totals[kind, default: [:]][name, default: 0] += value }
                    }
                }
                let attempts = totals.values.reduce(0) { $0 + ($1["attempts"] ?? 0) }
                #expect(attempts == 30_000)
                for kind in ["idle", "slowloris", "slow-body", "big-header"] {
                    #expect((totals[kind]?["closed_by_server"] ?? 0) > 1_000, "\(kind): \(totals[kind] ?? [:])")
                }
                // Closed by the server within its timeout of being accepted: nothing it holds outlives the
                // attack by more than one timeout.
                #expect(after.1 <= baseline.1 + 8, "descriptors: \(baseline.1) before, \(after.1) after the attack")
                #expect(sampler.peakDescriptors <= 4_096 + 128, "descriptors peaked at \(sampler.peakDescriptors)")
                #expect(await target.process.terminateAll() == [0], "\(target.log.suffix(3_000))")
                let logged = target.shutdownCounters
                for name in ["idle_closed", "head_timeouts", "body_timeouts"] {
                    #expect((logged[name] ?? 0) > 0, "\(name) never fired: \(logged)")
                }
                // Memory: bounded during the attack, and handed back afterwards.
                #expect(sampler.peakKilobytes < 400 * 1_024, "peak RSS \(sampler.peakKilobytes / 1_024) MB")
                #expect(after.0 < baseline.0 + 40 * 1_024, "RSS \(baseline.0 / 1_024) MB before, \(after.0 / 1_024) MB after")
                print(
                    """
                    hostile connections (\(hostileTarget.path)): \(attempts) attempts in \(String(format: "%.0f", attackSeconds)) s; \
                    closed by server: \(totals.mapValues { $0["closed_by_server"] ?? 0 }); still open at client end: \(totals.mapValues { $0["still_open"] ?? 0 }); \
                    408s: \(reports.map { $0["slowloris"]?.statuses["408"] ?? 0 }.reduce(0, +)) slowloris, \
                    \(reports.map { $0["slow-body"]?.statuses["408"] ?? 0 }.reduce(0, +)) slow bodies; \
                    idle close after p50 \(reports.compactMap { $0["idle"]?.seconds["close_seconds_p50"] }) s; \
                    buyer: \(buyer.requests.load(ordering: .relaxed)) rounds, slowest \(slowest); \
                    RSS \(baseline.0 / 1_024) MB → peak \(sampler.peakKilobytes / 1_024) MB → \(after.0 / 1_024) MB after; \
                    descriptors \(baseline.1) → peak \(sampler.peakDescriptors) → \(after.1); server counters \(logged)
                    """)
            }
        }

        @Test(
            "10,000 long-polls on one intent: at most the per-intent cap are held, the rest answered at once with Retry-After; 2,000 long-polls on 2,000 intents are held within the process cap, memory per long-poll measured"
        )
        func longPolls() async throws {
            try await withLiveAPI { api in
                let target = try Target(api, arguments: ["--long-polls-max", "2048", "--long-polls-per-intent-max", "4"])
                try await target.start(api)
                let event = try await api.createGeneralAdmission(1_000_000)
                // No worker runs: every intent stays pending, so a long-poll ends only by its timeout or a refusal.
                var ids: [String] = []
                for chunk in 0..<2 {
                    let items = (0..<1_000).map { #"{"customer": "c-\#(chunk)-\#($0)", "quantity": 1}"# }.joined(separator: ",")
                    let (status, object) = try await api.sendJSON(
                        .POST, "/events/\(event)/intents/batch", body: "[\(items)]")
                    #expect(status == 200)
                    ids += ((object["results"] as? [[String: Any]]) ?? []).compactMap { $0["id"] as? String }
                }
                _ = try #require(ids.count == 2_000 ? ids : nil, "bulk intake returned \(ids.count) ids")
                // The in-process API above wrote them; the target reads the same database.
                try await Task.sleep(for: .seconds(1))
                let baseline = try #require(target.residentKilobytesAndDescriptors)

                let one = try await Self.hostileClient([
                    "--port", "\(target.port)", "--long-poll", "10000", "--path", "/intents/\(ids[0])?wait=30", "--duration", "40", "--ramp", "3",
                ])
                let poll = try #require(one["long-poll"])
                let answered = poll.seconds["answer_seconds_p50"] ?? -1
                // A refused long-poll is answered with Retry-After; a held one waits out its 30 s without it.
                let held = (poll.statuses["200"] ?? 0) - poll["retry_after"]
                #expect(poll.statuses["200"] == 10_000, "\(poll)")
                #expect(held <= 4, "\(held) long-polls on one intent were held: \(poll)")
                #expect(poll["retry_after"] >= 10_000 - 4, "\(poll)")
                let afterOne = try #require(target.residentKilobytesAndDescriptors)

                // Many intents, each polled once: all held up to the process cap, and what each costs.
                let paths = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-longpoll-\(getpid()).txt")
                try ids.map { "/intents/\($0)?wait=10" }.joined(separator: "\n").write(to: paths, atomically: true, encoding: .utf8)
                let sampler = Sampler()
                let stop = StopFlag()
                let many = try await withThrowingTaskGroup(of: [String: Figures]?.self) { group in
                    group.addTask {
                        await sampler.run(target, until: stop)
                        return nil
                    }
                    group.addTask {
                        try await Self.hostileClient([
                            "--port", "\(target.port)", "--long-poll", "2000", "--paths-file", paths.path, "--duration", "30", "--ramp", "1",
                        ])
                    }
                    var result: [String: Figures] = [:]
                    for try await report in group {
                        if let report {
                            result = report
                            stop.set()
                        }
                    }
                    return result
                }
                let polls = try #require(many["long-poll"])
                let heldMany = (polls.statuses["200"] ?? 0) - polls["retry_after"]
                #expect(heldMany == 2_000, "\(polls)")
                let perPollBytes = (sampler.peakKilobytes - afterOne.0) * 1_024 / max(heldMany, 1)
                #expect(target.isAlive)
                #expect(await target.process.terminateAll() == [0])
                print(
                    """
                    long-polls: one intent, 10,000 sent: \(held) held, \(poll["retry_after"]) answered at once with Retry-After (p50 \(answered) s); \
                    2,000 intents: \(heldMany) held; RSS \(baseline.0 / 1_024) MB → \(afterOne.0 / 1_024) MB after the one-intent wave → \
                    peak \(sampler.peakKilobytes / 1_024) MB holding 2,000: ≈ \(perPollBytes / 1_024) KB per held long-poll (connection included)
                    """)
            }
        }

        @Test(
            "PostgreSQL stopped under 5,000 concurrent intake requests: each answered within its bound + 1 s, nothing written late, a bounded number of log lines",
            .enabled(if: ProcessInfo.processInfo.environment["DATABASE_URL"] == nil, "stops the private cluster"))
        func databaseStoppedUnderIntake() async throws {
            let cluster = try #require(try TestCluster.server.get().cluster)
            try await withLiveAPI { api in
                let waitMilliseconds = 5_000
                let target = try Target(api, arguments: ["--database-wait-milliseconds", "\(waitMilliseconds)", "--client-connections-max", "8000"])
                try await target.start(api)
                let event = try await api.createGeneralAdmission(1_000_000)
                // The target learns the event (and caches its layout) before the database goes away.
                var warm = HTTPClientRequest(url: target.baseURL + "/events/\(event)/intents")
                warm.method = .POST
                warm.headers.add(name: "Authorization", value: "Bearer \(target.producer)")
                warm.body = .bytes(ByteBuffer(string: #"{"customer": "warm", "quantity": 1}"#))
                #expect(try await api.http.execute(warm, timeout: .seconds(10)).status.code == 202)
                let warningsBefore = target.warningLines.count

                let report = try await withThrowingTaskGroup(of: [String: Figures]?.self) { group in
                    group.addTask {
                        try await Self.hostileClient([
                            "--port", "\(target.port)", "--intake", "5000", "--path", "/events/\(event)/intents",
                            "--token", target.producer, "--duration", "30", "--ramp", "1",
                        ])
                    }
                    group.addTask {
                        try await Task.sleep(for: .milliseconds(300))
                        try cluster.stopServer()
                        return nil
                    }
                    var result: [String: Figures] = [:]
                    for try await report in group { if let report { result = report } }
                    return result
                }
                let intake = try #require(report["intake"])
                let statuses = intake.statuses
                let slowest = intake.seconds["answer_seconds_max"] ?? .infinity
                try cluster.startServer()
                // Anything a timed-out request left behind would be written once the database is back.
                try await Task.sleep(for: .milliseconds(waitMilliseconds + 2_000))
                let committed = try await withStore(api.database, logger: testLogger) { store in
                    var count = 0
                    for try await value in try await store.client.query("SELECT count(*)::int FROM intents WHERE customer = 'hostile'").decode(
                        Int.self)
                    {
                        count = value
                    }
                    return count
                }
                let warnings = target.warningLines.count - warningsBefore
                #expect(target.isAlive)
                #expect(await target.process.terminateAll() == [0])

                #expect(statuses.values.reduce(0, +) == 5_000, "every request answered: \(intake)")
                #expect(Set(statuses.keys).isSubset(of: ["202", "503"]), "\(statuses)")
                #expect((statuses["503"] ?? 0) > 0, "no request met the stopped database: \(statuses)")
                #expect(slowest <= Double(waitMilliseconds) / 1_000 + 1, "a request was answered after \(slowest) s")
                #expect(committed == statuses["202"] ?? 0, "\(committed) intents written, \(statuses["202"] ?? 0) answered 202")
                #expect(warnings <= 20, "\(warnings) warning lines:\n\(target.warningLines.suffix(30).joined(separator: "\n"))")
                print(
                    """
                    database stopped under intake: 5,000 requests, \(statuses["202"] ?? 0) accepted (\(committed) written), \
                    \(statuses["503"] ?? 0) answered 503; answer p50 \(intake.seconds["answer_seconds_p50"] ?? -1) s, \
                    p99 \(intake.seconds["answer_seconds_p99"] ?? -1) s, max \(slowest) s (bound \(waitMilliseconds / 1_000) s); \(warnings) warning lines
                    """)
            }
        }
    }
}

/// Tells the watchers of a test to stop.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Sends `bytes` on a fresh loopback connection and reads until the server closes it or `timeout`
/// passes: for requests no HTTP client library would send (unfinished heads, HTTP/1.0, garbage).
func rawExchange(port: Int, _ bytes: [UInt8], timeout: Double) async -> (response: String, seconds: Double, closedByServer: Bool) {
    // Blocking socket calls run on a thread of their own, never on the cooperative pool that the
    // in-process server's handlers need.
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: rawExchangeBlocking(port: port, bytes, timeout: timeout)) }.start()
    }
}

private func rawExchangeBlocking(port: Int, _ bytes: [UInt8], timeout: Double) -> (response: String, seconds: Double, closedByServer: Bool) {
    do {
        guard let descriptor = Loopback.connect(port: port) else { return ("", 0, false) }
        defer { close(descriptor) }
        var wait = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let started = ContinuousClock.now
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while OpenLoad.seconds(ContinuousClock.now - started) < timeout {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count == 0 { return (String(decoding: received, as: UTF8.self), OpenLoad.seconds(ContinuousClock.now - started), true) }
            if count > 0 { received += buffer[0..<count] }
            if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                return (String(decoding: received, as: UTF8.self), OpenLoad.seconds(ContinuousClock.now - started), true)
            }
        }
        return (String(decoding: received, as: UTF8.self), OpenLoad.seconds(ContinuousClock.now - started), false)
    }
}

extension IntegrationTests.HostileClientTests {
    @Test(
        "Each client bound answers the way README.md says: idle closed, 408 JSON for a slow head and a slow body, 431 JSON for a big head, 400 JSON for garbage, 413 from Content-Length at once, HTTP/1.0 closed after its answer unless keep-alive, HEAD on GET routes, 405 lists HEAD"
    )
    func clientBoundsAnswer() async throws {
        try await withLiveAPI { api in
            let target = try Target(api, arguments: ["--client-idle-seconds", "1", "--client-head-seconds", "1", "--client-body-seconds", "1"])
            try await target.start(api)
            let event = try await api.createGeneralAdmission(10)
            let port = target.port
            func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

            let idle = await rawExchange(port: port, [], timeout: 5)
            #expect(idle.closedByServer && idle.response.isEmpty && idle.seconds >= 0.9 && idle.seconds < 2.5, "\(idle)")

            let slowHead = await rawExchange(port: port, bytes("GET /health HTTP/1.1\r\nHost: x\r\n"), timeout: 5)
            #expect(slowHead.closedByServer && slowHead.response.hasPrefix("HTTP/1.1 408"), "\(slowHead)")
            #expect(slowHead.response.contains(#""error":"request_timeout""#))

            let slowBody = await rawExchange(
                port: port,
                bytes(
                    "POST /events/\(event)/intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(target.producer)\r\nContent-Length: 100\r\n\r\n{"),
                timeout: 5)
            #expect(slowBody.closedByServer && slowBody.response.hasPrefix("HTTP/1.1 408") && slowBody.seconds < 2.5, "\(slowBody)")

            let bigHead = await rawExchange(
                port: port, bytes("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"), timeout: 5)
            #expect(
                bigHead.response.hasPrefix("HTTP/1.1 431") && bigHead.response.contains(#""error":"header_too_large""#),
                "\(bigHead.response.prefix(300))")

            let garbage = await rawExchange(port: port, bytes("\u{1}\u{2} nonsense\r\n\r\n"), timeout: 5)
            #expect(
                garbage.response.hasPrefix("HTTP/1.1 400") && garbage.response.contains(#""error":"malformed_request""#),
                "\(garbage.response.prefix(300))")

            let huge = await rawExchange(
                port: port,
                bytes(
                    "POST /events/\(event)/intents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(target.producer)\r\nContent-Length: 1000000000\r\n\r\n{\""
                ), timeout: 5)
            #expect(huge.response.hasPrefix("HTTP/1.1 413") && huge.response.contains(#""error":"body_too_large""#) && huge.seconds < 0.9, "\(huge)")
            #expect(huge.closedByServer)

            let http10 = await rawExchange(port: port, bytes("GET /health HTTP/1.0\r\n\r\n"), timeout: 5)
            #expect(http10.response.contains(" 200 ") && http10.closedByServer && http10.seconds < 0.9, "\(http10)")
            let kept = await rawExchange(port: port, bytes("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), timeout: 5)
            #expect(kept.response.lowercased().contains("connection: keep-alive") && kept.seconds >= 0.9, "kept-alive 1.0 closed early: \(kept)")

            let head = await rawExchange(port: port, bytes("HEAD /events/\(event) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), timeout: 5)
            #expect(head.response.hasPrefix("HTTP/1.1 200") && head.response.hasSuffix("\r\n\r\n"), "HEAD: \(head.response)")
            let delete = await rawExchange(port: port, bytes("DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), timeout: 5)
            #expect(delete.response.hasPrefix("HTTP/1.1 405") && delete.response.lowercased().contains("allow: get, head"), "\(delete.response)")

            // A request that asks to switch protocols is answered and its connection closed; bytes sent
            // after it (which the HTTP decoder would otherwise keep, unbounded) end the connection at once.
            let upgrade = await rawExchange(
                port: port,
                bytes(
                    "GET /health HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n" + String(repeating: "z", count: 100_000)),
                timeout: 5)
            #expect(upgrade.closedByServer && upgrade.seconds < 0.9, "\(upgrade.response.prefix(300))")

            // A client that pipelines requests and never reads the answers is dropped once its socket
            // has been full for the send timeout (the body timeout, 1 s here).
            let stalled = try await Self.hostileClient([
                "--port", "\(port)", "--no-read", "4", "--path", "/openapi.json", "--duration", "6", "--ramp", "0",
            ])
            #expect(stalled["no-read"]?["closed_by_server"] == 4, "\(stalled)")

            #expect(target.isAlive)
            #expect(await target.process.terminateAll() == [0])
            #expect((target.shutdownCounters["send_stalls"] ?? 0) >= 4, "\(target.shutdownCounters)")
        }
    }

    @Test(
        "Bulk intake: a body of a million tiny items is refused as too many before it is parsed whole; bulk requests in progress are bounded (503 overloaded) and the bound frees itself"
    )
    func bulkBounds() async throws {
        try await withLiveAPI(configure: { $0.bulkRequestsMax = 2 }) { api in
            let event = try await api.createGeneralAdmission(10)
            let tiny = "[" + Array(repeating: "1", count: 500_000).joined(separator: ",") + "]"
            let refused = try await api.post("/events/\(event)/intents/batch", tiny)
            #expect(refused.status == 413 && refused.error == "too_many_items", "\(refused.status) \(refused.fields)")

            // Two bulk requests stuck mid-body hold both places; a third is refused at once.
            let port = Int(api.baseURL.split(separator: ":").last!)!
            let head = "POST /events/\(event)/intents/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n["
            async let first = rawExchange(port: port, Array(head.utf8), timeout: 3)
            async let second = rawExchange(port: port, Array(head.utf8), timeout: 3)
            try await Task.sleep(for: .milliseconds(500))
            let third = try await api.post("/events/\(event)/intents/batch", #"[{"customer": "c", "quantity": 1}]"#)
            #expect(third.status == 503 && third.error == "overloaded", "\(third.status) \(third.fields)")
            #expect(third.headers.contains { $0.0.lowercased() == "retry-after" })
            _ = await (first, second)
            // The stuck ones gave up (the client closed): their places are free again.
            let deadline = ContinuousClock.now + .seconds(15)
            var fourth = try await api.post("/events/\(event)/intents/batch", #"[{"customer": "c", "quantity": 1}]"#)
            while fourth.status == 503 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                fourth = try await api.post("/events/\(event)/intents/batch", #"[{"customer": "c", "quantity": 1}]"#)
            }
            #expect(fourth.status == 200, "\(fourth.status) \(fourth.fields)")
        }
    }
}
