import SparseKernels
import SparseModels

/// One trainable tensor with its AdamW moments: `mask[i] == 0` freezes element i (a pruned weight
/// stays exactly zero, a vanished neuron's constant stays as it is).
final class TrainableTensor {
    var values: [Float]
    var gradient: [Float]
    var m: [Float]
    var v: [Float]
    let mask: [UInt8]?

    init(_ values: [Float], mask: [UInt8]? = nil) {
        self.values = values
        gradient = [Float](repeating: 0, count: values.count)
        m = gradient
        v = gradient
        self.mask = mask
    }

    func zeroGradient() {
        for i in gradient.indices { gradient[i] = 0 }
    }

    func step(_ config: TrainingKernels.Adam, step: Int) {
        TrainingKernels.adam(config, step: step, parameters: &values, gradient: gradient, m: &m, v: &v, mask: mask, count: values.count)
    }
}

/// A compressed linear layer's parameters for training with its structure fixed, over the
/// operator's own widths (a compacted ℓ1,∞ layer is trained as the narrow layer that runs):
/// - dense, N:M, CSR and compacted layers train a dense weight under a fixed mask (the kept
///   positions), so masks stay exactly N:M (also transposable), CSR keeps its pattern and
///   vanished ℓ1,∞ rows and columns stay gone;
/// - BLAST trains its factors U_i, s_ij, V_j (the block structure and rank stay as they are).
/// `weight` is the dense operator weight Ŵ (outputs × inputs) the forward pass uses, refreshed by
/// `materialize()`; `backward` maps dŴ and db to the parameters' gradients.
final class TrainableLinear {
    enum Factors {
        case masked(TrainableTensor)
        case blast(rowBlocks: Int, columnBlocks: Int, rank: Int, u: TrainableTensor, v: TrainableTensor, s: TrainableTensor)
    }

    let packed: PackedLayer
    let outputs: Int
    let inputs: Int
    let factors: Factors
    /// The operator's bias over its output width (nil: none); compacted layers freeze the dropped
    /// neurons' constants.
    let bias: TrainableTensor?
    private(set) var weight: [Float]

    /// The quantization a quantized layer is stored with: it trains as its dequantised fp32 form
    /// and `repacked()` quantizes the trained weights again (round to nearest).
    let scheme: WeightQuantization?
    /// Set by `evaluateAsServed(true)`: the quantized kernel the forward pass runs instead of the fp32 Ŵ.
    private(set) var servedOperator: (any LinearOperator)?

    init(_ stored: PackedLayer) throws {
        scheme = stored.quantizedScheme
        let packed = try stored.dequantized()
        self.packed = packed
        let op = try packed.makeOperator()
        outputs = op.outputFeatures
        inputs = op.inputFeatures
        var biasValues = packed.bias, biasMask: [UInt8]?
        switch packed.form {
        case .dense(let w):
            factors = .masked(TrainableTensor(w))
        case .nm:
            let nm = op as! NMWeights
            factors = .masked(TrainableTensor(nm.denseWeights(), mask: nm.keptMask().map { $0 ? 1 : 0 }))
        case let .csr(rowStart, columns, values):
            var w = [Float](repeating: 0, count: outputs * inputs), mask = [UInt8](repeating: 0, count: outputs * inputs)
            for row in 0..<outputs {
                for k in Int(rowStart[row])..<Int(rowStart[row + 1]) {
                    w[row * inputs + Int(columns[k])] = values[k]
                    mask[row * inputs + Int(columns[k])] = 1
                }
            }
            factors = .masked(TrainableTensor(w, mask: mask))
        case let .blast(b1, b2, r, u, v, s):
            factors = .blast(rowBlocks: b1, columnBlocks: b2, rank: r, u: TrainableTensor(u), v: TrainableTensor(v), s: TrainableTensor(s))
        case .compacted(let c):
            let (w, mask, b, bm) = Self.expand(c, bias: packed.bias)
            factors = .masked(TrainableTensor(w, mask: mask))
            (biasValues, biasMask) = (b, bm)
        case .quantized:
            throw RecoveryRefusal("a quantized layer must be dequantised before training")
        }
        bias = biasValues.map { TrainableTensor($0, mask: biasMask) }
        weight = []
        materialize()
    }

    /// The compacted operator as a dense `outputWidth × inputWidth` weight with the mask of its
    /// kept (row, gathered column) positions, and its bias over the output width (kept outputs
    /// trainable, dropped neurons' constants frozen).
    static func expand(_ c: PackedLayer.Compaction, bias: [Float]?) -> ([Float], [UInt8], [Float]?, [UInt8]?) {
        let keptIn = c.gather.map { $0.map(Int.init) } ?? Array(0..<c.inputWidth)
        let keptOut = c.scatterKept.map { $0.map(Int.init) } ?? Array(0..<c.outputWidth)
        var w = [Float](repeating: 0, count: c.outputWidth * c.inputWidth), mask = [UInt8](repeating: 0, count: w.count)
        for (i, row) in keptOut.enumerated() {
            for (k, column) in keptIn.enumerated() {
                w[row * c.inputWidth + column] = c.weight[i * keptIn.count + k]
                mask[row * c.inputWidth + column] = 1
            }
        }
        guard bias != nil || c.scatterDropped != nil else { return (w, mask, nil, nil) }
        var b = [Float](repeating: 0, count: c.outputWidth), bm = [UInt8](repeating: 0, count: c.outputWidth)
        for (i, row) in keptOut.enumerated() {
            b[row] = bias?[i] ?? 0
            bm[row] = bias == nil ? 0 : 1
        }
        for (d, row) in (c.scatterDropped ?? []).enumerated() { b[Int(row)] = c.scatterConstants?[d] ?? 0 }
        return (w, mask, b, bm)
    }

    /// Every trainable tensor.
    var tensors: [TrainableTensor] {
        var list: [TrainableTensor]
        switch factors {
        case .masked(let w): list = [w]
        case let .blast(_, _, _, u, v, s): list = [u, v, s]
        }
        if let bias { list.append(bias) }
        return list
    }

    /// Trainable values (masked-out ones not counted).
    var trainableCount: Int { tensors.reduce(0) { $0 + ($1.mask?.reduce(0) { $0 + Int($1) } ?? $1.values.count) } }

    /// Recomputes Ŵ from the parameters.
    func materialize() {
        switch factors {
        case .masked(let w):
            weight = w.values
        case let .blast(b1, b2, r, u, v, s):
            weight = BlastGradients.dense(u: u.values, v: v.values, s: s.values, outputs: outputs, inputs: inputs, b1: b1, b2: b2, rank: r)
        }
    }

    /// Adds the parameter gradients of dŴ (outputs × inputs) and db.
    func backward(weightGradient dw: [Float], biasGradient db: [Float]?) {
        switch factors {
        case .masked(let w):
            for i in dw.indices { w.gradient[i] += dw[i] }
        case let .blast(b1, b2, r, u, v, s):
            BlastGradients.accumulate(dw, u: u, v: v, s: s, outputs: outputs, inputs: inputs, b1: b1, b2: b2, rank: r)
        }
        if let bias, let db {
            for i in db.indices { bias.gradient[i] += db[i] }
        }
    }
}

extension TrainableLinear {
    /// Held-out evaluation on what will be served: with `on`, a quantized layer's forward runs its
    /// quantized kernel on the current weights quantized again (int8 activations too, when dynamic);
    /// fp32 layers compute the same either way. Off again for training.
    func evaluateAsServed(_ on: Bool) throws {
        servedOperator = on && scheme != nil ? try repacked().makeOperator() : nil
    }

    /// The trained layer in its original stored form: the same N:M index stream, CSR pattern,
    /// BLAST block structure and rank, or compaction (gather, scatter, constants), new values,
    /// quantized again when it was stored quantized.
    func repacked() throws -> PackedLayer {
        let layer = try repackedFP32()
        return try scheme.map { try layer.quantized($0) } ?? layer
    }

    private func repackedFP32() throws -> PackedLayer {
        let newBias = bias?.values
        switch (packed.form, factors) {
        case (.dense, .masked(let w)):
            return PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .dense(weight: w.values), bias: newBias,
                               sourceHasBias: packed.sourceHasBias)
        case (.nm(let n, let m, let transposable, _, _), .masked(let w)):
            let mask = (w.mask ?? []).map { $0 != 0 }
            let (values, words) = try NMWeights.pack(weights: w.values, mask: mask, outputFeatures: outputs, inputFeatures: inputs, n: n, m: m)
            return PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .nm(n: n, m: m, transposable: transposable, values: values, indexWords: words),
                               bias: newBias, sourceHasBias: packed.sourceHasBias)
        case (.csr(let rowStart, let columns, _), .masked(let w)):
            var values: [Float] = []
            values.reserveCapacity(columns.count)
            for row in 0..<outputs {
                for k in Int(rowStart[row])..<Int(rowStart[row + 1]) { values.append(w.values[row * inputs + Int(columns[k])]) }
            }
            return PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .csr(rowStart: rowStart, columns: columns, values: values),
                               bias: newBias, sourceHasBias: packed.sourceHasBias)
        case let (.blast, .blast(b1, b2, r, u, v, s)):
            return PackedLayer(outputFeatures: outputs, inputFeatures: inputs,
                               form: .blast(rowBlocks: b1, columnBlocks: b2, rank: r, u: u.values, v: v.values, s: s.values),
                               bias: newBias, sourceHasBias: packed.sourceHasBias)
        case let (.compacted(c), .masked(w)):
            return compactedRepack(c, weights: w.values)
        default:
            preconditionFailure("TrainableLinear: factors do not match the stored form")
        }
    }

    private func compactedRepack(_ c: PackedLayer.Compaction, weights: [Float]) -> PackedLayer {
        let keptIn = c.gather.map { $0.map(Int.init) } ?? Array(0..<c.inputWidth)
        let keptOut = c.scatterKept.map { $0.map(Int.init) } ?? Array(0..<c.outputWidth)
        var updated = c
        updated.weight = keptOut.flatMap { row in keptIn.map { weights[row * c.inputWidth + $0] } }
        let keptBias = packed.bias == nil ? nil : bias.map { b in keptOut.map { b.values[$0] } }
        return PackedLayer(outputFeatures: packed.outputFeatures, inputFeatures: packed.inputFeatures, form: .compacted(updated),
                           bias: keptBias, sourceHasBias: packed.sourceHasBias)
    }
}
