import BoxofficeStore
import EmbeddedPostgres
import Foundation
import Logging
import Synchronization

/// Where demo, bench and the integration tests get PostgreSQL, written once: DATABASE_URL's server
/// (or PGHOST & co.) when set, else a private cluster started from the installed binaries; and fresh
/// databases on it, empty or migrated.
///
/// It lives in the Harness because that is what demo, bench and the tests already share, and it
/// needs both the Store (connections, migrations) and EmbeddedPostgres.
package final class DatabaseServer: Sendable {
    /// The server's own database (DATABASE_URL's, or the private cluster's `boxoffice`): where
    /// databases are created and dropped from.
    package let base: DatabaseConfiguration
    /// The private cluster, when one was started (nil with DATABASE_URL).
    package let cluster: EmbeddedPostgres?
    let logger: Logger
    let counter = Atomic<Int>(0)
    /// The migrated template fresh databases are cloned from, made by the first caller.
    let template = Mutex<Task<String, any Error>?>(nil)

    init(base: DatabaseConfiguration, cluster: EmbeddedPostgres?, logger: Logger) {
        self.base = base
        self.cluster = cluster
        self.logger = logger
    }

    /// DATABASE_URL's server if one is configured, else a private cluster started with `options`.
    /// `adjust` changes the settings every connection (and every database made here) starts from.
    /// `say` is told which one it is, for a command's progress lines.
    package static func start(
        privateCluster options: EmbeddedPostgres.Options, logger: Logger,
        adjust: (inout DatabaseConfiguration) -> Void = { _ in },
        say: (String) -> Void = { _ in }
    ) throws -> DatabaseServer {
        var base: DatabaseConfiguration
        var cluster: EmbeddedPostgres?
        if let configured = try DatabaseConfiguration.fromEnvironment() {
            base = configured
            say("using the database at \(configured)")
        } else {
            say("starting a private PostgreSQL (\(options.durable ? "default durability: fsync and synchronous_commit on" : "fsync off"))…")
            let started = try EmbeddedPostgres.start(options: options)
            cluster = started
            base = try DatabaseConfiguration(url: started.url)
            say("  \(started.url) in \(started.dataDirectory)")
        }
        adjust(&base)
        return DatabaseServer(base: base, cluster: cluster, logger: logger)
    }

    /// Stops and deletes the private cluster, if one was started.
    package func destroy() {
        cluster?.destroy()
    }

    /// The migrations built into this binary (``Migration/embedded``).
    package static func migrations() -> [Migration] {
        Migration.embedded
    }

    /// Applies the built-in migrations through `store`; returns the names applied.
    @discardableResult
    package static func migrate(_ store: Store) async throws -> [String] {
        try await store.migrate(migrations())
    }

    /// A new database with no tables, named `<prefix>_<pid>_<n>_<random>`.
    package func emptyDatabase(prefix: String) async throws -> DatabaseConfiguration {
        try await createDatabase(prefix: prefix, template: nil)
    }

    /// A new, migrated database: a copy of a migrated template (`CREATE DATABASE … TEMPLATE`), made
    /// on first use. Measured on the test cluster, 20 calls: ~60 ms each cloned, ~180–220 ms each
    /// migrated from empty.
    package func migratedDatabase(prefix: String) async throws -> DatabaseConfiguration {
        try await createDatabase(prefix: prefix, template: try await migratedTemplate())
    }

    /// Drops a database made here (its connections are closed first: `WITH (FORCE)`).
    package func drop(_ database: DatabaseConfiguration, ifExists: Bool = false) async throws {
        let name = database.database
        try await withStore(base, logger: logger) { store in
            let guarded = ifExists ? "IF EXISTS " : ""
            try await store.client.query("DROP DATABASE \(unescaped: guarded)\(unescaped: name) WITH (FORCE)", logger: store.logger)
        }
    }

    private func createDatabase(prefix: String, template: String?) async throws -> DatabaseConfiguration {
        let name = "\(prefix)_\(getpid())_\(counter.add(1, ordering: .relaxed).newValue)_\(UInt32.random(in: 0...UInt32.max))"
        try await withStore(base, logger: logger) { store in
            let copying = template.map { " TEMPLATE \($0)" } ?? ""
            try await store.client.query("CREATE DATABASE \(unescaped: name)\(unescaped: copying)", logger: store.logger)
        }
        var database = base
        database.database = name
        return database
    }

    /// The name of a migrated database to clone, made once per process (and reused across runs on
    /// the same server while the migrations are unchanged: the name carries their fingerprint).
    private func migratedTemplate() async throws -> String {
        let task = template.withLock { template in
            if let template { return template }
            let made = Task { try await self.makeTemplate() }
            template = made
            return made
        }
        return try await task.value
    }

    private func makeTemplate() async throws -> String {
        let migrations = Self.migrations()
        let name = "boxoffice_template_\(Self.fingerprint(migrations))"
        if try await databaseExists(name) { return name }
        // Built under another name and renamed when complete, so a half-made template is never cloned;
        // no connection to it may stay open (CREATE DATABASE … TEMPLATE refuses then).
        let building = try await emptyDatabase(prefix: "boxoffice_template_building")
        try await withStore(building, logger: logger) { try await $0.migrate(migrations) }
        do {
            try await withStore(base, logger: logger) { store in
                try await store.client.query("ALTER DATABASE \(unescaped: building.database) RENAME TO \(unescaped: name)", logger: store.logger)
            }
        } catch {
            // Another process finished the same template first: use it, drop ours.
            try? await drop(building, ifExists: true)
            guard try await databaseExists(name) else { throw error }
        }
        return name
    }

    private func databaseExists(_ name: String) async throws -> Bool {
        try await withStore(base, logger: logger) { store in
            var found = false
            let rows = try await store.client.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: store.logger)
            for try await _ in rows { found = true }
            return found
        }
    }

    /// FNV-1a over the migrations' names and text, 12 hex digits.
    static func fingerprint(_ migrations: [Migration]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in migrations.map({ "\($0.name)\n\($0.sql)\n" }).joined().utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return String(String(hash, radix: 16).suffix(12))
    }
}
