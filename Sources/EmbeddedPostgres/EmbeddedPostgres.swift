// Why this file is long (~690 lines): it is one type's whole lifecycle (find the binaries, initdb as
// the postgres OS user, configure, start, wait, stop, clean up, TLS files) written against raw POSIX
// calls because it must run before anything else exists; the parts share private helpers (running a
// tool as another user with a timeout, log tails) that splitting would have to make public.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private PostgreSQL cluster in a temp directory, started from the installed server binaries.
/// Lets tests, `boxoffice demo` and `boxoffice bench` run against a real database without a DATABASE_URL.
public struct EmbeddedPostgres: Sendable {
    /// Server settings for the cluster.
    /// Tests trade durability for speed; demo and bench keep the defaults.
    public struct Options: Sendable {
        /// fsync + synchronous_commit on (default true). Tests may pass false to go faster.
        /// Off also turns off full_page_writes: a crash can lose data, which a throwaway cluster does not mind.
        public var durable: Bool
        /// `max_connections` (default 300).
        /// Bench runs many pooled connections at once.
        public var maxConnections: Int
        /// `shared_buffers` (default "256MB").
        /// The stock 128MB is small for bench working sets.
        public var sharedBuffers: String
        /// Extra server settings, each passed as `-c key=value`.
        /// Lets a caller tune anything else without a new option here.
        public var extraSettings: [String: String]
        /// Serve TLS with this certificate and key (`ssl=on`); nil (the default) serves plain TCP only.
        /// Lets tests check every client `sslmode` against a real TLS server.
        public var tls: TLS?

        /// Builds options; every parameter has a default.
        /// So `.init()` is the usual, durable configuration.
        public init(
            durable: Bool = true,
            maxConnections: Int = 300,
            sharedBuffers: String = "256MB",
            extraSettings: [String: String] = [:],
            tls: TLS? = nil
        ) {
            self.durable = durable
            self.maxConnections = maxConnections
            self.sharedBuffers = sharedBuffers
            self.extraSettings = extraSettings
            self.tls = tls
        }
    }

    /// The server's TLS certificate and private key, as PEM files.
    ///
    /// Both are copied into the cluster's directory at start (the key with mode 0600, owned by the
    /// server's OS user, which PostgreSQL insists on), so the originals may live anywhere.
    public struct TLS: Sendable {
        /// PEM file of the server certificate (and any intermediates), sent to clients.
        public var certificateFile: String
        /// PEM file of the certificate's private key, unencrypted.
        public var privateKeyFile: String

        /// Names the two PEM files; they are read when the cluster starts.
        public init(certificateFile: String, privateKeyFile: String) {
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
        }
    }

    /// Loopback address the server listens on ("127.0.0.1").
    /// TCP only on loopback, so trust auth exposes nothing.
    public let host: String
    /// TCP port the server listens on.
    /// Picked free at start and kept across `stopServer`/`startServer`.
    public let port: Int
    /// Superuser name ("boxoffice"), trust auth on loopback.
    /// No password to configure anywhere.
    public let user: String
    /// Database created at start ("boxoffice").
    /// Callers can connect immediately without creating one.
    public let database: String
    /// The cluster's data directory (`<temp dir>/data`).
    /// Exposed for diagnostics and fault tests.
    public let dataDirectory: String
    /// Directory the PostgreSQL binaries were taken from.
    /// Exposed so callers can run other client tools of the same version.
    public let binDirectory: String

    /// The temp directory holding data, log and unix socket.
    /// Deleted by `destroy()` or at process exit.
    let baseDirectory: String

    /// postgres://boxoffice@127.0.0.1:PORT/boxoffice
    /// The connection string for the default database.
    public var url: String { url(database: database) }

    /// URL of another database on the same cluster.
    /// For tests that want an isolated database per case.
    public func url(database: String) -> String {
        "postgres://\(user)@\(host):\(port)/\(database)"
    }

    /// Finds binaries, initdb into a fresh temp dir, starts the server on a free loopback TCP port, waits until ready, creates the database.
    /// Retries up to 3 times with a fresh port if the server fails to start (another process may grab the port first).
    public static func start(options: Options = .init()) throws -> EmbeddedPostgres {
        let binDir = try findBinDirectory()
        let base = try makeTempDirectory()
        let data = base + "/data"
        let user = "boxoffice"
        // Registered before initdb so the directory is removed at exit even if start fails half way.
        Registry.register(ClusterRecord(baseDirectory: base, dataDirectory: data))
        do {
            let initdb = try runPostgresTool(
                binDir + "/initdb",
                ["-D", data, "-U", user, "--auth=trust", "-E", "UTF8", "--locale=C", "-N"],
                cwd: base, timeout: 120)
            try initdb.check("initdb")
            if let tls = options.tls { try installTLSFiles(tls, baseDirectory: base) }

            var lastError: Error = EmbeddedPostgresError("PostgreSQL did not start")
            for _ in 0..<3 {
                let port = try Loopback.freePort()
                let pg = EmbeddedPostgres(
                    host: "127.0.0.1", port: port, user: user, database: user,
                    dataDirectory: data, binDirectory: binDir, baseDirectory: base,
                    options: options)
                do {
                    try pg.startServer()
                } catch {
                    // Make sure a half-started server is gone before trying another port.
                    immediateStop(dataDirectory: data, wait: 10)
                    lastError = error
                    continue
                }
                try pg.createDatabase(user)
                return pg
            }
            throw lastError
        } catch {
            destroyCluster(baseDirectory: base, dataDirectory: data, binDirectory: binDir)
            throw error
        }
    }

    /// CREATE DATABASE via the createdb binary (-h host -p port -U user).
    /// Uses the client binary so this module needs no Postgres driver.
    public func createDatabase(_ name: String) throws {
        let result = try runProcess(
            clientTool("createdb"), ["-h", host, "-p", String(port), "-U", user, name],
            cwd: nil, timeout: 60)
        try result.check("createdb \(name)")
    }

    /// pg_ctl stop -m fast then start again on the same port and data dir (for fault tests: a database restart).
    /// This half stops the server (`pg_ctl -m fast stop`) and keeps the data.
    public func stopServer() throws {
        let result = try runPostgresTool(
            binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"],
            cwd: baseDirectory, timeout: 90)
        try result.check("pg_ctl stop")
    }

    /// Starts the server (`pg_ctl start`) on the same port and data dir, waits until it accepts connections.
    /// Used at first start and to bring the database back after `stopServer()`.
    public func startServer() throws {
        let logFile = baseDirectory + "/postgres.log"
        let result = try runPostgresTool(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", serverOptions(), "start"],
            cwd: baseDirectory, timeout: 90)
        guard result.status == 0 else {
            throw EmbeddedPostgresError(
                "pg_ctl start failed (exit \(result.status)) on port \(port): \(result.output.trimmed)\n"
                    + "last lines of \(logFile):\n\(logTail(logFile, lines: 20))")
        }
        try waitUntilReady(timeout: 30)
    }

    /// Stops the server and deletes the temp directory. Idempotent.
    /// Safe to call from `defer`; also unregisters the cluster from the at-exit cleanup.
    public func destroy() {
        destroyCluster(baseDirectory: baseDirectory, dataDirectory: dataDirectory, binDirectory: binDirectory)
    }

    // MARK: - Internals

    private let options: Options

    private init(
        host: String, port: Int, user: String, database: String,
        dataDirectory: String, binDirectory: String, baseDirectory: String, options: Options
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.dataDirectory = dataDirectory
        self.binDirectory = binDirectory
        self.baseDirectory = baseDirectory
        self.options = options
    }

    /// The `-o` string pg_ctl hands to the postgres command line (pg_ctl runs it through /bin/sh).
    private func serverOptions() -> String {
        var settings: [(String, String)] = [
            ("listen_addresses", host),
            ("max_connections", String(options.maxConnections)),
            ("shared_buffers", options.sharedBuffers),
        ]
        if !options.durable {
            settings += [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")]
        }
        if options.tls != nil {
            settings += [
                ("ssl", "on"),
                ("ssl_cert_file", baseDirectory + "/" + tlsCertificateName),
                ("ssl_key_file", baseDirectory + "/" + tlsKeyName),
            ]
        }
        settings += options.extraSettings.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        var parts = ["-p", String(port), "-k", shellQuote(baseDirectory)]
        for (key, value) in settings {
            parts += ["-c", shellQuote("\(key)=\(value)")]
        }
        return parts.joined(separator: " ")
    }

    private func waitUntilReady(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        let isready = clientTool("pg_isready")
        var last = ""
        repeat {
            let result = try runProcess(
                isready, ["-h", host, "-p", String(port), "-U", user, "-d", "postgres"],
                cwd: nil, timeout: 10)
            if result.status == 0 { return }
            last = result.output.trimmed
            usleep(100_000)
        } while Date() < deadline
        throw EmbeddedPostgresError(
            "PostgreSQL on port \(port) not ready after \(Int(timeout))s: \(last)\n"
                + "last lines of postgres.log:\n\(logTail(baseDirectory + "/postgres.log", lines: 20))")
    }

    private func clientTool(_ name: String) -> String {
        let candidate = binDirectory + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        return which(name) ?? candidate
    }
}

/// A failure to find, start, stop or talk to the embedded cluster.
/// The message carries the tool output (and log tail) needed to diagnose it.
public struct EmbeddedPostgresError: Error, CustomStringConvertible, LocalizedError {
    /// Human-readable explanation, including child-process output.
    /// Printed as-is by the CLI and test failures.
    public let description: String

    init(_ description: String) { self.description = description }

    public var errorDescription: String? { description }
}

// MARK: - TLS files

private let tlsCertificateName = "server.crt"
private let tlsKeyName = "server.key"

/// Copies the certificate (0644) and key (0600) into the cluster's directory, owned by the server's OS
/// user when we are root: PostgreSQL refuses a key that others can read or that it does not own.
private func installTLSFiles(_ tls: EmbeddedPostgres.TLS, baseDirectory: String) throws {
    for (source, name, mode) in [(tls.certificateFile, tlsCertificateName, 0o644), (tls.privateKeyFile, tlsKeyName, 0o600)] {
        let destination = baseDirectory + "/" + name
        guard let contents = FileManager.default.contents(atPath: source) else {
            throw EmbeddedPostgresError("cannot read the TLS file \(source)")
        }
        guard FileManager.default.createFile(atPath: destination, contents: contents, attributes: [.posixPermissions: mode]),
            chmod(destination, mode_t(mode)) == 0
        else {
            throw EmbeddedPostgresError("cannot write \(destination): \(String(cString: strerror(errno)))")
        }
        if runningAsRoot {
            let account = try postgresAccount()
            guard chown(destination, account.uid, account.gid) == 0 else {
                throw EmbeddedPostgresError("chown postgres \(destination) failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}

// MARK: - Process-wide registry and at-exit cleanup

struct ClusterRecord: Sendable {
    let baseDirectory: String
    let dataDirectory: String
}

private enum Registry {
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
private func embeddedPostgresAtExit() {
    for record in Registry.takeAll() {
        immediateStop(dataDirectory: record.dataDirectory, wait: 5)
        try? FileManager.default.removeItem(atPath: record.baseDirectory)
    }
}

private func destroyCluster(baseDirectory: String, dataDirectory: String, binDirectory: String) {
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
private func postmasterPID(dataDirectory: String) -> pid_t? {
    guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
        let first = text.split(separator: "\n").first,
        let pid = pid_t(first.trimmingCharacters(in: .whitespaces)), pid > 0
    else { return nil }
    return kill(pid, 0) == 0 ? pid : nil
}

/// SIGQUIT (immediate shutdown) to the postmaster, wait up to `wait` seconds, then SIGKILL.
private func immediateStop(dataDirectory: String, wait: TimeInterval) {
    guard let pid = postmasterPID(dataDirectory: dataDirectory) else { return }
    kill(pid, SIGQUIT)
    let deadline = Date().addingTimeInterval(wait)
    while kill(pid, 0) == 0 && Date() < deadline { usleep(20_000) }
    if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
}

// MARK: - Discovery, temp dir, port

private let notFoundMessage =
    "PostgreSQL server binaries not found: install them (apt-get install postgresql) or set PG_BINDIR, "
    + "or set DATABASE_URL to use your own server"

private func hasInitdb(_ dir: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: dir + "/initdb")
}

private func findBinDirectory() throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let dir = env["PG_BINDIR"], !dir.isEmpty {
        guard hasInitdb(dir) else {
            throw EmbeddedPostgresError("PG_BINDIR=\(dir) does not contain initdb. " + notFoundMessage)
        }
        return dir
    }
    if let pgConfig = which("pg_config"),
        let result = try? runProcess(pgConfig, ["--bindir"], cwd: nil, timeout: 10), result.status == 0
    {
        let dir = result.output.trimmed
        if !dir.isEmpty, hasInitdb(dir) { return dir }
    }
    let root = "/usr/lib/postgresql"
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
        .filter { hasInitdb(root + "/" + $0 + "/bin") }
        .sorted { versionKey($0).lexicographicallyPrecedes(versionKey($1)) }
    if let newest = versions.last { return root + "/" + newest + "/bin" }
    throw EmbeddedPostgresError(notFoundMessage)
}

private func versionKey(_ name: String) -> [Int] {
    name.split(separator: ".").map { Int($0) ?? 0 }
}

private func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") where !dir.isEmpty {
        let candidate = dir + "/" + name
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

private var runningAsRoot: Bool { geteuid() == 0 }

private func postgresAccount() throws -> (uid: uid_t, gid: gid_t) {
    guard let pw = getpwnam("postgres") else {
        throw EmbeddedPostgresError(
            "running as root but there is no 'postgres' OS user to run the server as "
                + "(PostgreSQL refuses to run as root); install postgresql or run as a non-root user")
    }
    return (pw.pointee.pw_uid, pw.pointee.pw_gid)
}

private func makeTempDirectory() throws -> String {
    var template = Array("/tmp/boxoffice-pg-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else {
        throw EmbeddedPostgresError("mkdtemp /tmp/boxoffice-pg-XXXXXX failed: \(String(cString: strerror(errno)))")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    guard chmod(path, 0o700) == 0 else {
        rmdir(path)
        throw EmbeddedPostgresError("chmod 0700 \(path) failed: \(String(cString: strerror(errno)))")
    }
    if runningAsRoot {
        do {
            let account = try postgresAccount()
            guard chown(path, account.uid, account.gid) == 0 else {
                throw EmbeddedPostgresError("chown postgres \(path) failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            rmdir(path)
            throw error
        }
    }
    return path
}

private func shellQuote(_ value: String) -> String {
    let safe = CharacterSet(
        charactersIn:
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=+@%")
    if !value.isEmpty, value.unicodeScalars.allSatisfy({ safe.contains($0) }) { return value }
    return "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

private func logTail(_ path: String, lines: Int) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log at \(path))" }
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
}

// MARK: - Child processes

private struct ProcessResult {
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
private func runPostgresTool(
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
private func runProcess(
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
private func reap(_ pid: pid_t, block: Bool) -> Int32? {
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

private typealias SpawnActionsPointer = UnsafeMutablePointer<posix_spawn_file_actions_t>

/// Starts `executable` with stdin from /dev/null and stdout+stderr into a new pipe, in its own
/// process group, all other descriptors closed. Returns the pid and the pipe's read end.
private func spawn(_ executable: String, _ args: [String], cwd: String?) throws -> (pid: pid_t, outputFD: Int32) {
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
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
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
private func libcFunction<T>(_ name: String, as type: T.Type) -> T? {
    guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
    defer { dlclose(handle) }
    guard let symbol = dlsym(handle, name) else { return nil }
    return unsafeBitCast(symbol, to: type)
}
#endif

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
