import Foundation
import HTTPServer
import SparseModels
import SparseServe
import SparseJSON

/// The inputs SparseServe parses from the outside world, as fuzz targets. Each must return
/// normally (a thrown error is a correct answer) for every byte string: a crash, trap, hang or
/// sanitizer report is a bug. Selected by `SPARSESERVE_FUZZ_TARGET` under libFuzzer, or by
/// corpus folder name in replay mode.
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "http": http, "infer": infer, "safetensors": safetensors, "config": config, "json": json, "artifact": artifact,
        "load": load,
    ]

    /// The HTTP/1.1 request parser, fed in two pieces (split point from the first byte) so that
    /// incremental parsing is exercised; every request in the stream is drained (pipelining).
    static func http(_ data: [UInt8]) {
        var limits = HTTPParserLimits()
        limits.maxRequestLineBytes = 512
        limits.maxHeaderBytes = 2048
        limits.maxHeaderCount = 16
        var parser = HTTPRequestParser(limits: limits) { _, _ in 4096 }
        let split = data.isEmpty ? 0 : Int(data[0]) % (data.count + 1)
        parser.append(data[..<split])
        var requests = 0
        var fed = false
        while requests < 64 {
            switch parser.next() {
            case .needMore:
                guard !fed else { return }
                fed = true
                parser.append(data[split...])
            case .headComplete:
                continue
            case .request(let request):
                requests += 1
                precondition(request.body.count <= 4096, "body beyond the limit")
                precondition(request.path.hasPrefix("/") || request.path == "*" || request.method == "CONNECT",
                             "path '\(request.path)'")
            case .failure(let error):
                precondition((400...599).contains(error.status), "status \(error.status)")
                return
            case .rejected:
                preconditionFailure("the fuzzed parser's head policy accepts every head")
            }
        }
    }

    static let inferInputs = [
        TensorSpec(name: "input", datatype: .fp32, shape: [-1, 64]),
        TensorSpec(name: "INT64_IN", datatype: .int64, shape: [-1, -1]),
        TensorSpec(name: "BYTES_IN", datatype: .bytes, shape: [-1]),
        TensorSpec(name: "BOOL_IN", datatype: .bool, shape: [2, -1]),
    ]
    static let inferOutputs = [TensorSpec(name: "y", datatype: .fp32, shape: [-1, 10])]

    /// The v2 request decoder: JSON, and the binary extension with a header length taken from the
    /// first two bytes when the first is odd.
    static func infer(_ data: [UInt8]) {
        var headerLength: Int?
        var body = data
        if data.count >= 2, data[0] & 1 == 1 {
            headerLength = Int(data[1]) * 4
            body = Array(data.dropFirst(2))
            if headerLength! > body.count { headerLength = body.count }
        }
        guard let request = try? V2Codec.decodeRequest(body, headerLength: headerLength, inputs: inferInputs, outputs: inferOutputs) else { return }
        for (name, tensor) in request.inputs {
            let spec = inferInputs.first { $0.name == name }!
            precondition(tensor.datatype == spec.datatype, "datatype of \(name)")
            precondition(tensor.shape.count == spec.shape.count, "rank of \(name)")
            precondition(tensor.shape.reduce(1, *) == tensor.elementCount, "element count of \(name)")
        }
    }

    /// The safetensors reader, and every accessor on whatever it accepted.
    static func safetensors(_ data: [UInt8]) {
        guard let file = try? SafeTensors(data: Data(data), source: "fuzz") else { return }
        for name in file.names {
            _ = try? file.info(named: name)
            _ = try? file.rawBytes(named: name)
            _ = try? file.tensor(named: name)
            _ = try? file.int64Tensor(named: name)
        }
    }

    /// A compressed artifact's `model.safetensors`: metadata, every listed layer's packed tensors
    /// and their checks. What it accepts must run: on a zero input every output is the (finite)
    /// bias or constant.
    static func artifact(_ data: [UInt8]) {
        guard let file = try? SafeTensors(data: Data(data), source: "fuzz"),
              let layers = try? CompressedArtifact.readLayers(file) else { return }
        for layer in layers {
            let op = layer.op
            let x = [Float](repeating: 0, count: 2 * op.inputFeatures)
            var y = [Float](repeating: .nan, count: 2 * op.outputFeatures)
            x.withUnsafeBufferPointer { xs in
                y.withUnsafeMutableBufferPointer { ys in op.apply(xs.baseAddress!, rows: 2, into: ys.baseAddress!, activation: .none) }
            }
            precondition(y.allSatisfy(\.isFinite), "an accepted layer computed a non-finite output from a zero input")
        }
    }

    /// The config loader (strict JSON, every section's validation).
    static func config(_ data: [UInt8]) {
        _ = try? ServiceConfig.parse(data, baseDirectory: "/nonexistent")
    }

    /// A repository load request body (`parameters.config`, object or JSON string) through the config
    /// file's validation, the model-root confinement and the server's ceilings; then its compression
    /// plan checked against typical layer shapes and the compression limits (estimates only:
    /// nothing is compressed). Whatever passes the checks must have an estimate under the limit.
    static func load(_ data: [UInt8]) {
        guard let endpoint = try? InferenceService.endpointConfig(forLoad: "fuzzed", body: data, config: loadServer,
                                                                   currentModelPath: nil) else { return }
        precondition(endpoint.modelPath.hasPrefix(loadRoot + "/"), "a load escaped the model root: \(endpoint.modelPath)")
        precondition((endpoint.maxBodyBytes ?? 0) <= loadServer.server.maxBodyBytes, "maxBodyBytes above the server's")
        let plan = endpoint.compression.plan
        let limits = CompressionLimits.shared
        for (m, n) in [(256, 64), (10, 256), (1536, 384), (384, 1536), (7, 13), (1, 1)] {
            for method in [plan.method] + plan.overrides.map(\.method) {
                _ = method.parameters(outputFeatures: m, inputFeatures: n)
                guard (try? CompressionLimits.check(method, layer: "l", outputs: m, inputs: n)) != nil else { continue }
                precondition(method.estimatedPeakBytes(outputFeatures: m, inputFeatures: n) <= limits.maxLayerBytes,
                             "\(method) on \(m)×\(n) passed the check above the memory limit")
            }
        }
    }

    /// Where `loadRoot` lives: a folder per process.
    static let loadRootPath = NSTemporaryDirectory() + "sparse-fuzz-root-\(getpid())"

    /// A model root with one model folder, for `load`; removed when the process exits.
    static let loadRoot: String = {
        try? FileManager.default.createDirectory(atPath: loadRootPath + "/digits", withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: FuzzTargets.loadRootPath) }
        return SecuritySettings.realPath(loadRootPath) ?? loadRootPath
    }()

    static let loadServer: ServiceConfig = {
        var config = ServiceConfig()
        config.server.maxBodyBytes = 1 << 20
        config.server.security.admin.enabled = true
        config.server.security.admin.apiKeys = ["fuzz-admin-key-0123456789"]
        config.server.security.admin.modelRoot = loadRoot
        return config
    }()

    /// The strict JSON parser, with a round trip through the writer for what it accepts: the
    /// writer's output always parses, and gives the same value back unless a number was
    /// non-finite (the parser accepts NaN/Infinity tokens to report them; the writer emits null).
    /// Parsing number arrays into typed buffers accepts and rejects exactly the same documents
    /// and gives the same value.
    static func json(_ data: [UInt8]) {
        let typed = try? JSON.parse(data, typedNumberArrays: true)
        guard let value = try? JSON.parse(data) else {
            precondition(typed == nil, "typed number arrays accepted a document the parser rejects")
            return
        }
        precondition(typed.map { allFinite(value) ? $0 == value : true } ?? false, "typed number arrays changed or rejected the document")
        guard let again = try? JSON.parse(JSONWriter.encode(value)) else {
            preconditionFailure("the writer produced JSON the parser rejects")
        }
        precondition(!allFinite(value) || again == value, "JSON round trip changed the value")
    }

    static func allFinite(_ value: JSON) -> Bool {
        switch value {
        case .number(let d, _): return d.isFinite
        case .array(let items): return items.allSatisfy(allFinite)
        case .numbers(let run): return run.doubles.allSatisfy(\.isFinite)
        case .object(let pairs): return pairs.allSatisfy { allFinite($0.1) }
        default: return true
        }
    }
}

#if FUZZING
private let selectedTarget: @Sendable ([UInt8]) -> Void = {
    let name = ProcessInfo.processInfo.environment["SPARSESERVE_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.all[name] else {
        fatalError("set SPARSESERVE_FUZZ_TARGET to one of \(FuzzTargets.all.keys.sorted())")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedTarget(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's entry point for programs that own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links executables with `main` aliased to `<module>_main`; hand control to libFuzzer.
@_cdecl("sparse_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzOneInput(data, size) }
}
#endif
