import Foundation
import PostgresNIO

/// Where the database is and how every connection behaves, read from `DATABASE_URL` or the libpq variables.
///
/// PostgresNIO does not read the environment, and operators already set `DATABASE_URL` or `PGHOST` & co.
public struct DatabaseConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    /// Pool bound per process; the sum over all processes must stay below the server's max_connections.
    public var connectionsMax: Int = 16
    /// Bound on any one statement, so a stuck statement fails and its transaction rolls back.
    public var statementTimeoutMilliseconds: Int = 15_000
    /// Bound on waiting for a row lock; workers never wait (SKIP LOCKED), intake never should.
    public var lockTimeoutMilliseconds: Int = 5_000
    /// A transaction left open this long (a stalled worker) is killed by the server and its intents freed.
    public var idleInTransactionTimeoutMilliseconds: Int = 30_000
    public var connectTimeoutMilliseconds: Int = 5_000
    /// How a TCP connection negotiates TLS: libpq's `sslmode` with libpq's meanings (see ``SSLMode``).
    ///
    /// Defaults to `prefer` on every host, loopback included, as libpq does: `psql` and Boxoffice then
    /// negotiate alike for the same URL, a server that offers TLS gets it, and one that does not costs
    /// one extra round trip per new connection (the `SSLRequest` refused), which the pool pays once per
    /// connection it keeps. A loopback connection never leaves the machine, so a plain fallback there
    /// exposes nothing; set `sslmode=disable` to skip the round trip and the encryption on loopback.
    /// Unix-socket hosts never use TLS, whatever the mode (libpq does the same).
    public var sslMode: SSLMode = .prefer
    /// `sslrootcert`: a PEM file of the CA certificates a server's chain must lead to (`verify-ca`,
    /// `verify-full`, and `require` as libpq does when a root certificate is given), or `system` for
    /// the operating system's trust store (`verify-full` only, as libpq 16). When nil, libpq's default
    /// `~/.postgresql/root.crt` is used if it exists.
    public var sslRootCert: String?
    /// Hot statements run as named prepared statements (parsed and planned once per connection).
    /// Turn off behind PgBouncer in transaction mode older than 1.21, which cannot keep them.
    public var preparedStatements: Bool = true
    /// Plan every execution of a prepared statement with its parameters (`plan_cache_mode =
    /// force_custom_plan`) instead of reusing a generic plan. Workers need it: a generic plan is built
    /// from the statistics of the moment, and one cached while the queue was empty (a fresh database,
    /// before autovacuum's first ANALYZE) seq-scans the intents at a million queued, 1 s per batch
    /// (measured). Planning costs well under a millisecond per batch. The API keeps generic plans:
    /// its statements are single-row index lookups whose plan does not change with size. Sent as a
    /// startup parameter, only with `preparedStatements` (unnamed statements are planned per execution).
    public var customPlans: Bool = false
    /// Open all `connectionsMax` connections at start and keep them, with no idle timeout and no
    /// keep-alive query: for the long-running `serve` and `work` processes.
    ///
    /// PostgresNIO 1.33's pool arms an idle-timeout timer (60 s) and a keep-alive timer (30 s) each
    /// time a connection comes back to it, and cancels them at the next lease. Each timer is a
    /// `Task.sleep`, and a cancelled `Task.sleep` keeps its memory until its original deadline: about
    /// 1.6 KB per lease (measured: 20,000 `withConnection` calls grew the heap by 16 MB). An API
    /// answering 7,000 status reads a second so held hundreds of megabytes of dead timers. Connections
    /// the pool keeps as its minimum get no idle timer, and without keep-alive none gets the other. A
    /// dead connection is then found when it is next used (the statement fails, the pool reconnects).
    public var keepsConnectionsOpen: Bool = false
    /// `application_name` of every connection (what `pg_stat_activity` shows): `boxoffice`, or for a
    /// `boxoffice work` process ``workerApplicationName()``, by which the dashboard counts workers alive.
    public var applicationName = "boxoffice"

    /// How a worker process's connections begin their `application_name`.
    public static let workerApplicationNamePrefix = "boxoffice-worker "

    /// A worker process's `application_name`: ``workerApplicationNamePrefix``, a random id drawn once per
    /// process (so two hosts' equal pids stay apart), then the pid for the operator; 33 bytes at most,
    /// well within PostgreSQL's 63. Every connection of one process carries the same name, so the number
    /// of distinct names is the number of worker processes connected.
    public static func workerApplicationName() -> String {
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return workerApplicationNamePrefix + String(repeating: "0", count: 8 - id.count) + id + " pid " + String(getpid())
    }

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    public struct InvalidURL: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `postgres://user:pass@host:port/db?sslmode=verify-full&sslrootcert=/path/ca.pem` (also
    /// `postgresql://`). `sslmode` and `sslrootcert` fall back to `PGSSLMODE` and `PGSSLROOTCERT` in
    /// `environment` when the URL does not set them, as libpq does. Throws on an unknown `sslmode` and on
    /// a TLS setting that cannot work (see ``validateTLS(home:)``), so a typo never weakens TLS silently.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw InvalidURL(description: "DATABASE_URL must look like postgres://user:password@host:5432/database")
        }
        let queryItems = components.queryItems ?? []
        let host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? queryItems.first { $0.name == "host" }?.value ?? "127.0.0.1"
        let database = String(components.path.drop { $0 == "/" })
        self.init(
            host: host,
            port: components.port ?? 5432,
            username: components.user.flatMap { $0.removingPercentEncoding } ?? "postgres",
            password: components.password.flatMap { $0.removingPercentEncoding },
            database: database.isEmpty ? (components.user ?? "postgres") : database
        )
        let urlMode = queryItems.first { $0.name == "sslmode" }?.value
        try applyTLSSettings(
            mode: urlMode ?? environment["PGSSLMODE"], modeSource: urlMode == nil ? "PGSSLMODE" : "sslmode in DATABASE_URL",
            rootCert: queryItems.first { $0.name == "sslrootcert" }?.value ?? environment["PGSSLROOTCERT"],
            environment: environment)
    }

    /// Sets `sslMode` and `sslRootCert` from their text forms, then validates them.
    private mutating func applyTLSSettings(mode: String?, modeSource: String, rootCert: String?, environment: [String: String]) throws {
        if let mode, !mode.isEmpty {
            guard let parsed = SSLMode(rawValue: mode) else {
                throw InvalidURL(
                    description: "\(modeSource): unknown sslmode \"\(mode)\"; use one of "
                        + SSLMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
            sslMode = parsed
        }
        sslRootCert = rootCert.flatMap { $0.isEmpty ? nil : $0 }
        // libpq 16: sslrootcert=system without an sslmode means verify-full.
        if sslRootCert == "system" && (mode ?? "").isEmpty { sslMode = .verifyFull }
        // libpq's default CA file, resolved once against this environment's HOME and then named, so
        // `url` hands child processes the very file this process checks against.
        if sslRootCert == nil, sslMode != .disable, let path = Self.defaultRootCertPath(home: environment["HOME"]),
            FileManager.default.fileExists(atPath: path)
        {
            sslRootCert = path
        }
        try validateTLS(home: environment["HOME"])
    }

    /// `DATABASE_URL` when set, else the libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`);
    /// nil when neither is set, so callers can decide to start a private database instead.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DatabaseConfiguration? {
        if let url = environment["DATABASE_URL"], !url.isEmpty {
            return try DatabaseConfiguration(url: url, environment: environment)
        }
        guard environment["PGHOST"] != nil || environment["PGDATABASE"] != nil || environment["PGUSER"] != nil else { return nil }
        let user = environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        guard let port = Int(environment["PGPORT"] ?? "5432") else {
            throw InvalidURL(description: "PGPORT must be a number, got \(environment["PGPORT"] ?? "")")
        }
        var configuration = DatabaseConfiguration(
            host: environment["PGHOST"] ?? "127.0.0.1",
            port: port,
            username: user,
            password: environment["PGPASSWORD"],
            database: environment["PGDATABASE"] ?? user
        )
        try configuration.applyTLSSettings(
            mode: environment["PGSSLMODE"], modeSource: "PGSSLMODE", rootCert: environment["PGSSLROOTCERT"], environment: environment)
        return configuration
    }

    /// The URL form, with the password masked and the TLS settings: safe to log.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)" + tlsQuery
    }

    /// The URL form with the password and the TLS settings, for handing to child processes: they connect
    /// exactly as this process does, whatever their own `PGSSLMODE`. A Unix-socket directory goes in
    /// the `host` query parameter, where ``init(url:environment:)`` reads it back.
    public var url: String {
        let user = username.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? username
        let pass = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: .urlPasswordAllowed) ?? $0) } ?? ""
        let database = self.database.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? self.database
        if host.hasPrefix("/") {
            return "postgres://\(user)\(pass)@:\(port)/\(database)" + tlsQuery + "&host=" + Self.queryEncoded(host)
        }
        return "postgres://\(user)\(pass)@\(host):\(port)/\(database)" + tlsQuery
    }

    /// `?sslmode=…` and, when set, `&sslrootcert=…` (percent-encoded).
    private var tlsQuery: String {
        "?sslmode=\(sslMode.rawValue)" + (sslRootCert.map { "&sslrootcert=" + Self.queryEncoded($0) } ?? "")
    }

    private static func queryEncoded(_ value: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+;#")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if host.hasPrefix("/") {
            configuration = .init(unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS =
                switch (sslMode, tlsConfiguration) {
                case (_, nil): .disable
                case (.allow, let settings?), (.prefer, let settings?): .prefer(settings)
                case (_, let settings?): .require(settings)
                }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = connectionsMax
        configuration.options.minimumConnections = keepsConnectionsOpen ? connectionsMax : 0
        if keepsConnectionsOpen { configuration.options.keepAliveBehavior = nil }
        configuration.options.connectTimeout = .milliseconds(connectTimeoutMilliseconds)
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(statementTimeoutMilliseconds)"),
            ("lock_timeout", "\(lockTimeoutMilliseconds)"),
            ("idle_in_transaction_session_timeout", "\(idleInTransactionTimeoutMilliseconds)"),
            ("application_name", applicationName),
        ]
        // Unnamed statements (`preparedStatements` off, the PgBouncer setting) are planned per execution anyway.
        if customPlans && preparedStatements {
            configuration.options.additionalStartupParameters.append(("plan_cache_mode", "force_custom_plan"))
        }
        return configuration
    }
}
