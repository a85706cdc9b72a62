// swift-tools-version:6.0
import PackageDescription

// Targets read like the architecture: a pure Core, a Store that owns every line of the product's SQL,
// a thin HTTP API, the Worker loop, and one `boxoffice` executable that only wires them. The benchmark,
// the test harness and the build plugin sit beside them, never inside.
let package = Package(
    name: "boxoffice",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "boxoffice", targets: ["boxoffice"]),
        .library(name: "BoxofficeCore", targets: ["BoxofficeCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Domain values, the allocator and the one seeded generator. Pure Swift: no I/O, no Postgres.
        .target(name: "BoxofficeCore"),
        // Bounded waits, the process-wide deadline clock, the doorbell and the LISTEN retry loop: what the
        // Store, the API and the Worker share for waiting. No Postgres.
        .target(name: "BoxofficeConcurrency"),
        // Every SQL statement, the migrations runner and the connection configuration.
        .target(
            name: "BoxofficeStore",
            dependencies: [
                "BoxofficeConcurrency",
                "BoxofficeCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // TLS settings of database connections (sslmode, sslrootcert).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // db/migrations, compiled in: a deployed binary needs no source checkout to migrate.
            plugins: ["EmbedFiles"]
        ),
        // The process's metrics (swift-metrics, rendered by swift-prometheus): names, intake and worker
        // recorders, the queue depth read at scrape time.
        .target(
            name: "BoxofficeMetrics",
            dependencies: [
                "BoxofficeConcurrency",
                "BoxofficeCore",
                "BoxofficeStore",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Hummingbird 2 routes: intake (group commit), status (long-poll), events, health.
        .target(
            name: "BoxofficeAPI",
            dependencies: [
                "BoxofficeConcurrency",
                "BoxofficeCore",
                "BoxofficeMetrics",
                "BoxofficeStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The OpenAPI document, served at /openapi.json and read by the API fuzzer, and the dashboard's
            // page: compiled in by the plugin (no resource bundle to ship beside the binary), so excluded
            // from the target's sources.
            exclude: ["Resources/openapi.json", "Resources/dashboard.html"],
            plugins: ["EmbedFiles"]
        ),
        // The claim → allocate → settle loop.
        .target(
            name: "BoxofficeWorker",
            dependencies: [
                "BoxofficeConcurrency",
                "BoxofficeCore",
                "BoxofficeMetrics",
                "BoxofficeStore",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // What demo, bench and the integration tests share: child processes, the HTTP sale generators,
        // where the database comes from (DATABASE_URL or a private cluster, fresh migrated databases)
        // and bounded waits.
        .target(
            name: "BoxofficeHarness",
            dependencies: [
                "BoxofficeCore",
                "BoxofficeStore",
                "EmbeddedPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // `boxoffice work --processes N`: supervises N worker processes (restarts with back-off, SIGTTIN/SIGTTOU
        // scaling, SIGTERM passed on) and serves their metrics as one endpoint.
        .target(
            name: "BoxofficePool",
            dependencies: [
                "BoxofficeMetrics",
                "EmbeddedPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Starts a private PostgreSQL cluster from the installed binaries (tests, demo, bench); loopback ports.
        .target(name: "EmbeddedPostgres"),
        // `boxoffice bench`'s plan, runner, scenarios (one file each), report, and the SQL only it runs
        // (reference designs, pre-queueing, VACUUM/CHECKPOINT): the benchmark is not the product.
        .target(
            name: "BoxofficeBench",
            dependencies: [
                "BoxofficeCore",
                "BoxofficeStore",
                "BoxofficeAPI",
                "BoxofficeHarness",
                "EmbeddedPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "boxoffice",
            dependencies: [
                "BoxofficeCore",
                "BoxofficeStore",
                "BoxofficeAPI",
                "BoxofficeWorker",
                "EmbeddedPostgres",
                "BoxofficeHarness",
                "BoxofficeBench",
                "BoxofficeMetrics",
                "BoxofficePool",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Build-time: files → Swift string literals (the migrations, the OpenAPI document).
        .executableTarget(name: "boxoffice-embed"),
        .plugin(name: "EmbedFiles", capability: .buildTool(), dependencies: ["boxoffice-embed"]),
        .testTarget(name: "BoxofficeCoreTests", dependencies: ["BoxofficeCore"]),
        // No database: withTimeout, the deadline clock, the doorbell and the LISTEN retry loop.
        .testTarget(name: "BoxofficeConcurrencyTests", dependencies: ["BoxofficeConcurrency"]),
        // No database: the API's byte-level JSON reader and writer (checked against Foundation's), the
        // access-token rule, request validation and the route table, DATABASE_URL's TLS settings and the
        // migrations compiled into the binary.
        .testTarget(name: "BoxofficeAPITests", dependencies: ["BoxofficeAPI", "BoxofficeMetrics", "BoxofficeStore"]),
        // No database: the pool's restart policy and the merge of several processes' metrics.
        .testTarget(name: "BoxofficePoolTests", dependencies: ["BoxofficePool", "BoxofficeMetrics"]),
        .testTarget(
            name: "BoxofficeIntegrationTests",
            dependencies: [
                "BoxofficeCore",
                "BoxofficeStore",
                "BoxofficeAPI",
                "BoxofficeWorker",
                "EmbeddedPostgres",
                "BoxofficeHarness",
                "BoxofficeBench",
                "BoxofficeMetrics",
                "boxoffice",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
