// swift-tools-version:6.1
import PackageDescription

// Module boundaries follow ../shared/design/ARCHITECTURE.md:
// only MBONNX sees protobuf-c, and the runtime's closure is
// {MBRuntime, MBFormat, MBKernels, MBCore, CZlib}.
let package = Package(
    name: "mbconvert",
    // Apple platforms: the runtime's Mutex and Atomic (Synchronization) need these releases.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        .executable(name: "mbconvert", targets: ["mbconvert"]),
        .library(name: "MBRuntime", targets: ["MBRuntime"]),
        .library(name: "MBConvert", targets: ["MBConvert"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries from Debian.
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Image decoding for calibration on picture folders: libpng and libjpeg-turbo.
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        .systemLibrary(
            name: "CJPEG",
            pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg-dev"])]
        ),
        // protoc-c output for Schemas/onnx.proto (regenerate with Scripts/regenerate-onnx-proto.sh)
        // plus a small hand-written shim (streamed packing, descriptor access).
        .target(name: "CONNXProto", dependencies: ["CProtobufC"]),

        // C kernel targets: no unsafeFlags anywhere a library product reaches (SwiftPM refuses
        // them in a package depended on by version). Instruction sets come from per-function
        // target attributes, optimization from the release configuration (-O2).
        // Bit-plane kernels: one C body compiled per instruction set, picked at run time (cpuid);
        // NEON variants on aarch64, picked at build time.
        .target(name: "CBitPlanes", exclude: ["README.md", "BitPlanes+Body.h", "BitPlanesConvGather.h"]),
        // Float convolution kernels (AVX-512 GEMM on NCHW planes, max pooling), picked at run
        // time (cpuid); NEON variants on aarch64.
        .target(name: "CFloatKernels"),

        // Swift modules.
        .target(name: "MBCore", exclude: ["README.md"]),
        .target(
            name: "MBKernels",
            dependencies: ["MBCore", "CBitPlanes", "CFloatKernels", .target(name: "CBLAS", condition: .when(platforms: [.linux]))],
            exclude: ["README.md"]
        ),
        .target(name: "MBFormat", dependencies: ["MBCore", "CZlib"], exclude: ["README.md"]),
        .target(name: "MBRuntime", dependencies: ["MBFormat", "MBKernels", "MBCore"], exclude: ["README.md"]),
        .target(name: "MBONNX", dependencies: ["CONNXProto", "MBCore"], exclude: ["README.md"]),
        // Apple platforms have no libpng/libjpeg by default: there MBImage builds without them
        // and refuses image files with a clear error (.npy calibration inputs still work).
        .target(
            name: "MBImage",
            dependencies: [.target(name: "CPNG", condition: .when(platforms: [.linux])), .target(name: "CJPEG", condition: .when(platforms: [.linux]))],
            exclude: ["README.md"]
        ),
        .target(name: "MBBinarize", dependencies: ["MBKernels", "MBCore"], exclude: ["README.md"]),
        .target(
            name: "MBPolicy",
            dependencies: ["MBCore", .product(name: "Yams", package: "Yams")],
            exclude: ["README.md"]
        ),
        .target(
            name: "MBConvert",
            dependencies: ["MBONNX", "MBBinarize", "MBPolicy", "MBFormat", "MBRuntime", "MBKernels", "MBCore", "MBImage"],
            exclude: ["README.md"]
        ),
        // Tools on top of the pipeline for the executables: `study`, the `run` and `bench`
        // reports, process memory. Not a product: apps embed MBRuntime or MBConvert.
        .target(
            name: "MBTools",
            dependencies: ["MBConvert", "MBONNX", "MBBinarize", "MBRuntime", "MBKernels", "MBCore", "MBImage"],
            exclude: ["README.md"]
        ),
        .executableTarget(
            name: "mbconvert",
            dependencies: [
                "MBConvert", "MBTools", "MBRuntime", "MBImage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .executableTarget(
            name: "mbbench",
            dependencies: ["MBConvert", "MBTools", "MBONNX", "MBBinarize", "MBFormat", "MBKernels", "MBRuntime", "MBCore", .target(name: "CBLAS", condition: .when(platforms: [.linux])), .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // Tests.
        .target(name: "TestSupport", dependencies: ["MBCore", "MBImage", .target(name: "CPNG", condition: .when(platforms: [.linux])),
                                                   .target(name: "CJPEG", condition: .when(platforms: [.linux]))], path: "Tests/TestSupport"),
        .testTarget(name: "MBCoreTests", dependencies: ["MBCore", "TestSupport"]),
        .testTarget(name: "MBONNXTests", dependencies: ["MBONNX", "MBCore", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "MBFormatTests", dependencies: ["MBFormat", "MBCore", "TestSupport"]),
        .testTarget(name: "MBBinarizeTests", dependencies: ["MBBinarize", "MBKernels", "MBCore", "TestSupport"]),
        .testTarget(name: "MBPolicyTests", dependencies: ["MBPolicy", "MBCore", "TestSupport"], exclude: ["Regressions"]),
        .testTarget(name: "MBConvertTests", dependencies: ["MBConvert", "MBONNX", "MBBinarize", "MBFormat", "MBRuntime", "MBCore", "MBImage", "TestSupport"], exclude: ["Regressions"]),
        .testTarget(name: "MBKernelsTests", dependencies: ["MBKernels", "MBCore", "TestSupport"]),
        .testTarget(name: "MBRuntimeTests", dependencies: ["MBRuntime", "MBConvert", "MBCore", "TestSupport"], exclude: ["Regressions"]),
        .testTarget(name: "MBToolsTests", dependencies: ["MBTools", "MBConvert", "MBCore", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "MBCore", "MBONNX"], exclude: ["Snapshots"]),
    ]
)

// libFuzzer targets (Fuzz/README.md). Declared only when MBCONVERT_FUZZ is set, so the normal
// `swift build` / `swift test` never sees them; Scripts/fuzz.sh builds them with
// `-sanitize=fuzzer,address` into their own scratch path.
if Context.environment["MBCONVERT_FUZZ"] != nil {
    let fuzzTargets: [(String, [Target.Dependency])] = [
        ("FuzzONNX", ["MBONNX", "MBConvert", "MBCore"]),
        ("FuzzMBM", ["MBFormat", "MBRuntime", "MBCore"]),
        ("FuzzPolicy", ["MBPolicy"]),
        ("FuzzNPY", ["MBCore"]),
    ]
    for (name, dependencies) in fuzzTargets {
        package.products.append(.executable(name: name, targets: [name]))
        package.targets.append(.executableTarget(
            name: name, dependencies: dependencies, path: "Fuzz/Sources/\(name)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ))
    }
}
