// swift-tools-version:6.0
import PackageDescription

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

/// Every executable is a thin shell: parse the arguments, call WalferryCore, print, pick the exit status.
func tool(_ name: String) -> Target {
    .executableTarget(name: name, dependencies: ["WalferryCore", "WalferryCLI", argumentParser])
}

let package = Package(
    name: "walferry",
    products: [
        .executable(name: "walferry-archive", targets: ["walferry-archive"]),
        .executable(name: "walferry-restore", targets: ["walferry-restore"]),
        .executable(name: "walferry-cleanup", targets: ["walferry-cleanup"]),
        .executable(name: "walferry-backup", targets: ["walferry-backup"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C libraries, taken from the system
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CBZip2", providers: [.apt(["libbz2-dev"])]),  // Debian ships no bzip2.pc

        // Core: every decision, every byte on disk, every C call. No ArgumentParser, no Foundation.
        .target(name: "WalferryCore", dependencies: ["CLibPQ", "CBZip2"]),

        // What the four executables share: message printing, exit statuses, version text.
        .target(name: "WalferryCLI", dependencies: ["WalferryCore", argumentParser]),

        // Executables
        tool("walferry-archive"),
        tool("walferry-restore"),
        tool("walferry-cleanup"),
        tool("walferry-backup"),

        // Tests
        .target(name: "TestSupport", dependencies: ["WalferryCore"], path: "Tests/TestSupport"),
        .testTarget(name: "WalferryCoreTests", dependencies: ["WalferryCore", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
