// The clusters this process started, and the at-exit cleanup that stops and deletes any left running.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Process-wide registry and at-exit cleanup

struct ClusterRecord: Sendable {
    let baseDirectory: String
    let dataDirectory: String
}

enum Registry {
    struct State: ~Copyable {
        var clusters: [String: ClusterRecord] = [:]
        var atexitInstalled = false
    }

    static let state = Mutex(State())

    static func register(_ record: ClusterRecord) {
        state.withLock { state in
            state.clusters[record.baseDirectory] = record
            if !state.atexitInstalled {
                state.atexitInstalled = true
                atexit { embeddedPostgresAtExit() }
            }
        }
    }

    /// Returns true when the cluster was still registered (so the caller owns its teardown).
    static func unregister(_ baseDirectory: String) -> Bool {
        state.withLock { $0.clusters.removeValue(forKey: baseDirectory) != nil }
    }

    static func takeAll() -> [ClusterRecord] {
        state.withLock { state in
            let all = Array(state.clusters.values)
            state.clusters.removeAll()
            return all
        }
    }
}

/// At exit: immediate shutdown of every live cluster (what `pg_ctl stop -m immediate` does: SIGQUIT to the
/// postmaster), then remove its directory. Signals instead of spawning pg_ctl, since spawning processes
/// while the process is exiting is fragile.
func embeddedPostgresAtExit() {
    for record in Registry.takeAll() {
        immediateStop(dataDirectory: record.dataDirectory, wait: 5)
        try? FileManager.default.removeItem(atPath: record.baseDirectory)
    }
}

func destroyCluster(baseDirectory: String, dataDirectory: String, binDirectory: String) {
    guard Registry.unregister(baseDirectory) else { return }
    if postmasterPID(dataDirectory: dataDirectory) != nil {
        let stopped =
            (try? runPostgresTool(
                binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"],
                cwd: baseDirectory, timeout: 45))?.status == 0
        if !stopped { immediateStop(dataDirectory: dataDirectory, wait: 10) }
    }
    try? FileManager.default.removeItem(atPath: baseDirectory)
}

/// The postmaster PID from `postmaster.pid`, if that file exists and the process is alive.
func postmasterPID(dataDirectory: String) -> pid_t? {
    guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
        let first = text.split(separator: "\n").first,
        let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), pid > 0
    else { return nil }
    return kill(pid, 0) == 0 ? pid : nil
}

/// SIGQUIT (immediate shutdown) to the postmaster, wait up to `wait` seconds, then SIGKILL.
func immediateStop(dataDirectory: String, wait: TimeInterval) {
    guard let pid = postmasterPID(dataDirectory: dataDirectory) else { return }
    kill(pid, SIGQUIT)
    let deadline = Date().addingTimeInterval(wait)
    while kill(pid, 0) == 0 && Date() < deadline { usleep(20_000) }
    if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
}
