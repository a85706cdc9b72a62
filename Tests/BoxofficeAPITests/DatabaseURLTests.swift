import BoxofficeStore
import Foundation
import Testing

/// `DATABASE_URL` and libpq-variable parsing of the TLS settings (`sslmode`, `sslrootcert`); no database.
/// What each mode does on the wire is checked against a TLS-enabled cluster in the integration tests.
@Suite("Database URL: sslmode and sslrootcert")
struct DatabaseURLTests {
    typealias Mode = DatabaseConfiguration.SSLMode

    /// A temp directory with a (syntactically irrelevant) CA file in it, removed by the caller.
    func temporaryCA() throws -> (directory: String, file: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-url-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/dir with space", withIntermediateDirectories: true)
        let file = directory + "/dir with space/ca.pem"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("-----BEGIN CERTIFICATE-----\n".utf8)))
        return (directory, file)
    }

    func message(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test("prefer is the default, on remote hosts and loopback alike (libpq's default)")
    func defaultIsPrefer() throws {
        for url in ["postgres://u@db.example.com:5432/x", "postgres://u@127.0.0.1/x", "postgresql://u:p@localhost/x"] {
            let configuration = try DatabaseConfiguration(url: url, environment: [:])
            #expect(configuration.sslMode == .prefer, "\(url)")
            #expect(configuration.sslRootCert == nil)
        }
        let fromVariables = try #require(try DatabaseConfiguration.fromEnvironment(["PGHOST": "db.example.com"]))
        #expect(fromVariables.sslMode == .prefer)
    }

    @Test("Every libpq mode parses; verify-* take sslrootcert (percent-encoded) from the URL")
    func everyMode() throws {
        let ca = try temporaryCA()
        defer { try? FileManager.default.removeItem(atPath: ca.directory) }
        let encoded = ca.file.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        for mode in Mode.allCases {
            let configuration = try DatabaseConfiguration(
                url: "postgres://u@db.example.com/x?sslmode=\(mode.rawValue)&sslrootcert=\(encoded)", environment: [:])
            #expect(configuration.sslMode == mode)
            #expect(configuration.sslRootCert == ca.file)
        }
        #expect(Mode.allCases.map(\.rawValue) == ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])
    }

    @Test("PGSSLMODE and PGSSLROOTCERT apply when the URL does not say; the URL wins when it does")
    func environmentFallback() throws {
        let ca = try temporaryCA()
        defer { try? FileManager.default.removeItem(atPath: ca.directory) }
        let environment = ["PGSSLMODE": "verify-full", "PGSSLROOTCERT": ca.file]
        let fromVariables = try DatabaseConfiguration(url: "postgres://u@db.example.com/x", environment: environment)
        #expect(fromVariables.sslMode == .verifyFull && fromVariables.sslRootCert == ca.file)
        let urlWins = try DatabaseConfiguration(url: "postgres://u@db.example.com/x?sslmode=disable", environment: environment)
        #expect(urlWins.sslMode == .disable)
        let libpqOnly = try #require(try DatabaseConfiguration.fromEnvironment(["PGHOST": "db.example.com"].merging(environment) { $1 }))
        #expect(libpqOnly.sslMode == .verifyFull && libpqOnly.sslRootCert == ca.file)
        let viaURLVariable = try #require(
            try DatabaseConfiguration.fromEnvironment(
                ["DATABASE_URL": "postgres://u@db.example.com/x", "PGSSLMODE": "require"]))
        #expect(viaURLVariable.sslMode == .require)
    }

    @Test("An unknown sslmode is a configuration error naming the valid ones")
    func unknownMode() throws {
        for (url, environment, source) in [
            ("postgres://u@h/x?sslmode=verify_full", [String: String](), "sslmode in DATABASE_URL"),
            ("postgres://u@h/x?sslmode=true", [:], "sslmode in DATABASE_URL"),
            ("postgres://u@h/x", ["PGSSLMODE": "on"], "PGSSLMODE"),
        ] {
            let text = try #require(message { _ = try DatabaseConfiguration(url: url, environment: environment) }, "\(url) accepted")
            #expect(
                text.contains("unknown sslmode") && text.contains(source)
                    && text.contains("disable, allow, prefer, require, verify-ca, verify-full"), "\(text)")
        }
        let variables = message { _ = try DatabaseConfiguration.fromEnvironment(["PGHOST": "h", "PGSSLMODE": "strict"]) }
        #expect(variables?.contains("unknown sslmode \"strict\"") == true, "\(variables ?? "accepted")")
    }

    @Test("verify-ca/verify-full need a CA: missing or unreadable sslrootcert is refused; ~/.postgresql/root.crt is used")
    func rootCertificateRules() throws {
        let ca = try temporaryCA()
        defer { try? FileManager.default.removeItem(atPath: ca.directory) }
        for mode in ["verify-ca", "verify-full"] {
            let missing = message { _ = try DatabaseConfiguration(url: "postgres://u@h/x?sslmode=\(mode)", environment: ["HOME": ca.directory]) }
            #expect(missing?.contains("add sslrootcert=") == true && missing?.contains(".postgresql/root.crt") == true, "\(missing ?? "accepted")")
            let unreadable = message {
                _ = try DatabaseConfiguration(url: "postgres://u@h/x?sslmode=\(mode)&sslrootcert=/nonexistent/ca.pem", environment: [:])
            }
            #expect(unreadable?.contains("sslrootcert=/nonexistent/ca.pem: no readable file") == true, "\(unreadable ?? "accepted")")
        }
        // libpq's default file is found through HOME.
        try FileManager.default.createDirectory(atPath: ca.directory + "/.postgresql", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ca.file, toPath: ca.directory + "/.postgresql/root.crt")
        let defaulted = try DatabaseConfiguration(url: "postgres://u@h/x?sslmode=verify-full", environment: ["HOME": ca.directory])
        #expect(defaulted.sslMode == .verifyFull && defaulted.sslRootCert == ca.directory + "/.postgresql/root.crt")
        // Modes without a chain check never need one; Unix sockets never use TLS.
        for mode in ["disable", "allow", "prefer", "require"] {
            #expect(try DatabaseConfiguration(url: "postgres://u@h/x?sslmode=\(mode)", environment: [:]).sslMode.rawValue == mode)
        }
        let socket = try DatabaseConfiguration(url: "postgres://u@/x?host=%2Fvar%2Frun%2Fpostgresql&sslmode=verify-full", environment: [:])
        #expect(socket.host == "/var/run/postgresql" && socket.sslMode == .verifyFull)
    }

    @Test("sslrootcert=system means verify-full, and refuses weaker modes (libpq 16)")
    func systemTrustStore() throws {
        let implied = try DatabaseConfiguration(url: "postgres://u@h/x?sslrootcert=system", environment: [:])
        #expect(implied.sslMode == .verifyFull && implied.sslRootCert == "system")
        for mode in ["require", "verify-ca"] {
            let text = message { _ = try DatabaseConfiguration(url: "postgres://u@h/x?sslmode=\(mode)&sslrootcert=system", environment: [:]) }
            #expect(text?.contains("needs sslmode=verify-full") == true, "\(text ?? "accepted")")
        }
    }

    @Test("url carries sslmode and sslrootcert to child processes; description never shows the password")
    func urlRoundTrip() throws {
        let ca = try temporaryCA()
        defer { try? FileManager.default.removeItem(atPath: ca.directory) }
        var remote = DatabaseConfiguration(host: "db.example.com", port: 6432, username: "box office", password: "p@ss:w/rd&x", database: "sale")
        remote.sslMode = .verifyFull
        remote.sslRootCert = ca.file
        var socket = DatabaseConfiguration(host: "/var/run/postgresql", username: "u", database: "d")
        socket.sslMode = .disable
        var plain = DatabaseConfiguration(host: "127.0.0.1", username: "u", database: "d")
        plain.sslMode = .require
        for configuration in [remote, socket, plain] {
            // A child process with a different PGSSLMODE still connects as the parent does.
            let reparsed = try DatabaseConfiguration(url: configuration.url, environment: ["PGSSLMODE": "allow"])
            #expect(reparsed == configuration, "\(configuration.url)")
            #expect(!configuration.description.contains("p@ss") && configuration.description.contains("sslmode=\(configuration.sslMode.rawValue)"))
        }
        #expect(remote.url.contains("sslmode=verify-full&sslrootcert=") && remote.description.contains(":***@"))
    }
}
