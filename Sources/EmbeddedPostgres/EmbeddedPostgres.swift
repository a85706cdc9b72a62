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

let tlsCertificateName = "server.crt"
let tlsKeyName = "server.key"

/// Copies the certificate (0644) and key (0600) into the cluster's directory, owned by the server's OS
/// user when we are root: PostgreSQL refuses a key that others can read or that it does not own.
func installTLSFiles(_ tls: EmbeddedPostgres.TLS, baseDirectory: String) throws {
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
