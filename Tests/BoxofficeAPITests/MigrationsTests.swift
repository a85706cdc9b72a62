import BoxofficeStore
import Foundation
import Testing

/// The binary carries its schema: the migrations compiled in are exactly `db/migrations`, and the
/// overrides (`--migrations-dir`, `BOXOFFICE_MIGRATIONS_DIR`) win over them in that order. No database.
@Suite("Migrations compiled into the binary")
struct MigrationsTests {
    /// The repository's db/migrations, found from this file (Tests/BoxofficeAPITests/…).
    static let sourceFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("db/migrations")

    @Test("The embedded migrations are db/migrations, file for file, byte for byte, in version order")
    func embeddedAreTheSourceOfTruth() throws {
        let onDisk = try Migration.load(directory: Self.sourceFolder)
        #expect(onDisk.count >= 3)
        #expect(Migration.embedded == onDisk)
        #expect(Migration.embedded.map(\.version) == Migration.embedded.map(\.version).sorted())
    }

    @Test("Statements split at top-level semicolons only: quotes, dollar quotes and comments kept whole")
    func splitting() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; comment */ CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
            SELECT $$;$$, "odd;name"
            """
        let statements = Migration(version: 1, name: "x.sql", sql: sql).statements
        #expect(statements.count == 3)
        #expect(statements[0] == "CREATE TABLE a (x text DEFAULT 'a;b')")
        #expect(statements[1].hasSuffix("$body$ BEGIN RETURN 1; END $body$"))
        #expect(statements[2] == #"SELECT $$;$$, "odd;name""#)
    }

    @Test("Lookup order: the flag's folder, then BOXOFFICE_MIGRATIONS_DIR, then the embedded ones")
    func overrides() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "SELECT 1;\n".write(to: folder.appendingPathComponent("0001_only.sql"), atomically: true, encoding: .utf8)

        #expect(try Migration.resolve(directory: nil, environment: [:]) == Migration.embedded)
        #expect(try Migration.resolve(directory: nil, environment: ["BOXOFFICE_MIGRATIONS_DIR": ""]) == Migration.embedded)
        #expect(try Migration.resolve(directory: nil, environment: ["BOXOFFICE_MIGRATIONS_DIR": folder.path]).map(\.name) == ["0001_only.sql"])
        #expect(try Migration.resolve(directory: folder.path, environment: ["BOXOFFICE_MIGRATIONS_DIR": "/nowhere"]).map(\.name) == ["0001_only.sql"])
        #expect(throws: (any Error).self) { try Migration.resolve(directory: "/nowhere/at/all", environment: [:]) }
    }

    @Test("A folder with a file that has no number, or two files with one number, is refused with a message")
    func badFolders() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("boxoffice-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "SELECT 1;".write(to: folder.appendingPathComponent("0001_a.sql"), atomically: true, encoding: .utf8)
        try "SELECT 2;".write(to: folder.appendingPathComponent("0001_b.sql"), atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try Migration.load(directory: folder) }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("0001_b.sql"))
        try "SELECT 3;".write(to: folder.appendingPathComponent("extra.sql"), atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try Migration.load(directory: folder) }
    }
}
