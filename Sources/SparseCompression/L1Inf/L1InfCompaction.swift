import SparseKernels
import SparseModels

/// Compaction of ℓ1,∞-projected layers across a chain of linear layers (the MLP's layer list).
///
/// Between two consecutive linear layers i → j that read each other directly (only element-wise
/// activations f in between), both dense or ℓ1,∞, neuron o of layer i is dropped from both sides
/// when row o of Wᵢ is zero (an ℓ1,∞ layer's vanished neuron: it outputs the constant f(bᵢ[o]),
/// which is folded into j's bias as Wⱼ[:, o]·f(bᵢ[o])) or column o of Wⱼ is zero (an ℓ1,∞ layer's
/// vanished input: nobody reads neuron o). Layer i then computes fewer outputs and layer j reads
/// fewer inputs, both on the dense kernel, with no gather or scatter between them. Where a chain
/// ends (model input, model output, or a neighbour with another method) an ℓ1,∞ layer gathers
/// its kept inputs and scatters its kept outputs, dropped neurons writing f(bias).
/// The result equals the dense model on the projected weights.
public enum L1InfCompaction {
    /// One layer's packed form and the relative error of the weights it represents.
    public typealias Packed = Result<(packed: PackedLayer, relativeError: Double?), any Error>

    /// Whether `method` can take part in compaction, and whether it is an ℓ1,∞ projection.
    static func role(_ method: LayerCompression) -> (compactable: Bool, l1inf: Bool) {
        switch method {
        case .dense: return (true, false)
        case .l1inf: return (true, true)
        case .pinned(let inner): return role(inner)
        default: return (false, false)
        }
    }

    /// Packs every layer of a chain; layers are packed one by one (`alone`, by default their
    /// method's `pack`) unless an ℓ1,∞ layer lets them shrink, when they are stored compacted.
    /// `projected` gives ℓ1,∞ layers already projected elsewhere (calibration: weights with their
    /// vanished groups zero, and bias), used instead of projecting them; layers in `fixed` are
    /// packed alone whatever their method, and nothing around them shrinks.
    /// Errors name the layer's method; the caller adds the layer name.
    public static func pack(_ layers: [DenseLinearLayer], projected given: [Int: (weights: [Float], bias: [Float]?)] = [:],
                            fixed: Set<Int> = [], alone: (DenseLinearLayer) -> Packed = packAlone) -> [Packed] {
        let roles = layers.indices.map { fixed.contains($0) ? (compactable: false, l1inf: false) : role(layers[$0].method) }
        guard roles.contains(where: \.l1inf) else { return layers.map(alone) }
        let (weights, errors) = projected(layers, roles: roles, given: given)
        var biases = layers.indices.map { given[$0].map(\.bias) ?? layers[$0].bias }
        let (kept, folded) = links(layers, roles: roles, weights: weights, biases: &biases)
        return layers.indices.map { i in
            let linkedIn = i > 0 ? kept[i - 1] : nil, linkedOut = kept[i]
            guard let w = weights[i], roles[i].l1inf || linkedIn != nil || linkedOut != nil else { return alone(layers[i]) }
            let op = compacted(layers[i], weights: w, bias: biases[i], isL1Inf: roles[i].l1inf, linkedIn: linkedIn,
                               linkedOut: linkedOut, folded: folded[i])
            let layer = layers[i]
            return .success((PackedLayer(compacted: op, method: layer.method.methodName, outputFeatures: layer.outputFeatures,
                                         inputFeatures: layer.inputFeatures, sourceHasBias: layer.bias != nil), errors[i]))
        }
    }

    /// Effective weights: projected for ℓ1,∞ layers, as given for dense ones, nil for the others;
    /// and the projections' relative errors.
    private static func projected(_ layers: [DenseLinearLayer], roles: [(compactable: Bool, l1inf: Bool)],
                                  given: [Int: (weights: [Float], bias: [Float]?)]) -> ([[Float]?], [Double]) {
        var weights: [[Float]?] = [], errors: [Double] = []
        for (i, (layer, r)) in zip(layers, roles).enumerated() {
            guard r.l1inf, case let .l1inf(groups, radius, ratio) = unpinned(layer.method) else {
                weights.append(r.compactable ? layer.weights : nil)
                errors.append(0)
                continue
            }
            let projected = given[i]?.weights ?? L1InfProjection.project(layer.weights, rows: layer.outputFeatures, columns: layer.inputFeatures,
                                                                        groups: groups, radius: radius, radiusRatio: ratio)
            weights.append(projected)
            errors.append(LayerCompression.relativeError(layer.weights, projected))
        }
        return (weights, errors)
    }

    /// Links between consecutive compactable layers, at least one of them ℓ1,∞: `kept[i]` lists
    /// the neurons of link i → i + 1 that survive; `folded[j]` counts dropped inputs whose
    /// constant output moved into layer j's bias (updated in `biases`).
    private static func links(_ layers: [DenseLinearLayer], roles: [(compactable: Bool, l1inf: Bool)], weights: [[Float]?],
                              biases: inout [[Float]?]) -> (kept: [[Int]?], folded: [Int]) {
        var kept = [[Int]?](repeating: nil, count: layers.count)
        var folded = [Int](repeating: 0, count: layers.count)
        for i in 0..<max(0, layers.count - 1) where layers[i].feedsNext {
            let j = i + 1
            guard let wi = weights[i], let wj = weights[j], roles[i].l1inf || roles[j].l1inf else { continue }
            let width = layers[i].outputFeatures, inputs = layers[j].inputFeatures
            precondition(width == inputs, "linked layers \(layers[i].name) → \(layers[j].name) disagree on width")
            let dead = roles[i].l1inf ? zeroRows(wi, rows: width, columns: layers[i].inputFeatures) : []
            let unused = roles[j].l1inf ? zeroColumns(wj, rows: layers[j].outputFeatures, columns: inputs) : []
            var keep = (0..<width).filter { !dead.contains($0) && !unused.contains($0) }
            if keep.isEmpty { keep = [0] }  // a layer keeps at least one neuron (unfolded, so still exact)
            guard keep.count < width else { continue }  // nothing vanished here: both layers stay as they are
            let keptSet = Set(keep)
            // Dropped neurons that still reach layer j: their constant output moves into j's bias.
            let toFold = (0..<width).filter { !keptSet.contains($0) && dead.contains($0) && !unused.contains($0) }
            if !toFold.isEmpty {
                var constants = toFold.map { biases[i]?[$0] ?? 0 }
                for f in layers[i].activations { f.apply(to: &constants) }
                var b = (biases[j] ?? [Float](repeating: 0, count: layers[j].outputFeatures)).map(Double.init)
                for row in 0..<layers[j].outputFeatures {
                    for (o, c) in zip(toFold, constants) { b[row] += Double(wj[row * inputs + o]) * Double(c) }
                }
                biases[j] = b.map(Float.init)
            }
            folded[j] = toFold.count
            kept[i] = keep
        }
        return (kept, folded)
    }

    /// Layer `layer` (effective weight `w`) as a dense operator on its kept inputs and outputs.
    private static func compacted(_ layer: DenseLinearLayer, weights w: [Float], bias: [Float]?, isL1Inf: Bool, linkedIn: [Int]?,
                                  linkedOut: [Int]?, folded: Int) -> CompactedDense {
        let rows = layer.outputFeatures, columns = layer.inputFeatures
        // Inputs: the previous layer's kept neurons (already narrow), or this layer's non-zero columns.
        var inputs = Array(0..<columns), gather: [Int]? = nil, width = columns
        if let linkedIn {
            (inputs, width) = (linkedIn, linkedIn.count)
        } else if isL1Inf {
            let zero = zeroColumns(w, rows: rows, columns: columns)
            let nonzero = (0..<columns).filter { !zero.contains($0) }
            inputs = nonzero.isEmpty ? [0] : nonzero
            gather = inputs.count < columns ? inputs : nil
        }
        // Outputs: the link's kept neurons (narrow output), or this layer's non-zero rows scattered.
        var outputs = Array(0..<rows), scatter: CompactedDense.Scatter? = nil
        if let linkedOut {
            outputs = linkedOut
        } else if isL1Inf {
            let zero = zeroRows(w, rows: rows, columns: columns)
            let nonzero = (0..<rows).filter { !zero.contains($0) }
            outputs = nonzero.isEmpty ? [0] : nonzero
            let keptSet = Set(outputs)
            let dropped = (0..<rows).filter { !keptSet.contains($0) }
            scatter = dropped.isEmpty ? nil : .init(kept: outputs, dropped: dropped, constants: dropped.map { bias?[$0] ?? 0 })
        }
        var small = [Float](repeating: 0, count: outputs.count * inputs.count)
        for (r, row) in outputs.enumerated() {
            for (k, c) in inputs.enumerated() { small[r * inputs.count + k] = w[row * columns + c] }
        }
        let inner = DenseWeights(weights: small, outputFeatures: outputs.count, inputFeatures: inputs.count,
                                 bias: bias.map { b in outputs.map { b[$0] } })
        var notes: [String] = []
        if folded > 0 { notes.append("\(folded) dropped inputs folded into the bias") }
        if scatter != nil { notes.append("dropped neurons output activation(bias)") }
        let prefix: String
        if case let .l1inf(groups, _, _) = unpinned(layer.method) { prefix = "l1inf \(groups.rawValue): " } else { prefix = "" }
        let storage = "\(prefix)dense \(outputs.count)x\(inputs.count) of \(rows)x\(columns)"
            + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")")
        return CompactedDense(inner: inner, inputFeatures: width, gather: gather, scatter: scatter, storage: storage)
    }

    /// One layer packed on its own by its method.
    public static func packAlone(_ layer: DenseLinearLayer) -> Packed {
        Result {
            try layer.method.pack(weights: layer.weights, outputFeatures: layer.outputFeatures, inputFeatures: layer.inputFeatures,
                                  bias: layer.bias)
        }
    }

    static func unpinned(_ method: LayerCompression) -> LayerCompression { method.unpinned.method }

    static func zeroRows(_ w: [Float], rows: Int, columns: Int) -> Set<Int> {
        Set((0..<rows).filter { r in !(0..<columns).contains { w[r * columns + $0] != 0 } })
    }

    static func zeroColumns(_ w: [Float], rows: Int, columns: Int) -> Set<Int> {
        var nonzero = [Bool](repeating: false, count: columns)
        for r in 0..<rows { for c in 0..<columns where w[r * columns + c] != 0 { nonzero[c] = true } }
        return Set((0..<columns).filter { !nonzero[$0] })
    }
}
