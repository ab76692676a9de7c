// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "speedflow",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "speedflow", targets: ["speedflow"]),
    ],
    traits: [
        // Kafka transport (librdkafka, Debian librdkafka-dev): `swift build --traits Kafka`. Off by default so the
        // default build needs no system library.
        .trait(name: "Kafka", description: "Kafka log transport through librdkafka (needs librdkafka-dev)."),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Event, identity, validation, reason codes, body decoding (gzip via zlib). No IO.
        .target(name: "SpeedflowModel", dependencies: ["CZlib"], swiftSettings: strict),
        // MQTT 3.1.1 and 5 packets: a strict codec with no dependencies (Codec/, which scripts/fuzz-mqtt compiles on its
        // own) and the NIO frame decoder that feeds it.
        .target(name: "SpeedflowMQTT", dependencies: [.product(name: "NIOCore", package: "swift-nio")], swiftSettings: strict),
        // Bucket state, merge, windows, percentiles. No IO, pure.
        .target(name: "SpeedflowAggregation", dependencies: ["SpeedflowModel"], swiftSettings: strict),
        // zlib, for CRC-32 of log records (Debian: zlib1g-dev).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Log protocol and the embedded segment log.
        .target(name: "SpeedflowLog", dependencies: [
            "CZlib",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // Store protocol and the SQLite store.
        .target(name: "SpeedflowStore", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The ClickHouse store: bucket deltas + identities + raw events over ClickHouse's HTTP interface.
        .target(name: "SpeedflowClickHouse", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowStore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // librdkafka (Debian: librdkafka-dev), including the mock cluster API (rdkafka_mock.h).
        .systemLibrary(name: "Crdkafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // Kafka client layer: idempotent producer, consumer-group member, mock cluster. Only with the Kafka trait.
        .target(name: "SpeedflowKafka", dependencies: [
            .target(name: "Crdkafka", condition: .when(traits: ["Kafka"])),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Scale-out parts over Kafka: the ingest nodes' event sink and the aggregators' partition consumer loop.
        // Kafka trait only.
        .target(name: "SpeedflowScaleOut", dependencies: [
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            "SpeedflowEngine", "SpeedflowStore", "SpeedflowModel", "SpeedflowLog",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Small files several processes change and follow (credentials, camera registry): a lock file, atomic
        // replacement, a fingerprint to notice new versions. POSIX only.
        .target(name: "SpeedflowFiles", swiftSettings: strict),
        // Credentials (tokens with roles camera/reader/admin, stored as SHA-256), the credentials file every node
        // follows, the audit log. No HTTP.
        .target(name: "SpeedflowAuth", dependencies: [
            "SpeedflowFiles",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // The camera registry: name, road, position, speed limits with their history, lanes, time zone, expected
        // volume per camera; the file every node follows; CSV/GeoJSON import and export. No HTTP.
        .target(name: "SpeedflowRegistry", dependencies: [
            "SpeedflowModel", "SpeedflowFiles",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // The pipeline: log append (group commit) -> dedup -> buckets -> store; queries.
        .target(name: "SpeedflowEngine", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowLog", "SpeedflowStore", "SpeedflowRegistry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // HTTP: Hummingbird routes, ingest/query handlers, dashboard and OpenAPI assets; the MQTT listener (MQTT/), which
        // ingests through the same handler.
        .target(name: "SpeedflowServer", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowEngine", "SpeedflowStore", "SpeedflowAuth", "SpeedflowRegistry",
            "SpeedflowMQTT",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            // TLS: the server's handler, the client certificate's subject and SAN URIs, SIGHUP for reloads.
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
        ], resources: [.copy("Resources")], swiftSettings: strict),
        // Fleet simulator and exact verifier (`speedflow loadgen`).
        .target(name: "SpeedflowLoadgen", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowMQTT",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // PostgreSQL source (`speedflow source postgres`): poll / notify / logical, exactly once via identities.
        .target(name: "SpeedflowPostgres", dependencies: [
            "SpeedflowModel", "SpeedflowEngine",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // Backup, restore and check of an embedded data directory, from its files, beside a running server: SQLite's
        // online backup, the log to a consistent end, a manifest with SHA-256 of every file.
        .target(name: "SpeedflowBackup", dependencies: [
            "SpeedflowEngine", "SpeedflowLog", "SpeedflowStore", "SpeedflowFiles",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Roles as compositions of parts (serve, api; with the Kafka trait ingest and aggregate), store selection,
        // logging and metrics bootstrap: what the executable hands its configuration to.
        .target(name: "SpeedflowRuntime", dependencies: [
            "SpeedflowModel", "SpeedflowEngine", "SpeedflowServer", "SpeedflowStore", "SpeedflowLog", "SpeedflowClickHouse", "SpeedflowPostgres",
            "SpeedflowAuth", "SpeedflowRegistry",
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            .target(name: "SpeedflowScaleOut", condition: .when(traits: ["Kafka"])),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // The one executable: parses configuration, builds services, runs them.
        .executableTarget(name: "speedflow", dependencies: [
            "SpeedflowModel", "SpeedflowEngine", "SpeedflowServer", "SpeedflowLoadgen", "SpeedflowStore", "SpeedflowLog",
            "SpeedflowClickHouse", "SpeedflowRuntime", "SpeedflowAuth", "SpeedflowRegistry", "SpeedflowBackup",
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            .target(name: "SpeedflowScaleOut", condition: .when(traits: ["Kafka"])),
            "SpeedflowPostgres",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: strict),
        // Benchmarks that print figures (never timed tests).
        .executableTarget(name: "speedflow-bench", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowStore", "SpeedflowEngine", "SpeedflowLog", "SpeedflowClickHouse",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "bench/Sources/speedflow-bench", swiftSettings: strict),

        .testTarget(name: "SpeedflowModelTests", dependencies: ["SpeedflowModel", "SpeedflowTestSupport"]),
        .testTarget(name: "SpeedflowMQTTTests", dependencies: ["SpeedflowMQTT", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "SpeedflowAggregationTests", dependencies: ["SpeedflowAggregation", "SpeedflowModel", "SpeedflowTestSupport"]),
        .testTarget(name: "SpeedflowAuthTests", dependencies: ["SpeedflowAuth", "SpeedflowTestSupport"]),
        .testTarget(name: "SpeedflowRegistryTests", dependencies: ["SpeedflowRegistry", "SpeedflowModel", "SpeedflowTestSupport"]),
        .testTarget(name: "SpeedflowLogTests", dependencies: ["SpeedflowLog", "SpeedflowTestSupport"]),
        // SQLiteStore on its own (integrity, upgrades, salvage) and the `Store` conformance suite against it.
        .testTarget(name: "SpeedflowStoreTests", dependencies: [
            "SpeedflowStore", "SpeedflowModel", "SpeedflowAggregation", "SpeedflowTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // ClickHouseStore against real servers (SPEEDFLOW_TEST_CLICKHOUSE, SPEEDFLOW_TEST_CLICKHOUSE_CLUSTER): the
        // `Store` conformance suite, engine answers equal to SQLite's, retention, and the failover suite.
        .testTarget(name: "SpeedflowClickHouseTests", dependencies: [
            "SpeedflowClickHouse", "SpeedflowEngine", "SpeedflowStore", "SpeedflowLog", "SpeedflowModel", "SpeedflowAggregation",
            "SpeedflowTestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SpeedflowKafkaTests", dependencies: [
            "SpeedflowTestSupport",
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SpeedflowScaleOutTests", dependencies: [
            "SpeedflowTestSupport",
            .target(name: "SpeedflowScaleOut", condition: .when(traits: ["Kafka"])),
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            "SpeedflowEngine", "SpeedflowStore", "SpeedflowLog", "SpeedflowModel", "SpeedflowAggregation",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SpeedflowEngineTests", dependencies: [
            "SpeedflowEngine", "SpeedflowStore", "SpeedflowLog", "SpeedflowModel", "SpeedflowAggregation", "SpeedflowTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SpeedflowServerTests", dependencies: [
            "SpeedflowServer", "SpeedflowAuth", "SpeedflowEngine", "SpeedflowModel", "SpeedflowLog", "SpeedflowStore", "SpeedflowAggregation",
            "SpeedflowRegistry", "SpeedflowTestSupport", "SpeedflowMQTT",
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "CompressNIO", package: "compress-nio"),
        ]),
        // The loadgen's pure parts (timestamps, encoder, oracle), without a server.
        .testTarget(name: "SpeedflowLoadgenTests", dependencies: ["SpeedflowLoadgen"]),
        // Helpers shared by the test targets: the real binary as a child process, the seeded generator, temporary
        // directories, polling, the engine oracle, SQLite page damage, and the `Store` conformance suite.
        .target(name: "SpeedflowTestSupport", dependencies: [
            "SpeedflowModel", "SpeedflowAggregation", "SpeedflowLog", "SpeedflowStore", "SpeedflowEngine",
            .target(name: "SpeedflowKafka", condition: .when(traits: ["Kafka"])),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Tests/SpeedflowTestSupport"),
        // Drive the real binary as a child process. Fixtures/: data directories written by earlier releases (format
        // upgrades), read by path.
        .testTarget(name: "IntegrationTests", dependencies: [
            "SpeedflowTestSupport", "SpeedflowModel", "SpeedflowAggregation", "SpeedflowLoadgen",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "PostgresSourceTests", dependencies: [
            "SpeedflowTestSupport", "SpeedflowModel", "SpeedflowPostgres",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // Tests/Browser (pytest, run by scripts/dashboard-test) and Tests/Fuzz (libFuzzer, built by scripts/fuzz)
        // are not SwiftPM targets.
    ]
)
