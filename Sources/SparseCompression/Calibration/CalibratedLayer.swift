import SparseKernels
import SparseModels

/// Compresses one linear layer from its calibration statistics (data-aware), into the packed form
/// its method stores and the operator the rest of the calibration pass runs it with.
///
/// - N:M: `hessian` runs the SparseGPT sweep (mask chosen on the updated weights, compensation);
///   `activation` keeps the n of m largest |w|·‖x‖; `magnitude` the largest |w|.
/// - Transposable N:M: TSENOR on the saliency (|w|/√[H⁻¹]_jj, |w|·‖x‖ or |w|), then, for
///   `hessian`, the sweep with that mask fixed.
/// - CSR: the globally largest saliencies, then (hessian) the sweep with that mask fixed.
/// - then, with `refit`, kept weights and bias refitted to the dense layer's outputs.
/// - BLAST (activation or hessian saliency): the fit whitened by the block-diagonal part of H.
/// - ℓ1,∞ (activation or hessian saliency): the projection of the activation-scaled weight, then
///   compensation and refit of the kept groups (`CalibratedL1Inf`).
/// - int8 weights (`compression.quantize`) of dense, N:M and CSR layers are then rounded by GPTQ
///   (`rounding` `gptq`, the default): the OBS sweep with the quantizer, the mask kept.
/// Other methods (unquantized dense, magnitude BLAST and ℓ1,∞) return nil: the weight-only compressor handles them.
enum CalibratedLayer {
    struct Result {
        var packed: PackedLayer
        var op: any LinearOperator
    }

    static func compress(weights w: [Float], bias: [Float]?, outputs: Int, inputs: Int, method: LayerCompression,
                         statistics s: InputStatistics, options: CalibrationOptions) throws -> Result? {
        let (base, mask) = try compressed(weights: w, bias: bias, outputs: outputs, inputs: inputs, method: method, statistics: s,
                                          options: options)
        guard rounds(method, options), let scheme = method.quantization else { return base }
        let packed = base?.packed ?? PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .dense(weight: w), bias: bias)
        let sweep = try SecondOrderPruning(gram: s.gram, features: inputs, damping: options.damping)
        let quantized = try packed.quantized(scheme) { weights, rows, _, granularity in
            var rounded = weights
            return try sweep.quantize(&rounded, rows: rows, granularity: granularity, mask: mask)
        }
        return Result(packed: quantized, op: try quantized.makeOperator())
    }

    /// Whether calibration rounds this layer's int8 weights itself (GPTQ): dense, N:M and CSR layers
    /// with int8 weights, when `rounding` is `gptq` (BLAST's factors and bf16 round to nearest).
    static func rounds(_ method: LayerCompression, _ options: CalibrationOptions) -> Bool {
        guard options.rounding == .gptq, let scheme = method.quantization, scheme != .bf16 else { return false }
        switch method.unpinned.method {
        case .dense, .nm, .transposableNM, .csr: return true
        default: return false
        }
    }

    /// The method's fp32 form and its mask (1 = keep; nil for unpruned forms), or nil for methods
    /// the weight-only compressor handles.
    private static func compressed(weights w: [Float], bias: [Float]?, outputs: Int, inputs: Int, method: LayerCompression,
                                   statistics s: InputStatistics, options: CalibrationOptions) throws -> (Result?, [UInt8]?) {
        switch method.unpinned.method {
        case let .nm(n, m):
            let (result, mask) = try pruned(w, bias, outputs, inputs, s, options, form: .nm(n: n, m: m, transposable: false)) { scores, pruning in
                // The sweep chooses whole groups; a width that m does not divide (a conv window such as
                // 7 = kernel 7 × 1 channel) takes the saliency mask per group instead, then the same compensation.
                if let pruning, inputs % m == 0 { return (nil, pruning) }
                return (Self.bytes(NMWeights.magnitudeKept(scores, outputFeatures: outputs, inputFeatures: inputs, n: n, m: m)), nil)
            }
            return (result, mask)
        case let .transposableNM(n, m):
            let (result, mask) = try pruned(w, bias, outputs, inputs, s, options, form: .nm(n: n, m: m, transposable: true)) { scores, _ in
                (Self.bytes(try TransposableMask.mask(scores, rows: outputs, columns: inputs, n: n, m: m)), nil)
            }
            return (result, mask)
        case let .csr(density):
            let (result, mask) = try pruned(w, bias, outputs, inputs, s, options, form: .csr) { scores, _ in
                (Self.topMask(scores, keep: Int((Double(scores.count) * density).rounded())), nil)
            }
            return (result, mask)
        case let .blast(blocks, rank, ratio, iterations) where options.saliency != .magnitude:
            let r = rank ?? LayerCompression.blastRank(blocks, ratio, outputs, inputs)
            let fit = try WhitenedBlast.fit(weights: w, rows: outputs, columns: inputs, blocks: blocks, rank: r, iterations: iterations,
                                            gram: s.gram, damping: options.damping)
            let packed = PackedLayer(outputFeatures: outputs, inputFeatures: inputs,
                                     form: .blast(rowBlocks: blocks, columnBlocks: blocks, rank: r, u: fit.u.map(Float.init),
                                                  v: fit.v.map(Float.init), s: fit.s.map(Float.init)), bias: bias)
            return (Result(packed: packed, op: try fit.makeOperator(bias: bias)), nil)
        case let .l1inf(groups, radius, ratio) where options.saliency != .magnitude:
            let (weights, b) = try CalibratedL1Inf.project(weights: w, bias: bias, rows: outputs, columns: inputs, groups: groups, radius: radius,
                                                          radiusRatio: ratio, statistics: s, options: options)
            // dense form with the vanished groups zero: `CalibratedCompressor.pack` compacts it across the chain
            let packed = PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .dense(weight: weights), bias: b,
                                     sourceHasBias: bias != nil)
            return (Result(packed: packed, op: DenseWeights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, bias: b)), nil)
        default:
            return (nil, nil)
        }
    }

    enum PrunedForm { case nm(n: Int, m: Int, transposable: Bool), csr }

    /// Scores → mask (or the sweep's own n:m choice, when `choose` hands the pruner back), compensation, refit, pack.
    private static func pruned(_ w: [Float], _ bias: [Float]?, _ outputs: Int, _ inputs: Int, _ s: InputStatistics,
                               _ options: CalibrationOptions, form: PrunedForm,
                               choose: ([Float], SecondOrderPruning?) throws -> ([UInt8]?, SecondOrderPruning?)) throws -> (Result, [UInt8]) {
        var weights = w, mask: [UInt8]
        if options.saliency == .hessian {
            let pruning = try SecondOrderPruning(gram: s.gram, features: inputs, damping: options.damping)
            let inverse = pruning.inverseDiagonal
            let scores = (0..<w.count).map { abs(w[$0]) / Float(inverse[$0 % inputs].squareRoot()) }
            let (fixed, sweep) = try choose(scores, pruning)
            if let fixed {
                mask = try pruning.prune(&weights, rows: outputs, n: 1, m: 1, mask: fixed)
            } else if case let .nm(n, m, _) = form, let sweep {
                mask = try sweep.prune(&weights, rows: outputs, n: n, m: m)
            } else {
                mask = []
            }
        } else {
            let norms = (0..<inputs).map { Float(s.gram[$0 * inputs + $0].squareRoot()) }
            let scores = options.saliency == .activation ? (0..<w.count).map { abs(w[$0]) * norms[$0 % inputs] } : w.map(abs)
            mask = try choose(scores, nil).0 ?? []
            for i in 0..<weights.count where mask[i] == 0 { weights[i] = 0 }
        }
        var b = bias ?? [Float](repeating: 0, count: outputs)
        if options.refit, s.cross != nil {
            try LeastSquaresRefit.refit(weights: &weights, bias: &b, mask: mask, dense: w, denseBias: bias, rows: outputs, statistics: s,
                                        iterations: options.refitIterations)
        }
        let newBias: [Float]? = bias != nil ? b : nil
        let packedForm: PackedLayer.Form
        switch form {
        case let .nm(n, m, transposable):
            let (values, words) = try NMWeights.pack(weights: weights, mask: mask.map { $0 != 0 }, outputFeatures: outputs,
                                                     inputFeatures: inputs, n: n, m: m)
            packedForm = .nm(n: n, m: m, transposable: transposable, values: values, indexWords: words)
        case .csr:
            let csr = CSRWeights.arrays(weights, outputFeatures: outputs, inputFeatures: inputs) { mask[$0] != 0 }
            packedForm = .csr(rowStart: csr.rowStart, columns: csr.columns, values: csr.values)
        }
        let packed = PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: packedForm, bias: newBias, sourceHasBias: bias != nil)
        return (Result(packed: packed, op: DenseWeights(weights: weights, outputFeatures: outputs, inputFeatures: inputs, bias: newBias)), mask)
    }

    static func bytes(_ mask: [Bool]) -> [UInt8] { mask.map { $0 ? 1 : 0 } }

    /// 1 for the `keep` largest scores (ties: the earlier entry).
    static func topMask(_ scores: [Float], keep: Int) -> [UInt8] {
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        var mask = [UInt8](repeating: 0, count: scores.count)
        for i in order.prefix(keep) { mask[i] = 1 }
        return mask
    }
}
