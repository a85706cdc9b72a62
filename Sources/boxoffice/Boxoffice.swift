import ArgumentParser
import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Logging

@main
struct Boxoffice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boxoffice",
        abstract: "Flash-sale ticket allocation on PostgreSQL: intake queue, batch allocation, outcomes.",
        discussion: """
            The database comes from DATABASE_URL (postgres://user:password@host:5432/db) or the libpq \
            variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. TLS follows libpq: ?sslmode= \
            (disable, allow, prefer (default), require, verify-ca, verify-full) and ?sslrootcert=/ca.pem, or \
            PGSSLMODE and PGSSLROOTCERT. `demo` and `bench` start a private PostgreSQL when neither is set.

            Typical deployment: `boxoffice migrate` once, `boxoffice serve` behind a load balancer, and as \
            many `boxoffice work` processes as the database can feed; `boxoffice prune --older-than 30d` on a \
            schedule to delete old outcomes (docs/operations.md).
            """,
        subcommands: [Migrate.self, Serve.self, Work.self, EventCommand.self, IntentCommand.self, Verify.self, Prune.self, Demo.self, Bench.self],
        defaultSubcommand: nil
    )
}

/// Commands fail with one clear line, not a stack trace.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Database options shared by the commands that talk to PostgreSQL.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "Database connections this process may hold at most.")
    var connectionsMax: Int = 16

    @Flag(help: "Run every statement unnamed (behind PgBouncer in transaction mode before 1.21, which cannot keep prepared statements).")
    var noPreparedStatements = false

    @Option(help: "Directory of numbered SQL migrations to apply instead of the ones built into this binary (also: BOXOFFICE_MIGRATIONS_DIR).")
    var migrationsDir: String?

    func configuration() throws -> DatabaseConfiguration {
        guard var configuration = try DatabaseConfiguration.fromEnvironment() else {
            throw CommandError(
                "no database configured: set DATABASE_URL=postgres://user:password@host:5432/db (or PGHOST & co.); `boxoffice demo` starts its own")
        }
        guard (1...500).contains(connectionsMax) else { throw CommandError("--connections-max must be between 1 and 500") }
        configuration.connectionsMax = connectionsMax
        configuration.preparedStatements = !noPreparedStatements
        return configuration
    }

    func migrations() throws -> [Migration] {
        try Migration.resolve(directory: migrationsDir)
    }
}
