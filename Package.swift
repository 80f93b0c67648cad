// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "SparseServe",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sparse-serve", targets: ["sparse-serve"]),
        .library(name: "SparseServe", targets: ["SparseServe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C kernels: intrinsics under __attribute__((target(...))) with runtime CPU dispatch.
        .target(name: "CSparseKernels"),
        // Swift API over the kernels: packed weights, activations.
        .target(name: "SparseKernels", dependencies: ["CSparseKernels"]),
        // safetensors I/O, manifests, tensors, architectures.
        .target(name: "SparseModels", dependencies: ["SparseKernels"]),
        // HTTP/1.1 server on POSIX sockets + Dispatch.
        .target(name: "HTTPServer", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // Config, endpoints, scheduler, v2 protocol routes.
        .target(name: "SparseServe", dependencies: [
            "HTTPServer", "SparseModels", "SparseKernels",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "sparse-serve", dependencies: [
            "SparseServe",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SparseKernelsTests", dependencies: ["SparseKernels"]),
        .testTarget(name: "SparseModelsTests", dependencies: ["SparseModels"], resources: []),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer"]),
        .testTarget(name: "SparseServeTests", dependencies: ["SparseServe"]),
    ]
)
