import BoxofficeHarness
import BoxofficeStore
import EmbeddedPostgres
import Foundation

/// Debian's `pgbouncer` in transaction pooling mode in front of the test cluster, started by the test
/// itself (as the `postgres` user when we are root: PgBouncer, like PostgreSQL, refuses root).
final class PgBouncer: @unchecked Sendable {
    /// Where Debian's package puts the binary; PATH is searched too.
    static let executable: String? =
        (["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/pgbouncer" })
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    let process = Process()
    let directory: URL
    let port: Int

    /// Starts PgBouncer in front of `server` and waits until it accepts connections.
    init(server: DatabaseConfiguration, poolSize: Int = 12) throws {
        guard let executable = Self.executable else { throw CocoaError(.fileNoSuchFile) }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "boxoffice-pgbouncer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        port = try Loopback.freePort()
        // The settings deploy/pgbouncer/pgbouncer.ini documents, on a private port. Boxoffice sends its
        // timeouts as startup parameters, which transaction pooling cannot honour per client: PgBouncer
        // is told to ignore them, and the database carries them instead (ALTER DATABASE/ROLE … SET).
        let configuration = """
            [databases]
            * = host=\(server.host) port=\(server.port) user=\(server.username)\(server.password.map { " password=\($0)" } ?? "")
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = any
            pool_mode = transaction
            default_pool_size = \(poolSize)
            max_client_conn = 500
            ignore_startup_parameters = extra_float_digits,statement_timeout,lock_timeout,idle_in_transaction_session_timeout,plan_cache_mode
            server_reset_query =
            log_connections = 0
            log_disconnections = 0

            """
        let file = directory.appendingPathComponent("pgbouncer.ini")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = (getuid() == 0 ? ["-u", "postgres"] : []) + [file.path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        let log = directory.appendingPathComponent("pgbouncer.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !Self.accepts(port: port) {
            guard process.isRunning, Date() < deadline else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                stop()
                throw PgBouncerError(message: "pgbouncer did not start: \(text.suffix(2_000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    struct PgBouncerError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// `database` reached through PgBouncer: no prepared statements (1.18 cannot keep them).
    func route(_ database: DatabaseConfiguration) -> DatabaseConfiguration {
        var routed = database
        routed.host = "127.0.0.1"
        routed.port = port
        routed.preparedStatements = false
        return routed
    }

    /// SIGKILL (nothing to keep), then a bounded wait: Foundation's `waitUntilExit` spins a core on
    /// Linux, and PgBouncer waits for its clients on SIGTERM.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning, Date() < deadline { usleep(10_000) }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    static func accepts(port: Int) -> Bool {
        guard let descriptor = Loopback.connect(port: port) else { return false }
        close(descriptor)
        return true
    }
}
