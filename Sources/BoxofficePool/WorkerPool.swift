import AsyncHTTPClient
import BoxofficeMetrics
import EmbeddedPostgres
import Foundation
import Logging
// Long on purpose: the supervisor is one state machine (children, back-off, scaling, shutdown) whose
// transitions share its state; the policy (RestartPolicy.swift) and the signals (ScaleSignals.swift)
// are already apart.
import NIOCore
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `boxoffice work --processes N`: a supervisor of N `boxoffice work` child processes on one machine.
///
/// It replaces a child that exits unasked (after a back-off, see ``RestartPolicy``) and gives up, with
/// an error, when children keep failing; SIGTTIN adds a child and SIGTTOU removes the newest one
/// (never below 1); on graceful shutdown (SIGTERM, SIGINT) it asks every child to finish its batch in
/// hand and waits for all of them. Each child runs in a process group of its own (a terminal's Ctrl-C
/// reaches only the supervisor, which passes it on as SIGTERM), keeps the supervisor's stderr for its
/// logs, exits by itself if the supervisor dies (`--parent-pid`), and writes one line on stdout once
/// it handles signals: `ready`, with ` metrics_port=N` when it serves metrics. A child is sent SIGTERM
/// only once ready (or after ``Configuration/readinessWaitMax``), since a signal that arrives before
/// the handler is in place kills instead of stopping it. The children that serve metrics are scraped
/// by ``exposition()``, which serves the pool as one endpoint.
public final class WorkerPool: Service, Sendable {
    public struct Configuration: Sendable {
        /// The largest pool: `--processes` and SIGTTIN stop there (each child holds up to 2 database connections).
        public static let processesMax = 64
        /// How long a child asked to stop before it reported ready is waited for before it is signalled anyway.
        public static let readinessWaitMax: Duration = .seconds(10)
        /// How long one child's metrics are waited for during a scrape of the pool.
        public static let scrapeTimeout: Duration = .seconds(2)
        /// How often the supervisor looks at its children (exits, readiness, signals, due restarts).
        static let tick: Duration = .milliseconds(50)

        /// Children to run at start (1...``processesMax``).
        public var processes: Int
        /// The `boxoffice` binary.
        public var executable: String
        /// The child's arguments after the binary (`work` and its options); the pool adds `--parent-pid`,
        /// `--report-ready` and `--pool-worker` (its slot, logged on each of its lines with its pid).
        public var arguments: [String]
        public var restart = RestartPolicy()
        /// How long a stop waits for the children to finish their batches before it SIGKILLs those left.
        public var stopTimeout: Duration = .seconds(25)

        public init(processes: Int, executable: String, arguments: [String]) {
            self.processes = processes
            self.executable = executable
            self.arguments = arguments
        }
    }

    let configuration: Configuration
    let logger: Logger
    let metrics: BoxofficeMetrics
    let poolMetrics: PoolMetrics
    /// The ready children that serve metrics, by worker slot: what a scrape of the pool reaches.
    private let scrapeTargets = Mutex<[(worker: Int, port: Int)]>([])

    public init(configuration: Configuration, logger: Logger, metrics: BoxofficeMetrics) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.poolMetrics = PoolMetrics(metrics)
    }

    public func run() async throws {
        let signals = await ScaleSignals()
        var pool = Children(configuration: configuration, logger: logger, metrics: poolMetrics)
        logger.info("worker pool started", metadata: ["processes": "\(configuration.processes)", "supervisor_pid": "\(getpid())"])
        var gaveUp: String?
        while gaveUp == nil && !Task.isShuttingDownGracefully && !Task.isCancelled {
            let (up, down) = signals.take()
            for _ in 0..<up { pool.scaleUp(now: .now) }
            for _ in 0..<down { pool.scaleDown() }
            gaveUp = pool.tick(now: .now, starting: true)
            publish(pool)
            await pause()
        }
        logger.info("worker pool stopping: each worker finishes its batch in hand", metadata: ["workers": "\(pool.children.count)"])
        pool.stopAll()
        let deadline = ContinuousClock.now + configuration.stopTimeout
        while !pool.children.isEmpty && ContinuousClock.now < deadline {
            _ = pool.tick(now: .now, starting: false)
            publish(pool)
            await pause()
        }
        pool.killAll()
        publish(pool)
        if let gaveUp { throw WorkerPoolGaveUp(description: gaveUp) }
        logger.info("worker pool stopped")
    }

    /// One tick; a cancelled task still waits it out (the children must be seen to the end either way).
    private func pause() async {
        if Task.isCancelled {
            usleep(UInt32(Configuration.tick.components.attoseconds / 1_000_000_000_000))
        } else {
            try? await Task.sleep(for: Configuration.tick)
        }
    }

    private func publish(_ pool: Children) {
        poolMetrics.update(desired: pool.desired, alive: pool.children.count)
        let targets = pool.children.values.filter { !$0.stopRequested }.compactMap { child in child.metricsPort.map { (child.slot, $0) } }
        scrapeTargets.withLock { $0 = targets.sorted { $0.0 < $1.0 } }
    }

    /// The pool's metrics: every ready child's exposition with a `worker` label (its slot, below the
    /// largest the pool has been), then the supervisor's own (`boxoffice_pool_*`), as one text.
    public func exposition() async -> [UInt8] {
        let targets = scrapeTargets.withLock { $0 }
        let scraped = await withTaskGroup(of: (Int, String?).self) { group in
            for target in targets { group.addTask { (target.worker, await Self.scrape(port: target.port)) } }
            var all: [(Int, String?)] = []
            for await result in group { all.append(result) }
            return all.sorted { $0.0 < $1.0 }
        }
        var parts: [(label: (name: String, value: String)?, text: String)] = []
        for (worker, text) in scraped {
            guard let text else {
                poolMetrics.scrapeFailed()
                continue
            }
            parts.append((("worker", "\(worker)"), text))
        }
        parts.append((nil, String(decoding: await metrics.exposition(), as: UTF8.self)))
        return Array(PrometheusText.merge(parts).utf8)
    }

    static func scrape(port: Int) async -> String? {
        let request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics")
        let timeout = TimeAmount.milliseconds(Int64(Configuration.scrapeTimeout.components.seconds * 1_000))
        guard let response = try? await HTTPClient.shared.execute(request, timeout: timeout), response.status == .ok,
            let body = try? await response.body.collect(upTo: 16 << 20)
        else { return nil }
        return String(buffer: body)
    }
}

/// The pool gave up: its children kept failing.
public struct WorkerPoolGaveUp: Error, CustomStringConvertible {
    public let description: String
}

/// One child process of the pool.
struct Child {
    let pid: pid_t
    /// Its place in the pool, 0..<the largest size the pool has had: the `worker` label of its metrics.
    let slot: Int
    let started: ContinuousClock.Instant
    /// The read end of its stdout (non-blocking), where it reports readiness.
    let output: Int32
    var pendingLine: [UInt8] = []
    var outputClosed = false
    var ready = false
    var metricsPort: Int?
    /// The supervisor asked it to stop (scale-down or shutdown): its exit is not a failure.
    var stopRequested = false
    var signalled = false
}

/// The supervisor's bookkeeping, touched by its loop only.
struct Children {
    let configuration: WorkerPool.Configuration
    let logger: Logger
    let metrics: PoolMetrics
    var desired: Int
    var children: [pid_t: Child] = [:]
    /// Slots with no child yet, and when each one's (re)start is due.
    var waiting: [Int: ContinuousClock.Instant] = [:]
    var policy: RestartPolicy

    init(configuration: WorkerPool.Configuration, logger: Logger, metrics: PoolMetrics) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.desired = configuration.processes
        self.policy = configuration.restart
        let now = ContinuousClock.now
        for slot in 0..<configuration.processes { waiting[slot] = now }
    }

    /// SIGTTIN: one more child, in the lowest free slot.
    mutating func scaleUp(now: ContinuousClock.Instant) {
        guard desired < WorkerPool.Configuration.processesMax else {
            logger.warning("SIGTTIN ignored: the pool is at its largest", metadata: ["processes": "\(desired)"])
            return
        }
        let taken = Set(waiting.keys).union(children.values.filter { !$0.stopRequested }.map(\.slot))
        let slot = (0...).first { !taken.contains($0) }!
        desired += 1
        waiting[slot] = now
        logger.info("SIGTTIN: adding a worker", metadata: ["processes": "\(desired)", "worker": "\(slot)"])
    }

    /// SIGTTOU: one child fewer: a restart still waiting is dropped, else the newest child is asked to stop.
    mutating func scaleDown() {
        guard desired > 1 else {
            logger.warning("SIGTTOU ignored: the pool keeps at least one worker", metadata: ["processes": "\(desired)"])
            return
        }
        desired -= 1
        if let slot = waiting.keys.max() {
            waiting[slot] = nil
            logger.info("SIGTTOU: removing a worker not yet started", metadata: ["processes": "\(desired)", "worker": "\(slot)"])
        } else if let newest = children.values.filter({ !$0.stopRequested }).max(by: { $0.started < $1.started }) {
            children[newest.pid]?.stopRequested = true
            logger.info(
                "SIGTTOU: stopping the newest worker after its batch in hand",
                metadata: ["processes": "\(desired)", "pid": "\(newest.pid)", "worker": "\(newest.slot)"])
        }
    }

    /// Reads readiness, reaps exits (scheduling replacements), signals children asked to stop, and (when
    /// `starting`) starts the slots whose time has come. Returns why the pool gives up, if it does.
    mutating func tick(now: ContinuousClock.Instant, starting: Bool) -> String? {
        for pid in Array(children.keys) { readOutput(pid) }
        var gaveUp: String?
        for pid in Array(children.keys) {
            guard let status = Self.reap(pid), let child = children.removeValue(forKey: pid) else { continue }
            close(child.output)
            let metadata: Logger.Metadata = [
                "pid": "\(pid)", "worker": "\(child.slot)", "status": "\(status)",
                "seconds_up": "\(String(format: "%.1f", (now - child.started).secondsValue))",
            ]
            if child.stopRequested {
                logger.info("worker process stopped", metadata: metadata)
                continue
            }
            metrics.restarted()
            if let delay = policy.failed(at: now) {
                waiting[child.slot] = now + delay
                logger.warning(
                    "worker process exited unasked; restarting it",
                    metadata: metadata.merging(
                        ["restart_in_ms": "\(delay.components.seconds * 1_000 + delay.components.attoseconds / 1_000_000_000_000_000)"]
                    ) { $1 })
            } else {
                logger.error("worker process exited unasked", metadata: metadata)
                gaveUp = failureSummary()
            }
        }
        if let gaveUp {
            logger.error("worker processes keep failing: stopping the pool", metadata: ["reason": "\(gaveUp)"])
            return gaveUp
        }
        for (pid, child) in children where child.stopRequested && !child.signalled {
            guard child.ready || now - child.started >= WorkerPool.Configuration.readinessWaitMax else { continue }
            kill(pid, SIGTERM)
            children[pid]?.signalled = true
        }
        guard starting else { return nil }
        for (slot, due) in waiting.sorted(by: { $0.key < $1.key }) where due <= now {
            waiting[slot] = nil
            if let reason = start(slot: slot, now: now) {
                logger.error("worker processes keep failing: stopping the pool", metadata: ["reason": "\(reason)"])
                return reason
            }
        }
        return nil
    }

    /// Starts a child in `slot`; a spawn that fails counts as a failure of the child.
    mutating func start(slot: Int, now: ContinuousClock.Instant) -> String? {
        let arguments = configuration.arguments + ["--parent-pid", "\(getpid())", "--report-ready", "--pool-worker", "\(slot)"]
        do {
            let (pid, output) = try spawn(configuration.executable, arguments, cwd: nil, inheritsStandardError: true)
            _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
            children[pid] = Child(pid: pid, slot: slot, started: now, output: output)
            logger.info("worker process started", metadata: ["pid": "\(pid)", "worker": "\(slot)"])
            return nil
        } catch {
            logger.error("worker process could not be started", metadata: ["worker": "\(slot)", "error": "\(error)"])
            metrics.restarted()
            guard let delay = policy.failed(at: now) else { return failureSummary() }
            waiting[slot] = now + delay
            return nil
        }
    }

    func failureSummary() -> String {
        "more than \(policy.failuresMax) worker processes exited unasked within \(policy.window.components.seconds) s"
    }

    /// Graceful shutdown: every child is asked to stop (and signalled once ready); no restarts.
    mutating func stopAll() {
        waiting.removeAll()
        for pid in Array(children.keys) { children[pid]?.stopRequested = true }
    }

    /// What is left at the stop timeout is SIGKILLed (a batch in hand rolls back and is claimed again).
    mutating func killAll() {
        for (pid, child) in children {
            kill(pid, SIGKILL)
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            close(child.output)
            logger.error(
                "worker process did not stop in time: killed", metadata: ["pid": "\(pid)", "worker": "\(child.slot)", "status": "\(ExitStatus(raw))"])
        }
        children.removeAll()
    }

    /// Drains what the child wrote on stdout; a `ready [metrics_port=N]` line marks it ready.
    mutating func readOutput(_ pid: pid_t) {
        guard var child = children[pid], !child.outputClosed else { return }
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(child.output, $0.baseAddress, $0.count) }
            if count > 0 {
                child.pendingLine += buffer[0..<count]
                continue
            }
            if count == 0 { child.outputClosed = true }
            break
        }
        while let newline = child.pendingLine.firstIndex(of: UInt8(ascii: "\n")) {
            let line = String(decoding: child.pendingLine[..<newline], as: UTF8.self)
            child.pendingLine.removeSubrange(...newline)
            let words = line.split(separator: " ")
            guard words.first == "ready", !child.ready else { continue }
            child.ready = true
            child.metricsPort = words.dropFirst().first { $0.hasPrefix("metrics_port=") }.flatMap { Int($0.dropFirst(13)) }
            logger.info(
                "worker process ready",
                metadata: ["pid": "\(pid)", "worker": "\(child.slot)", "metrics_port": "\(child.metricsPort.map(String.init) ?? "none")"])
        }
        // Bounded: a child that writes lines without end on stdout keeps only the last 4 KiB.
        if child.pendingLine.count > 4_096 { child.pendingLine.removeFirst(child.pendingLine.count - 4_096) }
        children[pid] = child
    }

    /// The child's exit status once it has exited, nil while it runs.
    static func reap(_ pid: pid_t) -> ExitStatus? {
        var raw: Int32 = 0
        while true {
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid { return ExitStatus(raw) }
            if result == -1 && errno == EINTR { continue }
            // 0: still running. -1 (ECHILD): it cannot be waited for, so it is gone.
            return result == 0 ? nil : ExitStatus(exited: -1)
        }
    }
}

/// How a child ended: `exit N`, or `signal N (name)`.
struct ExitStatus: CustomStringConvertible {
    let code: Int32?
    let signal: Int32?

    init(_ raw: Int32) {
        let signal = raw & 0x7F
        self.code = signal == 0 ? (raw >> 8) & 0xFF : nil
        self.signal = signal == 0 ? nil : signal
    }

    init(exited code: Int32) {
        self.code = code
        self.signal = nil
    }

    var description: String {
        if let signal { return "signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "exit \(code ?? -1)"
    }
}

extension Duration {
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
