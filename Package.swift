// swift-tools-version: 6.1
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
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // Metrics API and its Prometheus backend (text exposition for GET /metrics).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tracing API (spans, W3C context); the OTLP/HTTP exporter is ours (SparseServe/Tracing).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
    ],
    targets: [
        // C kernels: intrinsics under __attribute__((target(...))) with runtime CPU dispatch.
        .target(name: "CSparseKernels"),
        // Swift API over the kernels: packed weights, activations.
        .target(name: "SparseKernels", dependencies: ["CSparseKernels"]),
        // The project's JSON: parser (exact integers, byte offsets in errors) and writer, one escaper.
        .target(name: "SparseJSON"),
        // Tensors and safetensors I/O, manifests, packed layers, artifacts (reading), model graphs
        // and one loader per architecture. No compression algorithm: see SparseCompression.
        .target(name: "SparseModels", dependencies: ["SparseKernels", "SparseJSON"]),
        // Offline compression: TSENOR masks, BLAST fits, l1,inf projection and compaction, the
        // WeightCompressor that packs layers for SparseModels' loaders, and the artifact writer.
        // Depends on SparseModels (not the other way) so calibration and recovery can run models.
        .target(name: "SparseCompression", dependencies: ["SparseModels", "SparseKernels", "CSparseKernels", "SparseJSON"]),
        // System zlib (gzip/deflate) and OpenSSL (TLS), from libssl-dev / zlib1g-dev.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        // HTTP/1.1 server on POSIX sockets + Dispatch, TLS and content coding. SparseJSON (no
        // dependencies of its own) writes its error bodies: one string escaper in the package.
        .target(name: "HTTPServer", dependencies: [
            "CZlib", "COpenSSL", "SparseJSON", .product(name: "Logging", package: "swift-log"),
        ]),
        // The server by pipeline stage: App/ (lifecycle, config), HTTP/ (routes, middleware),
        // Protocols/ (V2, OpenAI, OpenAPI), Scheduling/, Repository/, Metrics/ (swift-metrics
        // handles, exposed by swift-prometheus).
        .target(name: "SparseServe", dependencies: [
            "HTTPServer", "SparseModels", "SparseKernels", "SparseCompression", "SparseJSON", "COpenSSL",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ], resources: [.embedInCode("Protocols/OpenAPI/openapi.yaml")]),
        .executableTarget(name: "sparse-serve", dependencies: [
            "SparseServe", "SparseModels", "SparseCompression", "SparseJSON",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
        ]),
        // Kernel micro-benchmarks (`swift run -c release kernel-bench`); see Benchmarks/README.md.
        .executableTarget(name: "kernel-bench", dependencies: ["SparseKernels", "SparseJSON"], path: "Benchmarks/kernel-bench"),
        // MiniLM forward-pass timing (`swift run -c release minilm-bench`); Benchmarks/scripts/minilm_vs_onnxruntime.py.
        .executableTarget(name: "minilm-bench", dependencies: ["SparseModels", "SparseCompression", "SparseKernels", "SparseJSON"], path: "Benchmarks/minilm-bench"),
        // Compression algorithms (TSENOR masks, l1,inf projections, BLAST fits) vs same-run baselines
        // (`swift run -c release compression-bench`); see Benchmarks/README.md.
        .executableTarget(name: "compression-bench", dependencies: ["SparseCompression", "SparseModels", "SparseKernels", "SparseJSON"], path: "Benchmarks/compression-bench"),
        // v2 request decode time, typed `data` buffers against the boxed baseline (`swift run -c release
        // v2-decode-bench`); see Benchmarks/README.md.
        .executableTarget(name: "v2-decode-bench", dependencies: ["SparseServe", "SparseModels"], path: "Benchmarks/v2-decode-bench"),
        // Fuzz targets (HTTP parser, v2 decoder, safetensors, config, JSON). A normal build replays
        // Fuzz/corpus; built with -sanitize=fuzzer -DFUZZING it is a libFuzzer binary (see Fuzz/README.md).
        .executableTarget(name: "sparse-fuzz", dependencies: ["HTTPServer", "SparseModels", "SparseServe", "SparseJSON"],
                          path: "Fuzz/sparse-fuzz"),
        .testTarget(name: "SparseKernelsTests", dependencies: ["SparseKernels"]),
        // Helpers shared by the model and compression tests (fixture paths, temporary folders, errors).
        .target(name: "SparseTestSupport", path: "Tests/SparseTestSupport"),
        .testTarget(name: "SparseModelsTests", dependencies: ["SparseModels", "SparseCompression", "SparseKernels", "SparseTestSupport"]),
        .testTarget(name: "SparseCompressionTests", dependencies: ["SparseCompression", "SparseModels", "SparseKernels", "SparseTestSupport"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "SparseJSON"]),
        .testTarget(name: "SparseJSONTests", dependencies: ["SparseJSON"]),
        .testTarget(name: "SparseServeTests", dependencies: ["SparseServe", "SparseJSON", "SparseModels", "HTTPServer",
                                                         .product(name: "CoreMetrics", package: "swift-metrics"),
                                                         .product(name: "InMemoryTracing", package: "swift-distributed-tracing")]),
    ]
)
