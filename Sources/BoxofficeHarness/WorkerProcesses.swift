import Foundation

/// A set of `boxoffice work` child processes: how demo, bench and tests run "several workers".
///
/// Each child gets `--parent-pid`, so it exits by itself if this process dies without cleaning up.
public final class WorkerProcesses: @unchecked Sendable {
    // Guarded by `lock`: Process objects are only touched under it.
    private let lock = NSLock()
    private var processes: [Process] = []
    private var spawned = 0
    let executable: URL
    let environment: [String: String]
    let arguments: [String]
    let logDirectory: URL?

    /// - Parameters:
    ///   - executable: the `boxoffice` binary.
    ///   - databaseURL: handed to the children as DATABASE_URL.
    ///   - arguments: extra `work` options, e.g. `["--batch-size", "512"]`.
    ///   - logDirectory: where each child's stderr goes (`worker-N.log`); nil discards it.
    public init(executable: URL, databaseURL: String, arguments: [String] = [], logDirectory: URL? = nil) {
        self.executable = executable
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = databaseURL
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

    /// Starts `count` more workers.
    public func spawn(_ count: Int) throws {
        for _ in 0..<count {
            let process = Process()
            process.executableURL = executable
            process.arguments = ["work", "--log-format", "json"] + arguments + ["--parent-pid", "\(getpid())"]
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            try lock.withLock {
                spawned += 1
                if let logDirectory {
                    let path = logDirectory.appendingPathComponent("worker-\(spawned).log").path
                    _ = FileManager.default.createFile(atPath: path, contents: nil)
                    process.standardError = FileHandle(forWritingAtPath: path)
                } else {
                    process.standardError = FileHandle.nullDevice
                }
                try process.run()
                processes.append(process)
            }
        }
    }

    /// SIGKILLs the worker at `index` (a crash at an arbitrary instant) and forgets it.
    public func kill(at index: Int) {
        let process: Process? = lock.withLock { processes.indices.contains(index) ? processes.remove(at: index) : nil }
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERMs every worker and waits (bounded) for each to exit; returns their exit codes.
    /// A worker still running after `timeout` is SIGKILLed and reported as -9.
    @discardableResult
    public func terminateAll(timeout: Duration = .seconds(20)) async -> [Int32] {
        let all = lock.withLock {
            defer { processes.removeAll() }
            return processes
        }
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
