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

    public var description: String {
        switch self {
        case .dense: return "dense"
        case let .nm(n, m): return "nm \(n):\(m)"
        case let .transposableNM(n, m): return "nm \(n):\(m) transposable"
        case let .csr(d): return "csr \(d)"
        case let .blast(b, r, ratio, _): return "blast b=\(b) " + (r.map { "r=\($0)" } ?? "ratio=\(ratio ?? 0)")
        }
    }

    /// Builds the operator for a row-major `outputFeatures × inputFeatures` weight, and the
    /// relative Frobenius error ‖W − Ŵ‖ / ‖W‖ of what it keeps.
    public func makeOperator(weights w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?) throws -> (any LinearOperator, Double) {
        switch self {
        case .dense:
            return (DenseWeights(weights: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias), 0)
        case let .nm(n, m):
            let pruned = NMWeights.magnitudeMask(w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m)
            let op = try NMWeights(prunedWeights: pruned, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m, bias: bias)
            return (op, Self.relativeError(w, pruned))
        case let .transposableNM(n, m):
            let mask = try TransposableMask.mask(w, rows: outputFeatures, columns: inputFeatures, n: n, m: m)
            let pruned = zip(w, mask).map { $1 ? $0 : 0 }
            let op = try NMWeights(prunedWeights: pruned, outputFeatures: outputFeatures, inputFeatures: inputFeatures, n: n, m: m, bias: bias)
            return (op, Self.relativeError(w, pruned))
        case let .csr(density):
            let op = CSRWeights(magnitudePruning: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, density: density, bias: bias)
            var kept = [Float](repeating: 0, count: w.count)
            for row in 0..<outputFeatures {
                for e in Int(op.rowStart[row])..<Int(op.rowStart[row + 1]) {
                    kept[row * inputFeatures + Int(op.columns[e])] = op.values[e]
                }
            }
            return (op, Self.relativeError(w, kept))
        case let .blast(blocks, rank, ratio, iterations):
            let r = rank ?? BlastFactorization.rank(rows: outputFeatures, columns: inputFeatures, rowBlocks: blocks,
                                                    columnBlocks: blocks, parameterRatio: ratio ?? 0.5)
            let fit = try BlastFactorization(fitting: w, rows: outputFeatures, columns: inputFeatures, rowBlocks: blocks,
                                             columnBlocks: blocks, rank: r, iterations: iterations)
            return (try fit.makeOperator(bias: bias), fit.relativeError)
        }
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

/// A model's compression: one method for every linear layer, with per-layer overrides chosen by
/// name pattern (`*` matches any run of characters, e.g. `"encoder.*.ffn.*"`, `"classifier"`);
/// the first matching pattern wins.
public struct CompressionPlan: Sendable, Equatable {
    public var method: LayerCompression
    public var overrides: [(pattern: String, method: LayerCompression)]

    public init(method: LayerCompression = .dense, overrides: [(pattern: String, method: LayerCompression)] = []) {
        self.method = method
        self.overrides = overrides
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
        a.method == b.method && a.overrides.count == b.overrides.count
            && zip(a.overrides, b.overrides).allSatisfy { $0.pattern == $1.pattern && $0.method == $1.method }
    }
}
