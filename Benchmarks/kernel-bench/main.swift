import CSparseKernels
import Foundation
import SparseKernels
import SparseJSON

// Kernel micro-benchmarks: dense, N:M, BLAST and CSR layers and the int8 / bf16 formats on the
// issue's shapes (K×N: 384×384, 384×1536, 1536×384, 2048×2048), M ∈ {1, 2, 4, 8, 16, 32, 64, 128}
// rows, 1 and 2 threads, plus the activation kernels. Times are wall-clock medians. At M = 1 each
// row also gets its weight bandwidth (byteCount / time) beside a STREAM-like read of a buffer of
// the same size measured in the same run (the physical limit of a GEMV). `--json` prints machine-readable rows for
// Benchmarks/scripts/kernel_bench.py, which adds numpy/OpenBLAS timings from the same run.
//
// Within one shape, M and thread count the operators are timed in alternating rounds (one sample of
// each in turn, 7 rounds, median per operator), so a load change on the shared machine hits all of
// them alike; the ratios are what to read. `--ops` keeps only operators whose name starts with one
// of the given prefixes (dense is always kept as the baseline). `--cpu-time` times the calling
// thread's CPU time instead of wall-clock and runs 1 thread only: on a loaded shared machine the
// time a call spends descheduled then does not count (cache and core sharing still do).
// `--call-percentile P` calls the operators of one shape and M on 1 and 2 threads in turn, one
// call each, timing every call alone, and keeps the P-th percentile of each one's calls instead of
// sample means (still wall clock): calls during which a thread was descheduled fall out of a low
// percentile, and the 1- and 2-thread calls see the same moments of the machine. `--split-variants`
// adds 2-thread rows "… [panel split]" on a pool that never splits W8A8 calls by token rows and
// "… [token parts >= 64]" on one that splits them in parts of at least 64 rows.
//
//   swift run -c release kernel-bench [--json] [--quick] [--shapes 384x1536,...] [--rows 1,128] [--ops "nm 2:4,blast 50%"]
//       [--cpu-time] [--call-percentile 1] [--split-variants]
//   swift run -c release kernel-bench --conv [--quick]   # conv1d: banded operator vs im2col + GEMM (ConvBench.swift)

struct Row: Codable {
    var op: String
    var k: Int
    var n: Int
    var m: Int
    var threads: Int
    var microseconds: Double
    /// Dense-equivalent: 2·M·K·N / time.
    var gflops: Double
    var density: Double
    /// Bytes the operator holds (weights, scales, indices, bias).
    var weightBytes: Int
    /// M = 1 only: weightBytes / time, GB/s.
    var weightGBs: Double?
    /// M = 1 only: read bandwidth of a buffer of weightBytes, same run, GB/s.
    var readGBs: Double?
}

struct ActivationRow: Codable {
    var name: String
    var nanosecondsPerElement: Double
    var maxAbsoluteError: Double?
}

struct Report: Codable {
    var isa: String
    /// "wall" or "thread-cpu" (--cpu-time).
    var clock: String
    var cpus: Int
    var loadAverage: [Double]
    var rows: [Row]
    var activations: [ActivationRow]
}

let arguments = CommandLine.arguments
func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let json = arguments.contains("--json")
let quick = arguments.contains("--quick")
let shapes: [(Int, Int)] = option("--shapes").map { list in
    list.split(separator: ",").map { s in let p = s.split(separator: "x").map { Int($0)! }; return (p[0], p[1]) }
} ?? [(384, 384), (384, 1536), (1536, 384), (2048, 2048)]
let batches: [Int] = option("--rows").map { $0.split(separator: ",").map { Int($0)! } } ?? [1, 2, 4, 8, 16, 32, 64, 128]
let cpuTime = arguments.contains("--cpu-time")
let threadCounts = cpuTime ? [1] : [1, 2]
let opPrefixes: [String]? = option("--ops").map { $0.split(separator: ",").map { String($0) } }
func selected(_ name: String) -> Bool {
    name == "dense" || name == "int8 dynamic" || (opPrefixes?.contains { name.hasPrefix($0) } ?? true)
}

func loadAverage() -> [Double] {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
    return text.split(separator: " ").prefix(3).compactMap { Double($0) }
}

/// Nanoseconds of wall-clock time, or of this thread's CPU time with --cpu-time.
func clockNanoseconds() -> UInt64 {
    guard cpuTime else { return DispatchTime.now().uptimeNanoseconds }
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// One sample: the mean call time (µs) over at least `budget` seconds of back-to-back calls.
func sample(_ budget: Double, _ body: () -> Void) -> Double {
    var reps = 0
    let start = clockNanoseconds()
    var now = start
    repeat {
        body()
        reps += 1
        now = clockNanoseconds()
    } while Double(now - start) < budget * 1e9
    return Double(now - start) / 1e3 / Double(reps)
}

/// --call-percentile P: the bodies are called in turn, one call each, for as long as their
/// samples would take, each call timed alone; a body's time is the P-th percentile of its calls.
let callPercentile: Double? = option("--call-percentile").flatMap(Double.init).map { min(100, max(0, $0)) }

func measureRoundRobin(_ bodies: [() -> Void], percentile p: Double, seconds: Double) -> [Double] {
    var calls = [[UInt64]](repeating: [], count: bodies.count)
    let start = clockNanoseconds()
    repeat {
        for (i, body) in bodies.enumerated() {
            let before = clockNanoseconds()
            body()
            calls[i].append(clockNanoseconds() - before)
        }
    } while Double(clockNanoseconds() - start) < seconds * 1e9
    return calls.map { c in
        let sorted = c.sorted()
        return Double(sorted[min(sorted.count - 1, Int(p / 100 * Double(sorted.count)))]) / 1e3
    }
}

/// Median over 7 samples (5 with --quick) of the mean call time, each sample at least `budget`
/// seconds of back-to-back calls.
func measure(_ budget: Double = quick ? 0.005 : 0.02, _ body: () -> Void) -> Double {
    withoutActuallyEscaping(body) { measureAlternating([$0], budget: budget)[0] }
}

/// `measure` for several bodies in alternating rounds: round r takes one sample of each body in
/// turn, so slow phases of a shared machine fall on all of them; the median per body.
func measureAlternating(_ bodies: [() -> Void], budget: Double = quick ? 0.005 : 0.02) -> [Double] {
    for body in bodies { body() }
    let rounds = quick ? 5 : 7
    if let p = callPercentile { return measureRoundRobin(bodies, percentile: p, seconds: budget * Double(rounds * bodies.count)) }
    var samples = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<rounds {
        for (i, body) in bodies.enumerated() { samples[i].append(sample(budget, body)) }
    }
    return samples.map { $0.sorted()[$0.count / 2] }
}

func randomArray(_ count: Int) -> [Float] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
}

/// BLAST rank giving `fraction` of the dense parameter count with b×b blocks.
func blastRank(k: Int, n: Int, blocks: Int, fraction: Double) -> Int {
    max(1, Int(fraction * Double(k * n) / Double(k + n + blocks * blocks)))
}

/// GB/s of a STREAM-like read (ss_read_sum) over a warm buffer of `bytes`, repeated like a GEMV.
func readBandwidth(bytes: Int) -> Double {
    let buffer = randomArray(max(16, bytes / 4))
    var sink: Float = 0
    let t = buffer.withUnsafeBufferPointer { b in measure { sink += ss_read_sum(b.baseAddress!, b.count) } }
    if sink == .infinity { print("") }  // keeps the sum alive
    return Double(buffer.count * 4) / t / 1e3
}

let pools = [1: KernelPool(threads: 1), 2: KernelPool(threads: 2)]
/// How a call is run: on `threads` threads of `pool`, its rows named with `suffix` after the op.
struct PoolVariant {
    let threads: Int
    let pool: KernelPool
    let suffix: String
}
/// 1 and 2 threads; with --split-variants also 2 threads that never split a W8A8 call by token rows
/// (by output panels over shared quantized rows, as before token splits), rows named "… [panel split]",
/// and 2 threads whose token parts have at least 64 rows ("… [token parts >= 64]").
let variants = threadCounts.map { PoolVariant(threads: $0, pool: pools[$0]!, suffix: "") }
    + (arguments.contains("--split-variants") && !cpuTime
       ? [PoolVariant(threads: 2, pool: KernelPool(threads: 2, minimumTokenSplitRows: .max), suffix: " [panel split]"),
          PoolVariant(threads: 2, pool: KernelPool(threads: 2, minimumTokenSplitRows: 64), suffix: " [token parts >= 64]")] : [])
/// Variants timed together: each alone, or with --call-percentile all in one round-robin (so the
/// 1- and 2-thread calls see the same moments of a shared machine).
let variantGroups = callPercentile == nil ? variants.map { [$0] } : [variants]
if arguments.contains("--conv") {
    try runConvBench()
    exit(0)
}
var rows: [Row] = []
let loadBefore = loadAverage()

for (k, n) in shapes {
    let w = randomArray(n * k)
    let bias = randomArray(n)
    var operators: [(String, any LinearOperator)] = [("dense", DenseWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias))]
    for (sn, sm) in [(2, 4), (1, 4), (4, 8)] {
        operators.append(("nm \(sn):\(sm)", try! NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: sn, m: sm, bias: bias)))
    }
    for fraction in [0.5, 0.3] {
        let r = blastRank(k: k, n: n, blocks: 4, fraction: fraction)
        let op = try! BlastWeights(u: randomArray(n * r), v: randomArray(k * r), s: randomArray(16 * r), outputFeatures: n,
                                   inputFeatures: k, rowBlocks: 4, columnBlocks: 4, rank: r, bias: bias)
        operators.append(("blast \(Int(fraction * 100))% r=\(r)", op))
        if fraction == 0.5 {
            for storage in [BlastFactorStorage.bf16, .int8, .int8WeightOnly] {
                operators.append(("blast-\(storage.rawValue) 50%", try! BlastWeights(
                    u: randomArray(n * r), v: randomArray(k * r), s: randomArray(16 * r), outputFeatures: n, inputFeatures: k,
                    rowBlocks: 4, columnBlocks: 4, rank: r, bias: bias, factorStorage: storage)))
            }
        }
    }
    let csr = CSRWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, density: 0.1, bias: bias)
    operators.append(("csr 10%", csr))
    operators.append(("csr 10% int8", try! CSRInt8Weights(csr)))
    operators.append(("csr 10% int8 w-only", try! CSRWeightOnlyInt8Weights(csr)))
    operators.append(("int8 dynamic", try! Int8DynamicWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias)))
    operators.append(("int8 w-only ch", try! Int8Weights(weights: w, outputFeatures: n, inputFeatures: k, granularity: .channel, bias: bias)))
    operators.append(("int8 w-only g64", try! Int8Weights(weights: w, outputFeatures: n, inputFeatures: k, granularity: .group(64), bias: bias)))
    operators.append(("bf16", try! BF16Weights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias)))
    operators.append(("nm 2:4 int8", try! NMInt8Weights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, bias: bias)))
    let nm24 = try! NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 2, m: 4, bias: bias)
    operators.append(("nm 2:4 int8 w-only ch", try! NMWeightOnlyInt8Weights(nm24, granularity: .channel)))
    operators.append(("nm 2:4 int8 w-only g64", try! NMWeightOnlyInt8Weights(nm24, granularity: .group(64))))
    operators.append(("nm 2:4 bf16", try! NMBF16Weights(NMWeights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, n: 2, m: 4, bias: bias))))
    operators = operators.filter { selected($0.0) }
    for m in batches {
        let x = randomArray(m * k)
        var y = [Float](repeating: 0, count: m * n)
        x.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                for group in variantGroups {
                    let runs = group.flatMap { v in operators.map { (v, $0.0, $0.1) } }
                    let xp = xs.baseAddress!, yp = ys.baseAddress!
                    let times = measureAlternating(runs.map { (v, _, op) in
                        {
                            op.apply(xp, rows: m, inputStride: k, into: yp, outputStride: n,
                                     activation: .relu, pool: v.pool, isa: .current)
                        }
                    })
                    for ((v, name, op), t) in zip(runs, times) {
                        let single = m == 1 && v.threads == 1
                        rows.append(Row(op: name + v.suffix, k: k, n: n, m: m, threads: v.threads, microseconds: t,
                                        gflops: 2 * Double(m * k * n) / t / 1e3, density: op.density, weightBytes: op.byteCount,
                                        weightGBs: single ? Double(op.byteCount) / t / 1e3 : nil,
                                        readGBs: single ? readBandwidth(bytes: op.byteCount) : nil))
                    }
                }
            }
        }
    }
}

// Activations over 128 × 1536 values (one FFN activation at M = 128), ns per element. Every run
// starts from the same inputs, copied into one buffer (the copy alone, timed the same way, is
// subtracted): applied again in place, GELU and SiLU would shrink negative inputs run after run
// into subnormals, which cost Intel cores microcode assists (38 ns per element seen) that no real
// layer pays.
let inputs = randomArray(128 * 1536).map { $0 * 6 }
var values = inputs
var activationRows: [ActivationRow] = []
/// Copies `source` into `values` and runs `body` on them.
@MainActor func fillAndRun(from source: [Float], _ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
    values.withUnsafeMutableBufferPointer { v in
        source.withUnsafeBufferPointer { v.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        body(v.baseAddress!, v.count)
    }
}
@MainActor func timeElements(from source: [Float] = inputs, _ body: (UnsafeMutablePointer<Float>, Int) -> Void) -> Double {
    let t = measure { fillAndRun(from: source, body) }
    return max(0, t - copyMicroseconds) * 1e3 / Double(values.count)
}
let copyMicroseconds = measure { fillAndRun(from: inputs) { _, _ in } }
for act in [Activation.relu, .gelu, .tanh, .sigmoid, .silu] {
    activationRows.append(ActivationRow(name: "\(act) exact", nanosecondsPerElement: timeElements { act.apply($0, count: $1) }))
}
activationRows.append(ActivationRow(name: "exp", nanosecondsPerElement: timeElements(from: inputs.map { -abs($0) }) {
    ss_act_apply_isa(ss_detect_isa(), SS_ACT_EXP, $0, $1)
}))
for segments in [16, 32, 64] {
    let pwl = PWLActivation(.gelu, segments: segments)
    activationRows.append(ActivationRow(name: "gelu pwl-\(segments)", nanosecondsPerElement: timeElements { pwl.apply($0, count: $1) },
                                        maxAbsoluteError: pwl.error.maxAbsolute))
}

let clockName = (cpuTime ? "thread-cpu" : "wall") + (callPercentile.map { " call p\(Int($0))" } ?? "")
let report = Report(isa: InstructionSet.current.rawValue, clock: clockName, cpus: ProcessInfo.processInfo.activeProcessorCount,
                    loadAverage: loadBefore + loadAverage(), rows: rows, activations: activationRows)
if json {
    print(try! JSONValueEncoder().text(report))
} else {
    print("# \(report.isa), \(report.cpus) CPUs, load average before/after: \(report.loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " "))"
          + (cpuTime ? "; times are the calling thread's CPU time (--cpu-time)" : "")
          + (callPercentile.map { "; times are the \(Int($0))th percentile of single calls, 1 and 2 threads in turn (--call-percentile)" } ?? ""))
    print("# wall-clock µs per call (median of alternating rounds), dense-equivalent GFLOP/s = 2·M·K·N/t; ReLU epilogue")
    print("# vs dense = our fp32 dense time / this time (same M, threads); vs int8 = our int8 dense (int8 dynamic) time /")
    print("# this time, for int8 formats; vs 1 thr = this op's 1-thread time / this time (2-thread rows)")
    print("# M = 1, 1 thread: weight GB/s = bytes held / time, read GB/s = ss_read_sum over a buffer of those bytes")
    print("op".padding(toLength: 18, withPad: " ", startingAt: 0)
          + "     K     N    M thr         µs  GFLOP/s  vs dense  vs int8  vs 1 thr  density  weight GB/s  read GB/s")
    func same(_ op: String, _ row: Row, threads: Int? = nil) -> Row? {
        rows.first { $0.op == op && $0.k == row.k && $0.n == row.n && $0.m == row.m && $0.threads == (threads ?? row.threads) }
    }
    func ratio(_ base: Row?, _ row: Row) -> String {
        base.map { String(format: " %8.2f", $0.microseconds / row.microseconds) } ?? String(repeating: " ", count: 9)
    }
    for row in rows {
        let int8Base = row.op.contains("int8") ? same("int8 dynamic", row) : nil
        let oneThread = row.threads > 1 ? same(row.op, row, threads: 1) : nil
        print(row.op.padding(toLength: 18, withPad: " ", startingAt: 0)
              + String(format: " %5d %5d %4d %3d %10.1f %8.1f", row.k, row.n, row.m, row.threads, row.microseconds, row.gflops)
              + ratio(same("dense", row), row) + " " + ratio(int8Base, row) + " " + ratio(oneThread, row)
              + String(format: " %8.3f", row.density)
              + (row.weightGBs.map { String(format: " %12.1f %10.1f", $0, row.readGBs ?? 0) } ?? ""))
    }
    print("# activations over \(values.count) floats")
    for a in activationRows {
        let err = a.maxAbsoluteError.map { String(format: " (max abs error %.2g)", $0) } ?? ""
        print(a.name.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: " %.3f ns/element", a.nanosecondsPerElement) + err)
    }
}
