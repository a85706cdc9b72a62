import Foundation

/// A set of `boxoffice` child processes of one subcommand (`work` by default, or `serve`): how demo,
/// bench and tests run several workers or API processes.
///
/// Each `work` child gets `--parent-pid`, so it exits by itself if this process dies without cleaning up.
public final class ChildProcesses: @unchecked Sendable {
    // Guarded by `lock`: Process objects are only touched under it.
    private let lock = NSLock()
    private var processes: [Process] = []
    private var spawned = 0
    /// When each running child was started, by process id.
    private var spawnTimes: [Int32: ContinuousClock.Instant] = [:]
    /// How long a child is given after its start before ``terminateAll(timeout:)`` signals it.
    public static let startupGrace: Duration = .seconds(1)
    let executable: URL
    let environment: [String: String]
    let arguments: [String]
    let logDirectory: URL?
    let subcommand: String

    /// - Parameters:
    ///   - executable: the `boxoffice` binary.
    ///   - databaseURL: handed to the children as DATABASE_URL.
    ///   - arguments: extra `work` options, e.g. `["--batch-size", "512"]`.
    ///   - logDirectory: where each child's stderr goes (`<subcommand>-N.log`); nil discards it.
    ///   - subcommand: `work`, or `serve` for API processes.
    ///   - environment: extra variables for the children (tokens, say).
    public init(
        executable: URL, databaseURL: String, arguments: [String] = [], logDirectory: URL? = nil,
        subcommand: String = "work", environment extra: [String: String] = [:]
    ) {
        self.executable = executable
        self.subcommand = subcommand
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
        environment.merge(extra) { $1 }
        self.environment = environment
        self.arguments = arguments
        self.logDirectory = logDirectory
    }

    /// The `boxoffice` binary next to the running one (tests run from the same build folder).
    public static func siblingExecutable() -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        // Test bundles run from .build/<config>/<name>.xctest (a file on Linux): the binary is its sibling.
        if directory.pathExtension == "xctest" { directory.deleteLastPathComponent() }
        let candidate = directory.appendingPathComponent("boxoffice")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }

    public var count: Int { lock.withLock { processes.count } }
    public var pids: [Int32] { lock.withLock { processes.map(\.processIdentifier) } }

    /// Starts `count` more children; `extra` is added to each one's arguments (a port of its own, say).
    public func spawn(_ count: Int, extra: [String] = []) throws {
        for _ in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments =
                [subcommand, "--log-format", "json"] + arguments + extra + (subcommand == "work" ? ["--parent-pid", "\(getpid())"] : [])
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try lock.withLock {
                spawned += 1
                if let logDirectory {
                    let path = logDirectory.appendingPathComponent("\(subcommand)-\(spawned).log").path
                    _ = FileManager.default.createFile(atPath: path, contents: nil)
                    process.standardError = FileHandle(forWritingAtPath: path)
                } else {
                    process.standardError = FileHandle.nullDevice
                }
                try process.run()
                processes.append(process)
                spawnTimes[process.processIdentifier] = .now
            }
        }
    }

    /// Each running child's resident memory now, split into anonymous (its heap and stacks) and
    /// file-backed (code and shared libraries, shared with every other process that maps them), in kilobytes.
    public func residentBreakdownKilobytes() -> [(anonymous: Int, file: Int)] {
        pids.compactMap { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
            func field(_ name: String) -> Int? {
                status.split(separator: "\n").first { $0.hasPrefix(name) }
                    .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") }
            }
            guard let anonymous = field("RssAnon:"), let file = field("RssFile:") else { return nil }
            return (anonymous, file)
        }
    }

    /// The highest resident set size each running child has reached (VmHWM), in kilobytes.
    public func peakResidentKilobytes() -> [Int] {
        pids.compactMap { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
            else { return nil }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
    }

    /// Starts each running child's peak (VmHWM) again from its current resident size (Linux
    /// `clear_refs` 5), so a peak can be read per phase of a run.
    public func resetPeakResident() {
        for pid in pids { try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8) }
    }

    /// The `worker stopped` records the children logged on exit (JSON lines), as key → value maps.
    public func exitRecords() -> [[String: String]] {
        guard let logDirectory, let files = try? FileManager.default.contentsOfDirectory(atPath: logDirectory.path) else { return [] }
        return files.filter { $0.hasPrefix("\(subcommand)-") }.flatMap { file -> [[String: String]] in
            guard let text = try? String(contentsOfFile: logDirectory.appendingPathComponent(file).path, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { line in
                guard line.contains("\"worker stopped\""),
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else { return nil }
                return object.mapValues { "\($0)" }
            }
        }
    }

    /// SIGKILLs the child at `index` (a crash at an arbitrary instant) and forgets it.
    public func kill(at index: Int) {
        let process: Process? = lock.withLock {
            guard processes.indices.contains(index) else { return nil }
            let process = processes.remove(at: index)
            spawnTimes[process.processIdentifier] = nil
            return process
        }
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERMs every child and waits (bounded) for each to exit; returns their exit codes.
    /// A child still running after `timeout` is SIGKILLed and reported as -9.
    @discardableResult
    public func terminateAll(timeout: Duration = .seconds(20)) async -> [Int32] {
        let all = lock.withLock {
            defer { processes.removeAll() }
            return processes
        }
        // A child SIGTERMed in its first moments, before its service group has installed the signal
        // handler, dies of the signal (exit 15) instead of shutting down: harmless (it holds nothing
        // yet), but not the clean exit callers check for. Give young children time to get there.
        let youngest = lock.withLock { spawnTimes.values.max() }
        if let youngest, ContinuousClock.now - youngest < Self.startupGrace {
            try? await Task.sleep(until: youngest + Self.startupGrace)
        }
        lock.withLock { spawnTimes.removeAll() }
        for process in all where process.isRunning { process.terminate() }
        let deadline = ContinuousClock.now + timeout
        var codes: [Int32] = []
        for process in all {
            while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning {
                Foundation.kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                codes.append(-9)
            } else {
                codes.append(process.terminationStatus)
            }
        }
        return codes
    }

    deinit {
        for process in processes where process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
