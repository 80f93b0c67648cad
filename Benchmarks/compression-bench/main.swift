import Foundation
import SparseKernels
import SparseCompression
import SparseModels
import SparseJSON

// Compression algorithm timings, each next to a baseline measured in the same run:
//   tsenor  transposable 8:16 mask of an 8192×8192 weight on 2 threads (and 1), vs greedy rounding
//           (+ repair) of the same blocks; quality of a sample of blocks against greedy
//   l1inf   bi-level ℓ1,∞ projection of 1000×10000 (row groups, and column groups) and 384×1536 on
//           1 and 2 threads, vs the exact Euclidean projection (sort + Newton) on the same input
//   blast   factorisation per layer (digits fc1/fc2/fc3, MiniLM-sized 384×1536 at b=4, 50 %)
//           on 1 and 2 threads, with its error; the planted-recovery error vs iterations
// `--json` prints machine-readable rows.
//
//   swift run -c release compression-bench [--json] [--quick] [--section tsenor,l1inf,blast,blast-delta]

struct Row: Codable {
    var section: String
    var name: String
    var threads: Int
    var seconds: Double
    var baseline: String?
    var baselineSeconds: Double?
    var note: String?
}

let arguments = Array(CommandLine.arguments.dropFirst())
let json = arguments.contains("--json"), quick = arguments.contains("--quick")
let sectionList = zip(arguments, arguments.dropFirst()).first { $0.0 == "--section" }?.1 ?? "tsenor,l1inf,blast"
let sections = Set(sectionList.split(separator: ",").map(String.init))
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
var rows: [Row] = []
let pools = [1: KernelPool(threads: 1), 2: KernelPool(threads: 2)]

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

func log(_ text: String) {
    if !json { print(text) }
    fflush(nil)
}

/// Wall-clock seconds of `body`: the best (or median) of `runs`.
func time(runs: Int, median: Bool = false, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    samples.sort()
    return median ? samples[samples.count / 2] : samples[0]
}

func gaussian(_ count: Int, seed: UInt64) -> [Float] {
    var g = SplitMix(seed: seed)
    return (0..<count).map { _ in Float(g.normal()) }
}

/// The tests' planted problem: BLAST(b=4, r=32) 256×512 plus 1 % Gaussian noise (fit with b=4, r=64).
func plantedBlast() throws -> [Float] {
    var g = SplitMix(seed: 2)
    let (m, n, b, r0) = (256, 512, 4, 32)
    let truth = try BlastWeights(u: (0..<(m * r0)).map { _ in Float(g.normal()) }, v: (0..<(n * r0)).map { _ in Float(g.normal()) },
                                 s: (0..<(b * b * r0)).map { _ in Float(g.normal()) }, outputFeatures: m, inputFeatures: n,
                                 rowBlocks: b, columnBlocks: b, rank: r0).denseWeights()
    let noise = (0..<(m * n)).map { _ in g.normal() }
    let scale = (truth.reduce(0.0) { $0 + Double($1) * Double($1) } / noise.reduce(0) { $0 + $1 * $1 }).squareRoot()
    return (0..<(m * n)).map { Float(Double(truth[$0]) + 0.01 * scale * noise[$0]) }
}

log("compression-bench: \(ProcessInfo.processInfo.activeProcessorCount) CPUs, ISA \(InstructionSet.current), load average \(loadAverage())")

// MARK: - TSENOR

if sections.contains("tsenor") {
    let side = quick ? 2048 : 8192
    let w = gaussian(side * side, seed: 1)
    var greedy = TransposableMask.Options()
    greedy.iterations = 0
    greedy.twoOptRounds = 0
    let blocks = (side / 16) * (side / 16)
    log("\n## TSENOR 8:16 transposable mask, \(side)×\(side) (\(blocks) blocks of 16×16)")
    for threads in quick ? [2] : [2, 1] {
        let pool = pools[threads]!
        let tsenor = try time(runs: 1) { _ = try TransposableMask.mask(w, rows: side, columns: side, n: 8, m: 16, pool: pool) }
        let baseline = try time(runs: 1) { _ = try TransposableMask.mask(w, rows: side, columns: side, n: 8, m: 16, options: greedy, pool: pool) }
        rows.append(Row(section: "tsenor", name: "8:16 \(side)x\(side)", threads: threads, seconds: tsenor,
                        baseline: "greedy rounding + repair", baselineSeconds: baseline, note: nil))
        log(String(format: "%d thread(s): TSENOR %.2f s (%.1f µs/block), greedy + repair %.2f s (TSENOR costs %.1f× greedy)",
                   threads, tsenor, tsenor / Double(blocks) * 1e6, baseline, tsenor / baseline))
    }
    // Quality on a sample: kept |w| of TSENOR vs greedy on the first 4096 blocks.
    var gain = 0.0
    let sample = 4096
    for b in 0..<sample {
        let bi = b / (side / 16), bj = b % (side / 16)
        var block = [Float](repeating: 0, count: 256)
        for x in 0..<16 { for y in 0..<16 { block[x * 16 + y] = w[(bi * 16 + x) * side + bj * 16 + y] } }
        let t = TransposableMask.block(block, n: 8, m: 16).kept, g = TransposableMask.block(block, n: 8, m: 16, options: greedy).kept
        gain += (t - g) / t
    }
    log(String(format: "kept Σ|w| on %d blocks: TSENOR %.3f %% above greedy (the tests measure the gap to the exact optimum)", sample, gain / Double(sample) * 100))
}

// MARK: - l1,inf

if sections.contains("l1inf") {
    log("\n## l1,inf projection (Gaussian with row scales e^N(0,1), η = 0.2·‖Y‖₁,∞)")
    var g = SplitMix(seed: 5)
    for (rowsCount, columns, groups) in [(1000, 10000, L1InfProjection.Groups.rows), (1000, 10000, .columns), (384, 1536, .rows), (1536, 384, .columns)] {
        let scales = (0..<rowsCount).map { _ in exp(g.normal()) }
        let y = (0..<(rowsCount * columns)).map { Float(g.normal() * scales[$0 / columns]) }
        var x = [Float](repeating: 0, count: y.count), exact = x
        let norm = L1InfProjection.norm(y, rows: rowsCount, columns: columns, groups: groups)
        let eta = 0.2 * norm
        for threads in [1, 2] {
            let pool = pools[threads]!
            var bounds: [Float] = [], exactBounds: [Float] = []
            let bilevel = y.withUnsafeBufferPointer { yp in x.withUnsafeMutableBufferPointer { xp in
                time(runs: quick ? 5 : 21, median: true) {
                    bounds = L1InfProjection.project(yp.baseAddress!, rows: rowsCount, columns: columns, groups: groups, into: xp.baseAddress!,
                                                     radius: eta, radiusRatio: nil, pool: pool)
                }
            } }
            let exactTime = y.withUnsafeBufferPointer { yp in exact.withUnsafeMutableBufferPointer { xp in
                time(runs: quick ? 1 : 3, median: true) {
                    exactBounds = L1InfProjection.projectExact(yp.baseAddress!, rows: rowsCount, columns: columns, groups: groups,
                                                               into: xp.baseAddress!, radius: eta, radiusRatio: nil, pool: pool)
                }
            } }
            func distance(_ a: [Float]) -> Double { zip(a, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot() }
            let note = String(format: "zero groups %d / %d (exact); ‖Y−X‖_F %.1f / %.1f", bounds.filter { $0 == 0 }.count,
                              exactBounds.filter { $0 == 0 }.count, distance(x), distance(exact))
            rows.append(Row(section: "l1inf", name: "\(rowsCount)x\(columns) \(groups.rawValue)", threads: threads, seconds: bilevel,
                            baseline: "exact projection (sort + Newton)", baselineSeconds: exactTime, note: note))
            log(String(format: "%5dx%-5d %@ groups, %d thread(s): bi-level %.2f ms, exact %.1f ms (bi-level %.1f× faster); %@",
                       rowsCount, columns, groups.rawValue, threads, bilevel * 1e3, exactTime * 1e3, exactTime / bilevel, note))
        }
    }
}

// MARK: - BLAST

if sections.contains("blast") {
    log("\n## BLAST factorisation (100 preconditioned-GD steps, the server's default), 50 % of the dense parameters")
    var layers: [(String, [Float], Int, Int, Int)] = []
    if let digits = try? SafeTensors(contentsOf: root.appendingPathComponent("models/digits-mlp/model.safetensors").path) {
        for (name, blocks) in [("fc1", 4), ("fc2", 4), ("fc3", 2)] {
            let info = try digits.info(named: "\(name).weight")
            layers.append(("digits \(name) b=\(blocks)", try digits.tensor(named: "\(name).weight"), info.shape[0], info.shape[1], blocks))
        }
    }
    let minilm = root.appendingPathComponent("models/minilm-l6/model.safetensors").path
    if let weights = try? SafeTensors(contentsOf: minilm) {
        let name = "encoder.layer.0.intermediate.dense.weight"
        layers.append(("MiniLM layer 0 FFN in b=4", try weights.tensor(named: name), 1536, 384, 4))
    }
    layers.append(("Gaussian 1536x384 b=4", gaussian(1536 * 384, seed: 9), 1536, 384, 4))
    for (name, w, m, n, blocks) in layers {
        let r = BlastFactorization.rank(rows: m, columns: n, rowBlocks: blocks, columnBlocks: blocks, parameterRatio: 0.5)
        var results: [Int: (Double, Double)] = [:]
        for threads in [1, 2] {
            var error = 0.0
            let seconds = try time(runs: 1) {
                error = try BlastFactorization(fitting: w, rows: m, columns: n, rowBlocks: blocks, columnBlocks: blocks, rank: r,
                                               iterations: 100, pool: pools[threads]!).relativeError
            }
            results[threads] = (seconds, error)
        }
        let (one, error) = results[1]!, (two, _) = results[2]!
        rows.append(Row(section: "blast", name: "\(name) \(m)x\(n) r=\(r)", threads: 2, seconds: two, baseline: "1 thread",
                        baselineSeconds: one, note: String(format: "relative error %.4f", error)))
        log(String(format: "%-28@ %4dx%-4d r=%3d: %.3f s on 1 thread, %.3f s on 2 (%.2f×); relative error %.4f",
                   name, m, n, r, one, two, one / two, error))
    }
    // Convergence on the planted problem of the tests.
    let (m, n) = (256, 512)
    let planted = try plantedBlast()
    var line: [String] = []
    for steps in quick ? [50, 100] : [25, 50, 100, 200, 300] {
        var error = 0.0
        let seconds = try time(runs: 1) {
            error = try BlastFactorization(fitting: planted, rows: m, columns: n, rowBlocks: 4, columnBlocks: 4, rank: 64, iterations: steps,
                                           pool: pools[2]!).relativeError
        }
        line.append(String(format: "%d steps %.4f (%.2f s)", steps, error, seconds))
        rows.append(Row(section: "blast-convergence", name: "planted 256x512 b=4 r=64, \(steps) steps", threads: 2, seconds: seconds,
                        baseline: nil, baselineSeconds: nil, note: String(format: "relative error %.4f", error)))
    }
    log("planted BLAST(4, 32) + 1 % noise, fit b=4 r=64: " + line.joined(separator: ", "))
}

// MARK: - BLAST b = 1 against truncated SVD (the tests' case): error after T steps for several δ

if sections.contains("blast-delta") {
    var g = SplitMix(seed: 1)
    let a = (0..<(256 * 512)).map { _ in Float(g.normal()) }
    log("\n## BLAST b=1 r=85 on a 256×512 Gaussian: relative error after T steps (truncated SVD: see the unit test)")
    for delta in [0.1, 0.03, 0.01] {
        var line: [String] = []
        for steps in [50, 100, 200, 300] {
            let fit = try BlastFactorization(fitting: a, rows: 256, columns: 512, rowBlocks: 1, columnBlocks: 1, rank: 85,
                                             iterations: steps, delta: delta, pool: pools[2]!)
            line.append(String(format: "T=%d %.5f", steps, fit.relativeError))
        }
        log("δ = \(delta): " + line.joined(separator: ", "))
    }
    var layers: [(String, [Float], Int, Int, Int, Int)] = []
    if let digits = try? SafeTensors(contentsOf: root.appendingPathComponent("models/digits-mlp/model.safetensors").path) {
        layers.append(("digits fc2", try digits.tensor(named: "fc2.weight"), 256, 256, 4, 62))
    }
    if let weights = try? SafeTensors(contentsOf: root.appendingPathComponent("models/minilm-l6/model.safetensors").path) {
        layers.append(("MiniLM FFN in", try weights.tensor(named: "encoder.layer.0.intermediate.dense.weight"), 1536, 384, 4, 152))
    }
    layers.append(("planted BLAST(4,32)+1%", try plantedBlast(), 256, 512, 4, 64))
    for (name, w, rows, columns, blocks, rank) in layers {
        for delta in [0.1, 0.03, 0.01] {
            var line: [String] = []
            for steps in [50, 100, 200] {
                let fit = try BlastFactorization(fitting: w, rows: rows, columns: columns, rowBlocks: blocks, columnBlocks: blocks, rank: rank,
                                                 iterations: steps, delta: delta, pool: pools[2]!)
                line.append(String(format: "T=%d %.4f", steps, fit.relativeError))
            }
            log("\(name) b=\(blocks) r=\(rank) δ = \(delta): " + line.joined(separator: ", "))
        }
    }
}

log("\nload average after: \(loadAverage())")
if json {
    print(try JSONValueEncoder().text(rows, indent: 2))
}
