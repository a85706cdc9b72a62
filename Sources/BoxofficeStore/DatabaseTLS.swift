import BoxofficeConcurrency
import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

extension DatabaseConfiguration {
    /// libpq's `sslmode`, with libpq's meanings, for TCP connections.
    ///
    /// Operators copy connection strings between `psql`, PgBouncer and Boxoffice: the same word must give
    /// the same protection everywhere.
    public enum SSLMode: String, Sendable, CaseIterable, Equatable {
        /// Plain TCP only; TLS is never asked for.
        case disable
        /// libpq tries plain TCP first and TLS only if the server insists. PostgresNIO can only ask for
        /// TLS first, so `allow` behaves as ``prefer``: it connects to every server `allow` would, with
        /// TLS whenever the server offers it (never less protection than libpq's `allow`).
        case allow
        /// TLS when the server offers it, else plain TCP; the certificate is not checked (libpq's default).
        /// Protects against passive eavesdropping only: an active attacker can refuse TLS or present any
        /// certificate.
        case prefer
        /// TLS or no connection. The certificate is not checked, unless a root certificate is given
        /// (``DatabaseConfiguration/sslRootCert`` or `~/.postgresql/root.crt`): then the chain is checked
        /// as ``verifyCA`` does, which is what libpq does.
        case require
        /// TLS, and the server's certificate must chain to the CA in `sslrootcert`; the host name is not
        /// compared (any certificate that CA signed is accepted).
        case verifyCA = "verify-ca"
        /// TLS, the chain checked against `sslrootcert`, and the certificate must name the host connected
        /// to (a DNS name for a host name, an IP address entry for an IP). What a careful operator sets.
        case verifyFull = "verify-full"
    }

    /// Where the CA certificates for checking the server's chain come from.
    enum RootCertificates: Equatable {
        /// A PEM file of CA certificates.
        case file(String)
        /// The operating system's trust store (`sslrootcert=system`).
        case system
    }

    /// libpq's default root certificate file, `~/.postgresql/root.crt`.
    static func defaultRootCertPath(home: String?) -> String? {
        guard let home, !home.isEmpty else { return nil }
        return home + "/.postgresql/root.crt"
    }

    /// The CA certificates this configuration checks against: `sslrootcert`, else `~/.postgresql/root.crt`
    /// when that file exists (as libpq), else nil.
    func rootCertificates(home: String?) -> RootCertificates? {
        if let sslRootCert { return sslRootCert == "system" ? .system : .file(sslRootCert) }
        if let path = Self.defaultRootCertPath(home: home), FileManager.default.fileExists(atPath: path) { return .file(path) }
        return nil
    }

    /// Throws when the TLS settings cannot work, with a message that says what to set: `verify-ca` or
    /// `verify-full` without a CA certificate, a `sslrootcert` file that cannot be read, or
    /// `sslrootcert=system` with a mode weaker than `verify-full` (libpq 16 refuses it too: any
    /// publicly trusted certificate would otherwise do). Unix-socket hosts are not checked: they never
    /// use TLS. `home` locates libpq's default `~/.postgresql/root.crt`.
    public func validateTLS(home: String? = ProcessInfo.processInfo.environment["HOME"]) throws {
        guard !host.hasPrefix("/"), sslMode != .disable else { return }
        switch rootCertificates(home: home) {
        case .system?:
            guard sslMode == .verifyFull else {
                throw InvalidURL(
                    description: "sslrootcert=system trusts every public CA, so it needs sslmode=verify-full "
                        + "(got sslmode=\(sslMode.rawValue)); set sslmode=verify-full or give the CA file in sslrootcert")
            }
        case .file(let path)?:
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw InvalidURL(
                    description: "sslrootcert=\(path): no readable file there (a PEM file of the CA "
                        + "certificates that signed the server's certificate)")
            }
        case nil:
            if sslMode == .verifyCA || sslMode == .verifyFull {
                let defaultPath = Self.defaultRootCertPath(home: home) ?? "~/.postgresql/root.crt"
                throw InvalidURL(
                    description: "sslmode=\(sslMode.rawValue) checks the server's certificate against a CA, "
                        + "but none is given: add sslrootcert=/path/to/ca.pem to DATABASE_URL (or set PGSSLROOTCERT, or put the "
                        + "CA certificate in \(defaultPath))")
            }
        }
    }

    /// The NIOSSL client settings for this configuration; nil when the connection is plain (`disable`, or
    /// a Unix socket). Checks what the mode says and nothing more: `.none`, `.noHostnameVerification`
    /// (chain only) or `.fullVerification` (chain and host name).
    var tlsConfiguration: TLSConfiguration? {
        guard sslMode != .disable, !host.hasPrefix("/") else { return nil }
        let home = ProcessInfo.processInfo.environment["HOME"]
        let roots = rootCertificates(home: home)
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable, .allow, .prefer:
            tls.certificateVerification = .none
        case .require:
            if case .file(let path)? = roots {
                tls.certificateVerification = .noHostnameVerification
                tls.trustRoots = .file(path)
            } else {
                tls.certificateVerification = .none
            }
        case .verifyCA, .verifyFull:
            tls.certificateVerification = sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
            switch roots {
            case .system?: tls.trustRoots = .default
            case .file(let path)?: tls.trustRoots = .file(path)
            // validateTLS refuses this at parse time; a configuration built in code fails at connect,
            // naming the file, rather than falling back to trusting anything.
            case nil: tls.trustRoots = .file(Self.defaultRootCertPath(home: home) ?? "/nonexistent/.postgresql/root.crt")
            }
        }
        return tls
    }

    /// Opens one connection outside the pool, bounded by `timeout`, and returns why it failed in words an
    /// operator can act on (nil when it connected).
    ///
    /// The pool retries a failing connection forever and its callers only see a timeout; this probe sees
    /// the actual cause: TLS refused, certificate not trusted, host name not in the certificate.
    public func connectionFailure(timeout: Duration, logger: Logger) async -> String? {
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch (sslMode, tlsConfiguration) {
            case (_, nil): tls = .disable
            case (.allow, let settings?), (.prefer, let settings?): tls = .prefer(try NIOSSLContext(configuration: settings))
            case (_, let settings?): tls = .require(try NIOSSLContext(configuration: settings))
            }
        } catch {
            return "the TLS settings cannot be loaded (sslrootcert=\(sslRootCert ?? "default")): \(error)"
        }
        var connectionConfiguration: PostgresConnection.Configuration
        if host.hasPrefix("/") {
            connectionConfiguration = .init(
                unixSocketPath: "\(host)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            connectionConfiguration = .init(
                host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        connectionConfiguration.options.connectTimeout = .milliseconds(Int64(connectTimeoutMilliseconds))
        let probe = connectionConfiguration
        do {
            let connection = try await withTimeout(timeout) {
                try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            }
            try? await connection.close()
            return nil
        } catch {
            return explainConnectionFailure(error)
        }
    }

    /// Words for a connection failure: TLS causes spelled out, anything else as PostgresNIO reports it.
    func explainConnectionFailure(_ error: any Error) -> String {
        if error is TimeoutError { return "no answer within the connect timeout" }
        guard let psql = error as? PSQLError else { return String(reflecting: error) }
        if psql.code == .sslUnsupported {
            return "the server does not offer TLS and sslmode=\(sslMode.rawValue) requires it "
                + "(enable ssl on the server, or use sslmode=prefer to accept a plain connection)"
        }
        if let serverInfo = psql.serverInfo, let message = serverInfo[.message] {
            return "the server refused the connection: \(message)"
        }
        if let underlying = psql.underlying {
            if let extra = underlying as? NIOSSLExtraError, extra == .failedToValidateHostname {
                return "the server's certificate does not name \(host), and sslmode=verify-full requires it to "
                    + "(\(extra)); connect by a name the certificate carries, or reissue the certificate"
            }
            if case NIOSSLError.handshakeFailed(let reason) = underlying {
                let reasonText = String(describing: reason)
                if reasonText.contains("CERTIFICATE_VERIFY_FAILED") {
                    return "the server's certificate is not signed by a CA in sslrootcert=\(sslRootCert ?? "(default)") "
                        + "(sslmode=\(sslMode.rawValue) checks the chain): TLS handshake failed: \(reasonText)"
                }
                return "TLS handshake failed: \(reasonText)"
            }
            return "\(psql.code): \(String(reflecting: underlying))"
        }
        return String(reflecting: psql)
    }
}
