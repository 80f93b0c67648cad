import Foundation

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
    case l1inf(groups: L1InfGroups, radius: Double?, radiusRatio: Double?)
    /// Keep the compressed operator even where the dense form of the same weights runs faster.
    indirect case pinned(LayerCompression)
    /// The method's packed form with quantized weights (`compression.quantize`): int8 with fp32
    /// scales or bf16. Quantized layers run their quantized kernel (they are not timed against dense).
    indirect case quantized(LayerCompression, WeightQuantization)

    public var description: String {
        switch self {
        case .dense: return "dense"
        case let .nm(n, m): return "nm \(n):\(m)"
        case let .transposableNM(n, m): return "nm \(n):\(m) transposable"
        case let .csr(d): return "csr \(d)"
        case let .blast(b, r, ratio, _): return "blast b=\(b) " + (r.map { "r=\($0)" } ?? "ratio=\(ratio ?? 0)")
        case let .pinned(inner): return "\(inner) (pinned)"
        case let .quantized(inner, q): return "\(inner) \(q)"
        case let .l1inf(groups, radius, ratio): return "l1inf \(groups.rawValue) " + (radius.map { "radius=\($0)" } ?? "ratio=\(ratio ?? 0.5)")
        }
    }

    /// The method a compressor packs — without pinning and without weight quantization, which is
    /// applied to the packed form afterwards (`PackedLayer.quantized`) — and whether it was pinned.
    public var unpinned: (method: LayerCompression, pinned: Bool) {
        switch self {
        case .pinned(let inner): return (inner.unpinned.method, true)
        case .quantized(let inner, _): return inner.unpinned
        default: return (self, false)
        }
    }

    /// The weight quantization asked for, if any.
    public var quantization: WeightQuantization? {
        switch self {
        case .pinned(let inner): return inner.quantization
        case .quantized(_, let q): return q
        default: return nil
        }
    }

    /// "dense", "nm", "csr", "blast" or "l1inf".
    public var methodName: String {
        switch unpinned.method {
        case .dense, .pinned, .quantized: return "dense"
        case .nm, .transposableNM: return "nm"
        case .csr: return "csr"
        case .blast: return "blast"
        case .l1inf: return "l1inf"
        }
    }

    /// The method's parameters as reports and artifacts record them (BLAST's rank resolved for
    /// the layer's shape), with the weight quantization's keys.
    public func parameters(outputFeatures: Int, inputFeatures: Int) -> [String: ParameterValue] {
        let own = unpinned.method.baseParameters(outputFeatures: outputFeatures, inputFeatures: inputFeatures)
        return own.merging(quantization?.parameters ?? [:]) { mine, _ in mine }
    }

    private func baseParameters(outputFeatures: Int, inputFeatures: Int) -> [String: ParameterValue] {
        switch self {
        case .dense, .pinned, .quantized: return [:]
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

    /// BLAST's rank for `ratio` (default ½) of the dense parameter count with `blocks` × `blocks`
    /// blocks: r (rows + columns + blocks²) ≈ ratio · rows · columns.
    public static func blastRank(_ blocks: Int, _ ratio: Double?, _ rows: Int, _ columns: Int) -> Int {
        max(1, Int((ratio ?? 0.5) * Double(rows * columns) / Double(rows + columns + blocks * blocks)))
    }

    /// ‖a − b‖ / ‖a‖ (0 when a is 0).
    public static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a, b) {
            diff += Double(x - y) * Double(x - y)
            norm += Double(x) * Double(x)
        }
        return norm > 0 ? (diff / norm).squareRoot() : 0
    }
}


/// The groups an ℓ1,∞ projection bounds: the weight's columns (inputs) or rows (neurons).
public enum L1InfGroups: String, Sendable { case columns, rows }
