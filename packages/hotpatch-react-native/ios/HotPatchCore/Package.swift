// swift-tools-version:5.9
// The pure-Swift core of the HotPatch React Native SDK (Foundation only).
// Cryptography sits behind `CryptoBackend`: CryptoKit on Apple platforms,
// libsodium (the `CSodium` system library) where CryptoKit does not exist,
// which is how the core is tested on Linux. Archives inflate with the system
// zlib (`CZlib`: libz ships with iOS, and is what the Python reference uses).
import PackageDescription

let package = Package(
    name: "HotPatchCore",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "HotPatchCore", targets: ["HotPatchCore"]),
        .library(name: "HotPatchReactNative", targets: ["HotPatchReactNative"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Patch decoders where the system has them (Linux: Debian's -dev packages). iOS has no
        // zstd library, so on Apple platforms the core is built without them and takes no patches.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBzip2", providers: [.apt(["libbz2-dev"])]),
        .systemLibrary(name: "CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),
        .target(
            name: "HotPatchCore",
            dependencies: [
                "CZlib",
                .target(name: "CSodium", condition: .when(platforms: [.linux])),
                .target(name: "CZstd", condition: .when(platforms: [.linux])),
                .target(name: "CBzip2", condition: .when(platforms: [.linux])),
                .target(name: "CLzma", condition: .when(platforms: [.linux])),
            ]
        ),
        // What the React Native module does, in Foundation types (the @objc bridge only forwards).
        .target(name: "HotPatchReactNative", dependencies: ["HotPatchCore"]),
        // One app process for tests/e2e/test_sdk_app_hermes.py: onLaunch and ModuleCore, driven over stdin.
        .executableTarget(name: "HotPatchDeviceHost", dependencies: ["HotPatchCore", "HotPatchReactNative"]),
        // The tests sign with libsodium where they need a key the trust root does not list.
        .testTarget(
            name: "HotPatchCoreTests",
            dependencies: [
                "HotPatchCore", "HotPatchReactNative", .target(name: "CSodium", condition: .when(platforms: [.linux])),
            ]
        ),
    ]
)
