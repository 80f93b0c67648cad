import Foundation
import SparseKernels
import SparseCompression
import SparseModels
import SparseJSON

// Forward-pass timing of the MiniLM (bert-encoder) model: batches of equal-length token sequences,
// 1 and 2 kernel threads. Benchmarks/scripts/minilm_vs_onnxruntime.py runs it with --json beside
// ONNX Runtime on the same weights and shapes.
//
//   minilm-bench [--model models/minilm-l6] [--threads 1,2] [--shapes 1x16,1x128,8x128]
//                [--seconds 1.0] [--compression nm:2:4 | nm-ffn:2:4 | pwl | blast-ffn:0.5] [--json]
//                [--cpu-time]   # per pass: CPU time of the process (all its threads, spin-waits
//                               # included) instead of wall time; steadier on a loaded machine
//   minilm-bench --cosine [--compression …] [--calibration default|PATH]
//                # lowest and mean cosine to the committed dense reference embeddings
//                # (Tests/fixtures/minilm), as JSON; --calibration: data-aware one-shot masks first

/// One timed shape: batch × tokens on `threads` kernel threads, in milliseconds.
typealias Row = (batch: Int, tokens: Int, threads: Int, median: Double, min: Double, runs: Int)

func option(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

let modelDirectory = option("--model") ?? "models/minilm-l6"
let threadCounts = (option("--threads") ?? "1,2").split(separator: ",").compactMap { Int($0) }
let shapes: [(batch: Int, tokens: Int)] = (option("--shapes") ?? "1x16,1x128,8x128").split(separator: ",").compactMap {
    let parts = $0.split(separator: "x").compactMap { Int($0) }
    return parts.count == 2 ? (parts[0], parts[1]) : nil
}
let seconds = Double(option("--seconds") ?? "1.0") ?? 1.0
let json = CommandLine.arguments.contains("--json")
let cpuTime = CommandLine.arguments.contains("--cpu-time")

/// Nanoseconds of wall time, or of the process's CPU time with --cpu-time.
func clockNanoseconds() -> UInt64 {
    guard cpuTime else { return DispatchTime.now().uptimeNanoseconds }
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// "dense", "nm:2:4" (every encoder linear layer), "nm-ffn:2:4" (the two FFN layers only) or
/// "pwl" / "pwl:SEGMENTS" (dense layers, GELU and softmax exp as piecewise-linear tables) or
/// "blast-ffn:RATIO" (the two FFN layers BLAST b=4 at RATIO of their parameters, 30 iterations);
/// quantized (`compression.quantize`, every encoder linear layer): "int8-dynamic" (W8A8),
/// "int8" / "int8:GROUP" (weight-only, per channel or per group), "bf16", "nm-int8:2:4" (2:4 then W8A8).
func plan(_ spec: String) -> CompressionPlan {
    let parts = spec.split(separator: ":").map(String.init)
    switch parts.first {
    case "int8-dynamic": return CompressionPlan(method: .quantized(.dense, .int8Dynamic))
    case "int8": return CompressionPlan(method: .quantized(.dense, .int8(parts.count > 1 ? .group(Int(parts[1]) ?? 64) : .channel)))
    case "bf16": return CompressionPlan(method: .quantized(.dense, .bf16))
    case "nm-int8" where parts.count == 3:
        return CompressionPlan(method: .quantized(.nm(n: Int(parts[1]) ?? 2, m: Int(parts[2]) ?? 4), .int8Dynamic))
    default: break
    }
    if parts.first == "blast-ffn" {
        let blast = LayerCompression.blast(blocks: 4, rank: nil, parameterRatio: parts.count > 1 ? Double(parts[1]) ?? 0.5 : 0.5,
                                           iterations: 30)
        return CompressionPlan(method: .dense, overrides: [("encoder.layer.*.attention.output.dense", .dense),
                                                           ("encoder.layer.*.intermediate.dense", blast),
                                                           ("encoder.layer.*.output.dense", blast)])
    }
    if parts.first == "pwl" {
        return CompressionPlan(activations: .pwl(segments: parts.count > 1 ? Int(parts[1]) ?? 64 : 64))
    }
    guard parts.count == 3, let n = Int(parts[1]), let m = Int(parts[2]) else { return .dense }
    if parts[0] == "nm-ffn" {
        return CompressionPlan(method: .dense, overrides: [("encoder.layer.*.intermediate.dense", .nm(n: n, m: m)),
                                                           ("encoder.layer.*.output.dense", .nm(n: n, m: m))])
    }
    return CompressionPlan(method: .nm(n: n, m: m))
}
let compression = option("--compression") ?? "dense"

/// The same ids the ONNX Runtime script feeds: [CLS], tokens-2 word ids, [SEP].
func sequence(_ tokens: Int, _ index: Int) -> [Int32] {
    var ids: [Int32] = [101]
    for i in 0..<max(0, tokens - 2) { ids.append(Int32(1000 + (i * 37 + index * 101) % 20000)) }
    ids.append(102)
    return ids
}

/// Lowest and mean cosine of our embeddings to the reference ones (sentence-transformers, dense)
/// on the first 40 fixture sentences: what a compression costs in fidelity.
func cosineToReference(_ model: BertEncoderModel) throws -> (lowest: Double, mean: Double) {
    let url = URL(fileURLWithPath: "Tests/fixtures/minilm/embeddings.json")
    guard let cases = try JSON.parse(Array(try Data(contentsOf: url)))["cases"]?.arrayValue else { throw CocoaError(.fileReadCorruptFile) }
    var cosines: [Double] = []
    for c in cases.prefix(40) {
        guard let ids = c["ids"]?.arrayValue?.compactMap(\.integerValue), let b64 = c["embedding"]?.stringValue,
              let data = Data(base64Encoded: b64) else { continue }
        let reference = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let ours = try model.embed(tokenSequences: [ids.map { Int32($0) }])[0]
        var dot = 0.0, a = 0.0, b = 0.0
        for (x, y) in zip(ours, reference) { dot += Double(x) * Double(y); a += Double(x) * Double(x); b += Double(y) * Double(y) }
        cosines.append(dot / (a.squareRoot() * b.squareRoot()))
    }
    return (cosines.min() ?? 0, cosines.reduce(0, +) / Double(max(1, cosines.count)))
}

if CommandLine.arguments.contains("--cosine") {
    do {
        var compressor: any LayerCompressor = WeightCompressor()
        if let calibration = option("--calibration") {
            var options = CalibrationOptions()
            options.path = calibration == "default" ? nil : calibration
            compressor = try CalibratedCompressor.run(modelDirectory: modelDirectory, plan: plan(compression), options: options)
        }
        let model = try BertEncoderLoader.load(directory: modelDirectory, compression: plan(compression), compressor: compressor,
                                               pool: KernelPool(threads: 1))
        let (lowest, mean) = try cosineToReference(model)
        let row: JSON = .object([("compression", .string(compression)), ("lowestCosine", .number(double: lowest, integer: nil)),
                                 ("meanCosine", .number(double: mean, integer: nil))])
        print(String(decoding: JSONWriter.encode(row), as: UTF8.self))
    } catch {
        FileHandle.standardError.write("minilm-bench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
    exit(0)
}

var rows: [Row] = []
for threads in threadCounts {
    let pool = KernelPool(threads: threads)
    let model: BertEncoderModel
    do {
        model = try BertEncoderLoader.load(directory: modelDirectory, compression: plan(compression), compressor: WeightCompressor(), pool: pool)
    } catch {
        FileHandle.standardError.write("minilm-bench: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
    for shape in shapes {
        let batch = (0..<shape.batch).map { sequence(shape.tokens, $0) }
        for _ in 0..<3 { _ = try model.embed(tokenSequences: batch) }
        var samples: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        repeat {
            let t0 = clockNanoseconds()
            _ = try model.embed(tokenSequences: batch)
            samples.append(Double(clockNanoseconds() - t0) / 1e6)
        } while samples.count < 5 || (Double(DispatchTime.now().uptimeNanoseconds - start) < seconds * 1e9 && samples.count < 2000)
        samples.sort()
        rows.append((shape.batch, shape.tokens, threads, samples[samples.count / 2], samples[0], samples.count))
    }
}

if json {
    for r in rows {
        func integer(_ i: Int) -> JSON { .number(double: Double(i), integer: Int64(i)) }
        let object: JSON = .object([("batch", integer(r.batch)), ("compression", .string(compression)),
                                    ("medianMilliseconds", .number(double: r.median, integer: nil)),
                                    ("minMilliseconds", .number(double: r.min, integer: nil)), ("runs", integer(r.runs)),
                                    ("threads", integer(r.threads)), ("tokens", integer(r.tokens))])
        print(String(decoding: JSONWriter.encode(object), as: UTF8.self))
    }
} else {
    print("MiniLM-L6 forward pass (\(compression)), median (min) of repeated runs" + (cpuTime ? ", process CPU time" : ""))
    print("batch x tokens  threads  median ms     min ms   runs")
    for r in rows {
        print(String(format: "%5d x %-6d  %7d  %9.3f  %9.3f  %5d", r.batch, r.tokens, r.threads, r.median, r.min, r.runs))
    }
}
