import Foundation
import SparseKernels

/// How one linear layer is stored and run.
public enum LayerCompression: Sendable, Equatable, CustomStringConvertible {
    case dense
    /// Keep the `n` largest-magnitude weights of every group of `m` inputs (per output row).
    case nm(n: Int, m: Int)
    /// A transposable N:M mask (TSENOR): N per row and per column of every m×m block.
    case transposableNM(n: Int, m: Int)
    /// Unstructured magnitude pruning to `density` of the weights, run on the CSR kernel.
    case csr(density: Double)
    /// BLAST factors fitted to the weight: `blocks` × `blocks`, with `rank` or the rank that gives
    /// `parameterRatio` of the dense parameters; `iterations` preconditioned-GD steps.
    case blast(blocks: Int, rank: Int?, parameterRatio: Double?, iterations: Int)
    /// Bi-level ℓ1,∞ projection of column (input) or row (neuron) groups, then compaction of the
    /// groups it zeroes; `radius` η or `radiusRatio` ρ (η = ρ · Σ group maxima).
    case l1inf(groups: L1InfProjection.Groups, radius: Double?, radiusRatio: Double?)
    /// Keep the compressed operator even where the dense form of the same weights runs faster.
    indirect case pinned(LayerCompression)

    public var description: String {
        switch self {
        case .dense: return "dense"
        case let .nm(n, m): return "nm \(n):\(m)"
        case let .transposableNM(n, m): return "nm \(n):\(m) transposable"
        case let .csr(d): return "csr \(d)"
        case let .blast(b, r, ratio, _): return "blast b=\(b) " + (r.map { "r=\($0)" } ?? "ratio=\(ratio ?? 0)")
        case let .pinned(inner): return "\(inner) (pinned)"
        case let .l1inf(groups, radius, ratio): return "l1inf \(groups.rawValue) " + (radius.map { "radius=\($0)" } ?? "ratio=\(ratio ?? 0.5)")
        }
    }

    /// Builds the operator for a row-major `outputFeatures × inputFeatures` weight, and the
    /// relative Frobenius error ‖W − Ŵ‖ / ‖W‖ of what it keeps. Unless pinned, a compressed layer is
    /// timed against the dense form of the same (compressed) weights on its real shape at 1 and 32
    /// rows, and the faster one is used; the choice shows in the operator's `storage`.
    public func makeOperator(weights w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?) throws -> (any LinearOperator, Double) {
        let layer = try BuiltLinearLayer(compressing: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias, method: self)
        return (layer.op, layer.facts.relativeError)
    }

    /// The method without pinning, and whether it was pinned.
    public var unpinned: (method: LayerCompression, pinned: Bool) {
        if case .pinned(let inner) = self { return (inner.unpinned.method, true) }
        return (self, false)
    }

    /// "dense", "nm", "csr", "blast" or "l1inf".
    public var methodName: String {
        switch unpinned.method {
        case .dense, .pinned: return "dense"
        case .nm, .transposableNM: return "nm"
        case .csr: return "csr"
        case .blast: return "blast"
        case .l1inf: return "l1inf"
        }
    }

    /// The method's parameters as reports and artifacts record them (BLAST's rank resolved for
    /// the layer's shape).
    public func parameters(outputFeatures: Int, inputFeatures: Int) -> [String: ParameterValue] {
        switch unpinned.method {
        case .dense, .pinned: return [:]
        case let .nm(n, m): return ["n": .int(n), "m": .int(m), "mask": .string("magnitude")]
        case let .transposableNM(n, m): return ["n": .int(n), "m": .int(m), "mask": .string("transposable")]
        case let .csr(density): return ["density": .double(density)]
        case let .blast(blocks, rank, ratio, iterations):
            var p: [String: ParameterValue] = ["blocks": .int(blocks), "iterations": .int(iterations),
                                               "rank": .int(rank ?? Self.blastRank(blocks, ratio, outputFeatures, inputFeatures))]
            if let ratio { p["parameterRatio"] = .double(ratio) }
            return p
        case let .l1inf(groups, radius, ratio):
            var p: [String: ParameterValue] = ["groups": .string(groups.rawValue)]
            if let radius { p["radius"] = .double(radius) }
            if let ratio { p["radiusRatio"] = .double(ratio) }
            return p
        }
    }

    static func blastRank(_ blocks: Int, _ ratio: Double?, _ rows: Int, _ columns: Int) -> Int {
        BlastFactorization.rank(rows: rows, columns: columns, rowBlocks: blocks, columnBlocks: blocks, parameterRatio: ratio ?? 0.5)
    }

    /// Compresses a row-major `outputFeatures × inputFeatures` weight into the form its method
    /// stores (what an artifact holds; the operator is built from it). The relative error comes
    /// back when the form cannot give it (ℓ1,∞: the projection's, measured here).
    public func pack(weights w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?) throws -> (packed: PackedLayer, relativeError: Double?) {
        let form: PackedLayer.Form
        switch unpinned.method {
        case .dense, .pinned:
            form = .dense(weight: w)
        case let .nm(n, m):
            let mask = NMWeights.magnitudeKept(w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            form = .nm(n: n, m: m, transposable: false, values: values, indexWords: words)
        case let .transposableNM(n, m):
            let mask = try TransposableMask.mask(w, rows: outputFeatures, columns: inputFeatures, n: n, m: m)
            let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            form = .nm(n: n, m: m, transposable: true, values: values, indexWords: words)
        case let .csr(density):
            let op = CSRWeights(magnitudePruning: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, density: density)
            form = .csr(rowStart: op.rowStart, columns: op.columns, values: op.values)
        case let .blast(blocks, rank, ratio, iterations):
            let r = rank ?? Self.blastRank(blocks, ratio, outputFeatures, inputFeatures)
            let fit = try BlastFactorization(fitting: w, rows: outputFeatures, columns: inputFeatures, rowBlocks: blocks,
                                             columnBlocks: blocks, rank: r, iterations: iterations)
            form = .blast(rowBlocks: blocks, columnBlocks: blocks, rank: r, u: fit.u.map(Float.init), v: fit.v.map(Float.init), s: fit.s.map(Float.init))
        case .l1inf:
            // A layer on its own: kept inputs gathered, dropped neurons output activation(bias).
            // (Within a model, L1InfCompaction also shrinks the neighbouring layers.)
            let layer = L1InfCompaction.Layer(name: "", weights: w, bias: bias, outputFeatures: outputFeatures, inputFeatures: inputFeatures,
                                              method: self, activations: [], feedsNext: false)
            let built = try L1InfCompaction.build([layer])[0].get()
            let packed = PackedLayer(compacted: built.op as! CompactedDense, method: "l1inf", outputFeatures: outputFeatures,
                                     inputFeatures: inputFeatures, sourceHasBias: bias != nil)
            return (packed, built.relativeError)
        }
        return (PackedLayer(outputFeatures: outputFeatures, inputFeatures: inputFeatures, form: form, bias: bias), nil)
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            diff += Double(x - y) * Double(x - y)
            norm += Double(x) * Double(x)
        }
        return norm > 0 ? (diff / norm).squareRoot() : 0
    }
}

/// How a model evaluates its non-linear functions: exactly (vectorised polynomial kernels), or as
/// piecewise-linear tables of `segments` uniform segments (`PWLActivation`). The bert-encoder uses
/// the tables for the FFN's GELU (on [-8, 8]) and the attention softmax's exp (on [-12, 0]).
public enum ActivationApproximation: Sendable, Equatable, CustomStringConvertible {
    case exact
    case pwl(segments: Int)

    public var description: String {
        switch self {
        case .exact: return "exact"
        case .pwl(let segments): return "pwl \(segments) segments"
        }
    }
}

/// A model's compression: one method for every linear layer, with per-layer overrides chosen by
/// name pattern (`*` matches any run of characters, e.g. `"encoder.*.ffn.*"`, `"classifier"`);
/// the first matching pattern wins. `activations` says how the non-linear functions are evaluated.
public struct CompressionPlan: Sendable, Equatable {
    public var method: LayerCompression
    public var overrides: [(pattern: String, method: LayerCompression)]
    public var activations: ActivationApproximation

    public init(method: LayerCompression = .dense, overrides: [(pattern: String, method: LayerCompression)] = [],
                activations: ActivationApproximation = .exact) {
        self.method = method
        self.overrides = overrides
        self.activations = activations
    }

    public static let dense = CompressionPlan()

    public func method(forLayer name: String) -> LayerCompression {
        overrides.first { Self.matches(name, pattern: $0.pattern) }?.method ?? method
    }

    /// Glob match where `*` matches any characters (including none).
    public static func matches(_ name: String, pattern: String) -> Bool {
        let n = Array(name.utf8), p = Array(pattern.utf8)
        var i = 0, j = 0, star = -1, mark = 0
        while i < n.count {
            if j < p.count && p[j] == UInt8(ascii: "*") {
                star = j
                mark = i
                j += 1
            } else if j < p.count && p[j] == n[i] {
                i += 1
                j += 1
            } else if star >= 0 {
                j = star + 1
                mark += 1
                i = mark
            } else {
                return false
            }
        }
        while j < p.count && p[j] == UInt8(ascii: "*") { j += 1 }
        return j == p.count
    }

    public static func == (a: CompressionPlan, b: CompressionPlan) -> Bool {
        a.method == b.method && a.activations == b.activations && a.overrides.count == b.overrides.count
            && zip(a.overrides, b.overrides).allSatisfy { $0.pattern == $1.pattern && $0.method == $1.method }
    }
}

/// Times a layer on its real shape: best of 5 runs at 1 row plus best of 3 at 32 rows, in µs.
enum LayerTiming {
    static func microseconds(_ op: any LinearOperator) -> Double {
        var total = 0.0
        for (rows, runs) in [(1, 5), (32, 3)] {
            let x = [Float](repeating: 0.5, count: rows * op.inputFeatures)
            var y = [Float](repeating: 0, count: rows * op.outputFeatures)
            var best = Double.infinity
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                x.withUnsafeBufferPointer { xs in
                    y.withUnsafeMutableBufferPointer { ys in op.apply(xs.baseAddress!, rows: rows, into: ys.baseAddress!, activation: .none, isa: .current) }
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
            }
            total += best
        }
        return total
    }
}

/// The dense form of compressed weights, chosen because it timed faster on this machine.
final class ChosenDense: LinearOperator, @unchecked Sendable {
    let dense: DenseWeights
    let storage: String
    init(_ dense: DenseWeights, instead compressed: String, sparseMicroseconds: Double, denseMicroseconds: Double) {
        self.dense = dense
        storage = "dense (\(compressed) timed slower: \(Int(sparseMicroseconds.rounded())) vs \(Int(denseMicroseconds.rounded())) µs)"
    }
    var inputFeatures: Int { dense.inputFeatures }
    var outputFeatures: Int { dense.outputFeatures }
    var parameterCount: Int { dense.parameterCount }
    var byteCount: Int { dense.byteCount }
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, activation: Activation, isa: InstructionSet) {
        dense.apply(x, rows: rows, into: y, activation: activation, isa: isa)
    }
}
