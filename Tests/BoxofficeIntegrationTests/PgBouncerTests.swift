import BoxofficeHarness
import BoxofficeStore
import Foundation
import Testing

extension IntegrationTests {
    @Suite("PgBouncer")
    struct PgBouncerTests {
        @Test(
            "Behind PgBouncer in transaction mode: migrate, intake, polling workers and long-polls sell exactly the capacity",
            .enabled(if: PgBouncer.executable != nil, "needs Debian's pgbouncer (`.ci/run` installs it)"))
        func transactionPooling() async throws {
            let bouncer = try PgBouncer(server: try TestCluster.server.get().base)
            defer { bouncer.stop() }
            try await withLiveAPI(
                configure: { $0.watcher.listen = false },
                prepare: { database in
                    // PgBouncer drops the timeouts Boxoffice sends at startup: the database carries them.
                    try await withStore(database, logger: testLogger) { store in
                        for (name, value) in [("statement_timeout", "15s"), ("lock_timeout", "5s"), ("idle_in_transaction_session_timeout", "30s")] {
                            try await store.client.query(
                                "ALTER DATABASE \(unescaped: database.database) SET \(unescaped: name) = '\(unescaped: value)'")
                        }
                    }
                    return bouncer.route(database)
                }
            ) { api in
                #expect(api.database.port == bouncer.port)
                let settings = try await api.store.client.query(
                    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
                ).decode((String, String).self).all()
                #expect(settings.map { [$0.0, $0.1] } == [["15s", "5s"]], "the bounds must hold behind the pooler")

                // migrate through the pooler: its lock lives and dies with each transaction.
                let migrate = Process()
                migrate.executableURL = ChildProcesses.siblingExecutable()
                migrate.arguments = ["migrate", "--no-prepared-statements", "--log-format", "json"]
                migrate.environment = ProcessInfo.processInfo.environment.merging(["DATABASE_URL": api.database.url]) { $1 }
                migrate.currentDirectoryURL = repositoryRoot
                migrate.standardOutput = FileHandle.nullDevice
                migrate.standardError = FileHandle.nullDevice
                try migrate.run()
                // Polled: Foundation's waitUntilExit spins a core on Linux and holds a cooperative thread.
                while migrate.isRunning { try await Task.sleep(for: .milliseconds(20)) }
                #expect(migrate.terminationStatus == 0, "migrate through PgBouncer failed")

                let workers = workerProcesses(api.database, batchSize: 32, extra: ["--no-listen", "--no-prepared-statements"])
                _ = try await SaleTests.sellOut(api, capacity: 500, intents: 1_500, clients: 32, workers: workers, count: 2)
            }
        }
    }
}
