import ArgumentParser
import BoxofficeStore
import Foundation
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the pending SQL migrations built into this binary (db/migrations; running it twice is a no-op).")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap(label: "boxoffice.migrate")
        let migrations = try database.migrations()
        let applied = try await withStore(try database.configuration(), logger: logger) { try await $0.migrate(migrations) }
        print(applied.isEmpty ? "database is up to date (\(migrations.count) migrations)" : "applied \(applied.joined(separator: ", "))")
    }
}
