// swift-tools-version:6.1
import PackageDescription

// An app that embeds mbconvert's runtime: it depends on the MBRuntime product alone (no
// protobuf-c, no converter), as an app shipping a converted model would.
let package = Package(
    name: "RuntimeApp",
    dependencies: [
        .package(name: "mbconvert", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "RuntimeApp",
            dependencies: [.product(name: "MBRuntime", package: "mbconvert")]
        ),
    ]
)
