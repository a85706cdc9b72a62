import BoxofficeStore
import EmbeddedPostgres
import Foundation
import PostgresNIO
import Testing

extension IntegrationTests {
    /// Every `sslmode` against real servers: a private cluster serving TLS with a certificate from a
    /// throwaway CA (made with the `openssl` CLI), and a private cluster without TLS.
    /// Needs the `openssl` CLI (`.ci/run` installs it); without it the tests fail, saying so.
    @Suite("Database TLS (sslmode)")
    struct DatabaseTLSTests {

        struct OpenSSLFailure: Error, CustomStringConvertible {
            let description: String
        }

        /// CA "A" signs the server's certificate, which names only `localhost` (a DNS entry, no IP entry);
        /// CA "B" is an unrelated CA that signed nothing the server presents.
        struct Certificates {
            let directory: String
            let authority: String
            let otherAuthority: String
            let serverCertificate: String
            let serverKey: String
        }

        static func makeCertificates() throws -> Certificates {
            let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            guard
                let openssl = (path.map { $0 + "/openssl" } + ["/usr/bin/openssl"]).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
            else { throw OpenSSLFailure(description: "the openssl CLI is needed to make test certificates: apt-get install openssl") }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-tls-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            func run(_ arguments: [String]) throws {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: openssl)
                process.arguments = arguments
                process.currentDirectoryURL = URL(fileURLWithPath: directory)
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                try process.run()
                let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                guard process.terminationStatus == 0 else {
                    throw OpenSSLFailure(description: "openssl \(arguments.joined(separator: " ")) failed: \(text)")
                }
            }
            let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            for name in ["ca-a", "ca-b"] {
                try run(
                    ["req", "-x509"] + key + [
                        "-keyout", "\(name).key", "-out", "\(name).pem", "-days", "2",
                        "-subj", "/CN=Boxoffice test \(name)",
                        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    ])
            }
            try run(["req"] + key + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
            try Data(
                """
                subjectAltName = DNS:localhost
                basicConstraints = CA:FALSE
                keyUsage = critical, digitalSignature
                extendedKeyUsage = serverAuth

                """.utf8
            ).write(to: URL(fileURLWithPath: directory + "/server.ext"))
            try run([
                "x509", "-req", "-in", "server.csr", "-CA", "ca-a.pem", "-CAkey", "ca-a.key", "-set_serial", "2",
                "-days", "2", "-extfile", "server.ext", "-out", "server.crt",
            ])
            return Certificates(
                directory: directory, authority: directory + "/ca-a.pem", otherAuthority: directory + "/ca-b.pem",
                serverCertificate: directory + "/server.crt", serverKey: directory + "/server.key")
        }

        /// The connection settings for `cluster` under `mode` (the URL form, as an operator writes it).
        func configuration(
            _ cluster: EmbeddedPostgres, host: String = "127.0.0.1", _ mode: String, rootCert: String? = nil
        ) throws
            -> DatabaseConfiguration
        {
            var url = "postgres://\(cluster.user)@\(host):\(cluster.port)/\(cluster.database)?sslmode=\(mode)"
            if let rootCert { url += "&sslrootcert=" + rootCert.addingPercentEncoding(withAllowedCharacters: .alphanumerics)! }
            var configuration = try DatabaseConfiguration(url: url, environment: [:])
            configuration.connectionsMax = 2
            return configuration
        }

        /// Connects through the pool and asks the server whether this very connection uses TLS.
        func sslInUse(_ configuration: DatabaseConfiguration) async throws -> Bool {
            try await withStore(configuration, logger: testLogger) { store in
                var ssl: Bool?
                for try await value in try await store.client.query(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).decode(Bool.self) { ssl = value }
                return try #require(ssl as Bool?, "pg_stat_ssl has no row for this backend")
            }
        }

        /// The start-up error for `configuration`, or nil if it connected.
        func refusal(_ configuration: DatabaseConfiguration) async -> String? {
            let store = Store(configuration: configuration, logger: testLogger)
            return await withTaskGroup(of: String?.self) { group in
                group.addTask {
                    await store.run()
                    return nil
                }
                defer { group.cancelAll() }
                do {
                    try await store.checkReachable(timeout: .seconds(2))
                    return nil
                } catch {
                    return "\(error)"
                }
            }
        }

        @Test("A TLS server: disable is plain; allow, prefer and require use TLS; verify-ca and verify-full check the chain and the name")
        func tlsServer() async throws {
            let certificates = try Self.makeCertificates()
            defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
            let cluster = try EmbeddedPostgres.start(
                options: .init(
                    durable: false, maxConnections: 40,
                    tls: .init(certificateFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey)))
            defer { cluster.destroy() }

            #expect(try await sslInUse(configuration(cluster, "disable")) == false, "disable must not ask for TLS")
            #expect(try await sslInUse(configuration(cluster, "allow")) == true, "allow behaves as prefer")
            #expect(try await sslInUse(configuration(cluster, "prefer")) == true, "prefer must take the TLS the server offers")
            #expect(try await sslInUse(configuration(cluster, "require")) == true)
            // verify-ca checks the chain only: 127.0.0.1 is not in the certificate, and that is fine.
            #expect(try await sslInUse(configuration(cluster, "verify-ca", rootCert: certificates.authority)) == true)
            #expect(try await sslInUse(configuration(cluster, host: "localhost", "verify-full", rootCert: certificates.authority)) == true)
            // libpq: require with a root certificate checks the chain, as verify-ca.
            #expect(try await sslInUse(configuration(cluster, "require", rootCert: certificates.authority)) == true)

            // verify-full to 127.0.0.1: the certificate names only localhost.
            let byAddress = try configuration(cluster, "verify-full", rootCert: certificates.authority)
            let wrongName = try #require(await refusal(byAddress), "verify-full accepted a certificate that does not name 127.0.0.1")
            #expect(wrongName.contains("does not name 127.0.0.1") && wrongName.contains("verify-full"), "\(wrongName)")

            // Another CA: the chain does not lead to it.
            for (host, mode) in [("127.0.0.1", "verify-ca"), ("localhost", "verify-full"), ("127.0.0.1", "require")] {
                let otherCA = try configuration(cluster, host: host, mode, rootCert: certificates.otherAuthority)
                let untrusted = try #require(await refusal(otherCA), "\(mode) accepted a certificate that another CA signed")
                #expect(untrusted.contains("not signed by a CA in sslrootcert=\(certificates.otherAuthority)"), "\(mode): \(untrusted)")
            }
        }

        @Test("A server without TLS: prefer and allow fall back to plain, require and verify-* are refused")
        func plainServer() async throws {
            let certificates = try Self.makeCertificates()
            defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
            let cluster = try EmbeddedPostgres.start(options: .init(durable: false, maxConnections: 40))
            defer { cluster.destroy() }

            #expect(try await sslInUse(configuration(cluster, "prefer")) == false)
            #expect(try await sslInUse(configuration(cluster, "allow")) == false)
            #expect(try await sslInUse(configuration(cluster, "disable")) == false)
            for (host, mode) in [("127.0.0.1", "require"), ("127.0.0.1", "verify-ca"), ("localhost", "verify-full")] {
                let rootCert = mode == "require" ? nil : certificates.authority
                let tlsRequired = try configuration(cluster, host: host, mode, rootCert: rootCert)
                let refused = try #require(await refusal(tlsRequired), "\(mode) connected to a server without TLS")
                #expect(refused.contains("the server does not offer TLS and sslmode=\(mode) requires it"), "\(refused)")
            }
        }
    }
}
