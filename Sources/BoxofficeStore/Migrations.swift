import Foundation
import Logging
import PostgresNIO

/// One numbered SQL file of `db/migrations`, e.g. `0001_core.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// The file's statements, split at top-level semicolons (quotes, dollar quotes and comments respected).
    public var statements: [String] { Self.split(sql) }

    static func split(_ sql: String) -> [String] {
        var statements: [String] = []
        var current = ""
        let characters = Array(sql)
        var index = 0
        func flush() {
            let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { statements.append(trimmed) }
            current = ""
        }
        while index < characters.count {
            let character = characters[index]
            let next: Character? = index + 1 < characters.count ? characters[index + 1] : nil
            if character == "-" && next == "-" {
                while index < characters.count && characters[index] != "\n" { index += 1 }
                continue
            }
            if character == "/" && next == "*" {
                index += 2
                while index + 1 < characters.count && !(characters[index] == "*" && characters[index + 1] == "/") { index += 1 }
                index += 2
                continue
            }
            if character == "'" || character == "\"" {
                current.append(character)
                index += 1
                while index < characters.count {
                    current.append(characters[index])
                    index += 1
                    if characters[index - 1] == character { break }
                }
                continue
            }
            if character == "$" {
                // A dollar-quote tag: $$ or $name$.
                var end = index + 1
                while end < characters.count && (characters[end].isLetter || characters[end].isNumber || characters[end] == "_") { end += 1 }
                if end < characters.count && characters[end] == "$" {
                    let tag = String(characters[index...end])
                    current += tag
                    index = end + 1
                    let rest = String(characters[index...])
                    if let close = rest.range(of: tag) {
                        current += rest[..<close.upperBound]
                        index += rest.distance(from: rest.startIndex, to: close.upperBound)
                    } else {
                        current += rest
                        index = characters.count
                    }
                    continue
                }
            }
            if character == ";" {
                flush()
                index += 1
                continue
            }
            current.append(character)
            index += 1
        }
        flush()
        return statements
    }

    /// The migrations this binary was built with: every `db/migrations/*.sql` of its source tree,
    /// compiled in by the EmbedFiles plugin. What `migrate` applies unless told otherwise.
    public static let embedded: [Migration] = {
        do {
            return try numbered(Embedded.files.map { ($0.name, $0.text) }, from: "the migrations compiled into this binary")
        } catch {
            preconditionFailure("the embedded migrations are not numbered files: \(error); the package build is broken")
        }
    }()

    /// The migrations to apply: `directory` (an operator's `--migrations-dir`), else the folder in
    /// `BOXOFFICE_MIGRATIONS_DIR`, else ``embedded``. Overrides are for trying a migration out; a
    /// deployed binary needs neither.
    public static func resolve(directory: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [Migration] {
        guard let folder = directory ?? environment["BOXOFFICE_MIGRATIONS_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            return embedded
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StoreError.migrationFailed(
                "no migrations folder at \(folder) (from --migrations-dir or BOXOFFICE_MIGRATIONS_DIR); "
                    + "unset both to apply the migrations built into this binary")
        }
        return try load(directory: URL(fileURLWithPath: folder))
    }

    /// Reads `NNNN_name.sql` files in version order; anything else in the folder is ignored.
    public static func load(directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }.sorted()
        let texts = try files.map { ($0, try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)) }
        return try numbered(texts, from: directory.path)
    }

    /// Files named `NNNN_name.sql` → migrations in version order; a name without its number or two
    /// files with one number are an error, not a surprise.
    static func numbered(_ files: [(name: String, sql: String)], from source: String) throws -> [Migration] {
        var migrations: [Migration] = []
        for (name, sql) in files {
            guard let version = Int(name.prefix { $0.isNumber }), name.first?.isNumber == true else {
                throw StoreError.migrationFailed("migration file \(name) must start with its number, e.g. 0002_add_x.sql")
            }
            migrations.append(Migration(version: version, name: name, sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        let versions = migrations.map(\.version)
        guard Set(versions).count == versions.count else {
            throw StoreError.migrationFailed("two migration files in \(source) share a number")
        }
        return migrations
    }
}

extension Store {
    /// Applies the migrations not yet applied, each in its own transaction. Each transaction first
    /// takes a transaction-scoped advisory lock, so concurrent `migrate` runs queue up instead of
    /// racing, and no lock outlives its transaction (safe behind PgBouncer in transaction mode,
    /// where a session lock could stay behind on a pooled server connection). Returns the names
    /// applied (empty: a no-op).
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [String] {
        try await leased { connection in
            var names: [String] = []
            while true {
                // One statement per message (the extended protocol takes no scripts); BEGIN/COMMIT make each file atomic.
                try await connection.query("BEGIN", logger: logger)
                do {
                    // Arbitrary constant: the lock id of "boxoffice migrations".
                    try await connection.query("SELECT pg_advisory_xact_lock(727274001)", logger: logger)
                    try await connection.query(
                        """
                        CREATE TABLE IF NOT EXISTS schema_migrations (
                            version integer PRIMARY KEY,
                            name text NOT NULL,
                            applied_at timestamptz NOT NULL DEFAULT now()
                        )
                        """, logger: logger)
                    var applied = Set<Int>()
                    for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                        applied.insert(version)
                    }
                    guard let migration = migrations.first(where: { !applied.contains($0.version) }) else {
                        try await connection.query("COMMIT", logger: logger)
                        return names
                    }
                    logger.info("applying migration", metadata: ["migration": "\(migration.name)"])
                    do {
                        for statement in migration.statements {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                    } catch {
                        throw StoreError.migrationFailed("migration \(migration.name) failed: \(String(reflecting: error))")
                    }
                    try await connection.query(
                        "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))", logger: logger)
                    try await connection.query("COMMIT", logger: logger)
                    names.append(migration.name)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }
}
