// swift-tools-version:6.1
import PackageDescription

// An app that embeds mbconvert's runtime as apps consume Swift libraries: mbconvert by version
// from a git URL, and the MBRuntime product alone (no protobuf-c, no converter).
//
// In your app, write the repository's URL and a version:
//     .package(url: "https://<host>/<owner>/mbconvert.git", from: "0.1.0")
// Here the URL comes from MBCONVERT_URL (Scripts/test-app.sh sets it to a tagged bare clone of
// the checkout, file://...), else it is this checkout itself, which then needs a version tag.
let mbconvertURL = Context.environment["MBCONVERT_URL"] ?? "file://\(Context.packageDirectory)/../.."

let package = Package(
    name: "RuntimeApp",
    // mbconvert's minimum Apple releases (its runtime uses Synchronization's Mutex and Atomic).
    platforms: [.macOS(.v15), .iOS(.v18)],
    dependencies: [
        .package(url: mbconvertURL, from: "0.1.0"),
    ],
    targets: [
        .executableTarget(
            name: "RuntimeApp",
            dependencies: [.product(name: "MBRuntime", package: "mbconvert")]
        ),
    ]
)
