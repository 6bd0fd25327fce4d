// swift-tools-version:6.0
import PackageDescription

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")


let package = Package(
    name: "walferry",
    products: [
        .executable(name: "walferry-archive", targets: ["walferry-archive"]),
        .executable(name: "walferry-restore", targets: ["walferry-restore"]),
        .executable(name: "walferry-cleanup", targets: ["walferry-cleanup"]),
        .executable(name: "walferry-backup", targets: ["walferry-backup"]),
        .executable(name: "walferry-recover", targets: ["walferry-recover"]),
        .executable(name: "walferry-check", targets: ["walferry-check"]),
        // What the .deb installs for the first three: one binary answering to their names.
        .executable(name: "walferry", targets: ["walferry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C libraries, taken from the system
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CBZip2", providers: [.apt(["libbz2-dev"])]),  // Debian ships no bzip2.pc
        // The bzip2 encoder's suffix sorter.
        .systemLibrary(name: "CDivSufSort", pkgConfig: "libdivsufsort", providers: [.apt(["libdivsufsort-dev"])]),

        // Core: every decision, every byte on disk, every C call. No ArgumentParser, no Foundation.
        .target(name: "WalferryCore", dependencies: ["CBZip2", "CDivSufSort", "CWalferryCRC32C", "CWalferrySystem"]),

        // CRC-32C with the processor's crc32 instruction, which Swift cannot select at run time.
        .target(name: "CWalferryCRC32C"),
        // The system calls glibc declares only for _GNU_SOURCE (renameat2), which Swift cannot see.
        .target(name: "CWalferrySystem"),

        // The core's server connections: the one module that imports libpq. It is a module of its own
        // because linking libpq loads 28 shared libraries (OpenSSL, Kerberos, LDAP, GnuTLS...) at every
        // start, 7.5 ms measured, 8x pg_archivecleanup's whole run; only walferry-backup connects.
        .target(name: "WalferryPostgres", dependencies: ["CLibPQ", "WalferryCore"]),

        // What the four executables share: message printing, exit statuses, version text.
        .target(name: "WalferryCLI", dependencies: ["WalferryCore", argumentParser]),

        // The command lines of the three tools the server starts once per WAL file: parse the
        // arguments, call WalferryCore, print, pick the exit status.
        .target(name: "WalferryTools", dependencies: ["WalferryCore", "WalferryCLI", argumentParser]),

        // Executables: thin shells. walferry-backup holds its own command line (it alone links libpq).
        .executableTarget(name: "walferry-archive", dependencies: ["WalferryTools"]),
        .executableTarget(name: "walferry-restore", dependencies: ["WalferryTools"]),
        .executableTarget(name: "walferry-cleanup", dependencies: ["WalferryTools"]),
        .executableTarget(name: "walferry", dependencies: ["WalferryTools"]),
        .executableTarget(
            name: "walferry-backup",
            dependencies: ["WalferryCore", "WalferryCLI", "WalferryPostgres", argumentParser]
        ),
        // walferry-recover connects to no server: no WalferryPostgres, no libpq.
        .executableTarget(name: "walferry-recover", dependencies: ["WalferryCore", "WalferryCLI", argumentParser]),
        .executableTarget(
            name: "walferry-check",
            dependencies: ["WalferryCore", "WalferryCLI", "WalferryPostgres", argumentParser]
        ),
        .executableTarget(name: "walferry-bzip2-bench", dependencies: ["WalferryCore"], path: "bench/walferry-bzip2-bench"),

        // Tests
        .target(name: "TestSupport", dependencies: ["WalferryCore"], path: "Tests/TestSupport"),
        .testTarget(name: "WalferryCoreTests", dependencies: ["WalferryCore", "CWalferryCRC32C", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
