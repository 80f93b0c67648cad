import Foundation
import SparseKernels

// Kernel micro-benchmarks: dense, N:M, BLAST and CSR layers on the issue's shapes, plus the
// activation kernels. `--json` prints machine-readable rows for Benchmarks/scripts/kernel_bench.py,
// which adds numpy/OpenBLAS timings from the same run.

struct Row: Codable {
    var op: String
    var k: Int
    var n: Int
    var m: Int
    var threads: Int
    var microseconds: Double
    var gflops: Double  // dense-equivalent: 2·m·k·n / t
    var density: Double
}

let arguments = CommandLine.arguments
let json = arguments.contains("--json")
let quick = arguments.contains("--quick")

/// Median of five timings, each repeating `body` for at least `budget` seconds.
func measure(_ budget: Double = quick ? 0.01 : 0.04, _ body: () -> Void) -> Double {
    body()
    var samples: [Double] = []
    for _ in 0..<5 {
        var reps = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var now = start
        repeat {
            body()
            reps += 1
            now = DispatchTime.now().uptimeNanoseconds
        } while Double(now - start) < budget * 1e9
        samples.append(Double(now - start) / 1e3 / Double(reps))
    }
    return samples.sorted()[2]
}

func randomArray(_ count: Int) -> [Float] {
    var rng = SystemRandomNumberGenerator()
    return (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
}

/// BLAST rank giving `fraction` of the dense parameter count with b×b blocks.
func blastRank(k: Int, n: Int, blocks: Int, fraction: Double) -> Int {
    max(1, Int(fraction * Double(k * n) / Double(k + n + blocks * blocks)))
}

let shapes = [(384, 384), (384, 1536), (1536, 384), (2048, 2048)]
let batches = [1, 8, 32, 128]
let pool2 = KernelPool(threads: 2)
var rows: [Row] = []

for (k, n) in shapes {
    let w = randomArray(n * k)
    let bias = randomArray(n)
    let dense = DenseWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias)
    var operators: [(String, LinearOperator)] = [("dense", dense)]
    operators.append(("nm 2:4", try! NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 2, m: 4, bias: bias)))
    operators.append(("nm 1:4", try! NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 1, m: 4, bias: bias)))
    operators.append(("nm 4:8", try! NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 4, m: 8, bias: bias)))
    for fraction in [0.5, 0.3] {
        let r = blastRank(k: k, n: n, blocks: 4, fraction: fraction)
        let op = try! BlastWeights(u: randomArray(n * r), v: randomArray(k * r), s: randomArray(16 * r), outputFeatures: n,
                                   inputFeatures: k, rowBlocks: 4, columnBlocks: 4, rank: r, bias: bias)
        operators.append(("blast \(Int(fraction * 100))% r=\(r)", op))
    }
    operators.append(("csr 10%", CSRWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, density: 0.1, bias: bias)))
    for m in batches {
        let x = randomArray(m * k)
        var y = [Float](repeating: 0, count: m * n)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for (name, op) in operators {
                    let t = measure { op.apply(xs.baseAddress!, rows: m, into: ys.baseAddress!, activation: .relu, isa: .current) }
                    rows.append(Row(op: name, k: k, n: n, m: m, threads: 1, microseconds: t,
                                    gflops: 2 * Double(m * k * n) / t / 1e3, density: op.density))
                }
                let t2 = measure { dense.apply(xs.baseAddress!, rows: m, into: ys.baseAddress!, activation: .relu, pool: pool2) }
                rows.append(Row(op: "dense", k: k, n: n, m: m, threads: 2, microseconds: t2,
                                gflops: 2 * Double(m * k * n) / t2 / 1e3, density: 1))
            }
        }
    }
}

// Activations over 1 Mi elements (ns per element).
var values = randomArray(1 << 20).map { $0 * 6 }
var activationRows: [(String, Double)] = []
for act in [Activation.relu, .gelu, .tanh, .sigmoid, .silu] {
    let t = measure { values.withUnsafeMutableBufferPointer { act.apply($0.baseAddress!, count: $0.count) } }
    activationRows.append(("\(act) exact", t * 1e3 / Double(values.count)))
}
let pwl = PWLActivation(.gelu, segments: 32)
let tp = measure { values.withUnsafeMutableBufferPointer { pwl.apply($0.baseAddress!, count: $0.count) } }
activationRows.append(("gelu pwl-32 (max abs err \(String(format: "%.4f", pwl.maxAbsoluteError())))", tp * 1e3 / Double(values.count)))

if json {
    let encoder = JSONEncoder()
    print(String(decoding: try! encoder.encode(rows), as: UTF8.self))
    var acts: [String: Double] = [:]
    for (name, ns) in activationRows { acts[name] = ns }
    print(String(decoding: try! encoder.encode(acts), as: UTF8.self))
} else {
    print("# CPU: \(InstructionSet.current); µs per call (median of 5), dense-equivalent GFLOP/s, speed-up vs our dense (same threads)")
    print("op".padding(toLength: 20, withPad: " ", startingAt: 0) + "   K     N    M thr        µs   GFLOP/s  vs dense  density")
    for row in rows {
        let base = rows.first { $0.op == "dense" && $0.k == row.k && $0.n == row.n && $0.m == row.m && $0.threads == 1 }!
        print(row.op.padding(toLength: 20, withPad: " ", startingAt: 0)
              + String(format: "%5d %5d %4d %3d %9.1f %9.1f %9.2f %8.3f", row.k, row.n, row.m, row.threads,
                       row.microseconds, row.gflops, base.microseconds / row.microseconds, row.density))
    }
    for (name, ns) in activationRows { print(String(format: "%-48@ %.3f ns/element", name as NSString, ns)) }
}
