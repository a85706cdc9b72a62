// Running PostgreSQL's tools and server as child processes with raw POSIX calls (posix_spawn, waitpid):
// this target must work before anything else exists.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Child processes

struct ProcessResult {
    let command: String
    let status: Int32
    let output: String

    func check(_ what: String) throws {
        guard status == 0 else {
            throw EmbeddedPostgresError("\(what) failed (exit \(status)): \(command)\n\(output.trimmed)")
        }
    }
}

/// Runs a server-side tool (initdb, pg_ctl): as the `postgres` user via runuser when we are root.
func runPostgresTool(
    _ tool: String, _ args: [String], cwd: String?, timeout: TimeInterval
) throws
    -> ProcessResult
{
    guard runningAsRoot else { return try runProcess(tool, args, cwd: cwd, timeout: timeout) }
    _ = try postgresAccount()
    let runuser =
        ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? which("runuser")
    guard let runuser else {
        throw EmbeddedPostgresError(
            "running as root but runuser was not found; PostgreSQL must run as the postgres user "
                + "(install util-linux or run as a non-root user)")
    }
    return try runProcess(runuser, ["-u", "postgres", "--", tool] + args, cwd: cwd, timeout: timeout)
}

/// Runs a process with stdout+stderr captured in one pipe, draining it while waiting so a chatty
/// child never blocks; kills the child's process group if it outlives `timeout`.
///
/// Uses posix_spawn rather than Foundation `Process`: on Linux, `Process` learns that a child exited
/// only when a socket inherited by the child is closed, and `pg_ctl start` hands that socket on to the
/// daemonised postmaster, so `Process` would wait for pg_ctl until the server stops. Here the child
/// gets only stdin (/dev/null), stdout and stderr; every other descriptor is closed.
func runProcess(
    _ executable: String, _ args: [String], cwd: String?, timeout: TimeInterval
) throws
    -> ProcessResult
{
    let command = ([executable] + args).joined(separator: " ")
    let child = try spawn(executable, args, cwd: cwd)
    let readFD = child.outputFD
    defer { close(readFD) }

    var output = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var eof = false
    var status: Int32?
    let deadline = Date().addingTimeInterval(timeout)
    var exitedAt: Date?
    var timedOut = false

    while true {
        if !eof {
            var pfd = pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 50)
            if ready > 0 {
                let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if n > 0 {
                    output.append(contentsOf: buffer[0..<n])
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    eof = true
                }
            }
        } else if status == nil {
            usleep(10_000)
        }
        if status == nil {
            status = reap(child.pid, block: false)
            if status != nil { exitedAt = Date() }
        }
        if let exitedAt, status != nil {
            // A grandchild that kept our pipe open must not hold us up for long.
            if eof || Date().timeIntervalSince(exitedAt) > 2 { break }
        }
        if status == nil && Date() >= deadline {
            timedOut = true
            kill(-child.pid, SIGTERM)
            let grace = Date().addingTimeInterval(5)
            while status == nil && Date() < grace {
                usleep(20_000)
                status = reap(child.pid, block: false)
            }
            if status == nil {
                kill(-child.pid, SIGKILL)
                kill(child.pid, SIGKILL)
                status = reap(child.pid, block: true)
            }
            break
        }
    }
    let text = String(decoding: output, as: UTF8.self)
    if timedOut {
        throw EmbeddedPostgresError("\(command) timed out after \(Int(timeout))s\n\(text.trimmed)")
    }
    return ProcessResult(command: command, status: status ?? -1, output: text)
}

/// waitpid; returns the exit status (128+signal when killed), or nil while still running.
func reap(_ pid: pid_t, block: Bool) -> Int32? {
    var raw: Int32 = 0
    while true {
        let r = waitpid(pid, &raw, block ? 0 : WNOHANG)
        if r == pid { break }
        if r == 0 { return nil }
        if r == -1 && errno == EINTR { continue }
        return -1  // ECHILD: someone else reaped it; the status is unknown.
    }
    let signal = raw & 0x7F
    return signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
}

typealias SpawnActionsPointer = UnsafeMutablePointer<posix_spawn_file_actions_t>

/// Starts `executable` with stdin from /dev/null and stdout (and stderr, unless `inheritsStandardError`)
/// into a new pipe, in its own process group, with default signal handling and an empty signal mask,
/// all other descriptors closed. Returns the pid and the pipe's read end.
///
/// Public for `boxoffice work --processes`, whose children keep the supervisor's stderr (their logs)
/// and report readiness on stdout.
public func spawn(
    _ executable: String, _ args: [String], cwd: String?, inheritsStandardError: Bool = false
) throws -> (pid: pid_t, outputFD: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else {
        throw EmbeddedPostgresError("pipe() failed: \(String(cString: strerror(errno)))")
    }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)

    #if canImport(Darwin)
    var actions: posix_spawn_file_actions_t? = nil
    var attrs: posix_spawnattr_t? = nil
    #else
    var actions = posix_spawn_file_actions_t()
    var attrs = posix_spawnattr_t()
    #endif
    posix_spawn_file_actions_init(&actions)
    posix_spawnattr_init(&attrs)
    defer {
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attrs)
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    if !inheritsStandardError { posix_spawn_file_actions_adddup2(&actions, fds[1], 2) }
    var flags = Int32(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    #if canImport(Darwin)
    flags |= Int32(POSIX_SPAWN_CLOEXEC_DEFAULT)
    if let cwd { posix_spawn_file_actions_addchdir_np(&actions, cwd) }
    #else
    if let closeFrom = libcFunction(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (SpawnActionsPointer, Int32) -> Int32).self)
    {
        _ = closeFrom(&actions, 3)
    } else {
        // glibc < 2.34: close what is open now (glibc ignores EBADF for close actions).
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }
    if let cwd,
        let chdir = libcFunction(
            "posix_spawn_file_actions_addchdir_np",
            as: (@convention(c) (SpawnActionsPointer, UnsafePointer<CChar>) -> Int32).self)
    {
        _ = cwd.withCString { chdir(&actions, $0) }
    }
    #endif
    posix_spawnattr_setflags(&attrs, Int16(truncatingIfNeeded: flags))
    posix_spawnattr_setpgroup(&attrs, 0)
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigmask(&attrs, &emptyMask)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for sig in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigdefault(&attrs, &defaults)

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + args).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] =
        ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, &attrs, argv, envp)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        throw EmbeddedPostgresError("could not run \(executable): \(String(cString: strerror(rc)))")
    }
    return (pid, fds[0])
}

#if !canImport(Darwin)
/// A libc function looked up at run time (for GNU extensions the Glibc module does not import).
func libcFunction<T>(_ name: String, as type: T.Type) -> T? {
    guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
    defer { dlclose(handle) }
    guard let symbol = dlsym(handle, name) else { return nil }
    return unsafeBitCast(symbol, to: type)
}
#endif

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
