import SparseKernels

/// A dense layer that runs on a subset of its inputs and/or outputs, standing for a larger layer
/// whose ℓ1,∞ projection (or a neighbour's) zeroed whole columns or rows:
/// - `gather`: the input columns it reads (nil: all `inputFeatures`, in order);
/// - `scatter`: where its `inner.outputFeatures` results go in an `outputFeatures`-wide output, the
///   other outputs being dropped neurons that output the constant activation(bias).
/// Without `scatter` the output is just `inner`'s (the next layer reads the narrow output).
public final class CompactedDense: LinearOperator, @unchecked Sendable {
    /// Width of the input it is given and of the output it writes.
    public let inputFeatures: Int
    public let outputFeatures: Int
    /// The dense weights (kept outputs × kept inputs) and folded bias that run.
    public let inner: DenseWeights
    public let gather: [Int]?
    public let scatter: Scatter?
    public let storage: String

    /// Kept outputs (`inner`'s rows, in order) and the dropped ones with their pre-activation
    /// constant (the bias).
    public struct Scatter: Sendable {
        public let kept: [Int]
        public let dropped: [Int]
        public let constants: [Float]
    }

    init(inner: DenseWeights, inputFeatures: Int, gather: [Int]?, scatter: Scatter?, storage: String) {
        precondition(gather.map { $0.count == inner.inputFeatures && $0.allSatisfy { (0..<inputFeatures).contains($0) } }
                     ?? (inputFeatures == inner.inputFeatures), "CompactedDense: gather does not match the inner layer")
        precondition(scatter.map { $0.kept.count == inner.outputFeatures } ?? true, "CompactedDense: scatter does not match the inner layer")
        self.inner = inner
        self.inputFeatures = inputFeatures
        self.outputFeatures = scatter.map { $0.kept.count + $0.dropped.count } ?? inner.outputFeatures
        self.gather = gather
        self.scatter = scatter
        self.storage = storage
    }

    public var parameterCount: Int { inner.parameterCount + (scatter?.constants.count ?? 0) }
    public var byteCount: Int {
        inner.byteCount + 4 * ((gather?.count ?? 0) + (scatter.map { $0.kept.count + 2 * $0.dropped.count } ?? 0))
    }
    public var flopsPerRow: Int { inner.flopsPerRow }

    public func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int,
                      into y: UnsafeMutablePointer<Float>, outputStride: Int,
                      activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        precondition(rows >= 0 && inputStride >= 0 && outputStride >= outputFeatures, "\(storage).apply: bad strides")
        guard rows > 0 else { return }
        var source = x, sourceStride = inputStride
        var gathered: UnsafeMutablePointer<Float>?
        defer { gathered?.deallocate() }
        if let gather {
            let g = UnsafeMutablePointer<Float>.allocate(capacity: rows * gather.count)
            for r in 0..<rows {
                let row = x + r * inputStride, out = g + r * gather.count
                for (k, c) in gather.enumerated() { out[k] = row[c] }
            }
            gathered = g
            source = UnsafePointer(g)
            sourceStride = gather.count
        }
        guard let scatter else {
            inner.apply(source, rows: rows, inputStride: sourceStride, into: y, outputStride: outputStride,
                        activation: activation, pool: pool, isa: isa)
            return
        }
        let kept = scatter.kept.count
        let small = UnsafeMutablePointer<Float>.allocate(capacity: rows * kept)
        defer { small.deallocate() }
        inner.apply(source, rows: rows, inputStride: sourceStride, into: small, outputStride: kept,
                    activation: activation, pool: pool, isa: isa)
        var constants = scatter.constants
        activation.apply(to: &constants, isa: isa)
        for r in 0..<rows {
            let out = y + r * outputStride, row = small + r * kept
            for (k, o) in scatter.kept.enumerated() { out[o] = row[k] }
            for (d, o) in scatter.dropped.enumerated() { out[o] = constants[d] }
        }
    }
}

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
    /// One linear layer as the manifest and the compression plan give it.
    public struct Layer {
        public var name: String
        public var weights: [Float]
        public var bias: [Float]?
        public var outputFeatures: Int
        public var inputFeatures: Int
        public var method: LayerCompression
        /// Element-wise activations between this layer's matrix product and the next linear layer
        /// (its fused activation first).
        public var activations: [Activation]
        /// Whether the next linear layer reads this layer's output through `activations` only.
        public var feedsNext: Bool

        public init(name: String, weights: [Float], bias: [Float]?, outputFeatures: Int, inputFeatures: Int,
                    method: LayerCompression, activations: [Activation], feedsNext: Bool) {
            self.name = name
            self.weights = weights
            self.bias = bias
            self.outputFeatures = outputFeatures
            self.inputFeatures = inputFeatures
            self.method = method
            self.activations = activations
            self.feedsNext = feedsNext
        }
    }

    /// A built layer: the operator and the relative error of the weights it represents.
    public struct Built {
        public var op: any LinearOperator
        public var relativeError: Double
        public init(op: any LinearOperator, relativeError: Double) {
            self.op = op
            self.relativeError = relativeError
        }
        var pair: (any LinearOperator, Double) { (op, relativeError) }
    }

    /// Whether `method` can take part in compaction, and whether it is an ℓ1,∞ projection.
    static func role(_ method: LayerCompression) -> (compactable: Bool, l1inf: Bool) {
        switch method {
        case .dense: return (true, false)
        case .l1inf: return (true, true)
        case .pinned(let inner): return role(inner)
        default: return (false, false)
        }
    }

    /// Builds every layer's operator; layers are compiled one by one (`alone`, by default
    /// `LayerCompression.makeOperator`) unless an ℓ1,∞ layer lets them shrink. Errors name the
    /// layer's method; the caller adds the layer name.
    public static func build(_ layers: [Layer], alone: (Layer) -> Result<Built, any Error> = buildAlone) throws -> [Result<Built, any Error>] {
        let roles = layers.map { role($0.method) }
        guard roles.contains(where: \.l1inf) else { return layers.map(alone) }

        // Effective weights: projected for ℓ1,∞ layers, as given for dense ones.
        var weights: [[Float]?] = []
        var errors: [Double] = []
        for (layer, r) in zip(layers, roles) {
            guard r.l1inf, case let .l1inf(groups, radius, ratio) = unpinned(layer.method) else {
                weights.append(r.compactable ? layer.weights : nil)
                errors.append(0)
                continue
            }
            let projected = L1InfProjection.project(layer.weights, rows: layer.outputFeatures, columns: layer.inputFeatures,
                                                    groups: groups, radius: radius, radiusRatio: ratio)
            weights.append(projected)
            errors.append(LayerCompression.relativeError(layer.weights, projected))
        }

        // Links between consecutive compactable layers, at least one of them ℓ1,∞: the neurons kept.
        var biases = layers.map { $0.bias }
        var kept = [[Int]?](repeating: nil, count: layers.count)  // kept[i]: link i → i + 1
        var folded = [Int](repeating: 0, count: layers.count)     // inputs folded into layer j's bias
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

        var result: [Result<Built, any Error>] = []
        for (i, layer) in layers.enumerated() {
            let linkedIn = i > 0 ? kept[i - 1] : nil, linkedOut = kept[i]
            guard let w = weights[i], roles[i].l1inf || linkedIn != nil || linkedOut != nil else {
                result.append(alone(layer))
                continue
            }
            let rows = layer.outputFeatures, columns = layer.inputFeatures
            // Inputs: the previous layer's kept neurons (already narrow), or this layer's non-zero columns.
            let inputs: [Int], gather: [Int]?, width: Int
            if let linkedIn {
                inputs = linkedIn
                gather = nil
                width = linkedIn.count
            } else if roles[i].l1inf {
                let zero = zeroColumns(w, rows: rows, columns: columns)
                let nonzero = (0..<columns).filter { !zero.contains($0) }
                inputs = nonzero.isEmpty ? [0] : nonzero
                gather = inputs.count < columns ? inputs : nil
                width = columns
            } else {
                inputs = Array(0..<columns)
                gather = nil
                width = columns
            }
            // Outputs: the link's kept neurons (narrow output), or this layer's non-zero rows scattered.
            let outputs: [Int], scatter: CompactedDense.Scatter?
            if let linkedOut {
                outputs = linkedOut
                scatter = nil
            } else if roles[i].l1inf {
                let zero = zeroRows(w, rows: rows, columns: columns)
                let nonzero = (0..<rows).filter { !zero.contains($0) }
                outputs = nonzero.isEmpty ? [0] : nonzero
                let keptSet = Set(outputs)
                let dropped = (0..<rows).filter { !keptSet.contains($0) }
                scatter = dropped.isEmpty ? nil : .init(kept: outputs, dropped: dropped, constants: dropped.map { biases[i]?[$0] ?? 0 })
            } else {
                outputs = Array(0..<rows)
                scatter = nil
            }
            var small = [Float](repeating: 0, count: outputs.count * inputs.count)
            for (r, row) in outputs.enumerated() {
                for (k, c) in inputs.enumerated() { small[r * inputs.count + k] = w[row * columns + c] }
            }
            let inner = DenseWeights(weights: small, outputFeatures: outputs.count, inputFeatures: inputs.count,
                                     bias: biases[i].map { b in outputs.map { b[$0] } })
            var notes: [String] = []
            if folded[i] > 0 { notes.append("\(folded[i]) dropped inputs folded into the bias") }
            if scatter != nil { notes.append("dropped neurons output activation(bias)") }
            let prefix: String
            if case let .l1inf(groups, _, _) = unpinned(layer.method) { prefix = "l1inf \(groups.rawValue): " } else { prefix = "" }
            let storage = "\(prefix)dense \(outputs.count)x\(inputs.count) of \(rows)x\(columns)"
                + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")")
            let op = CompactedDense(inner: inner, inputFeatures: width, gather: gather, scatter: scatter, storage: storage)
            result.append(.success(Built(op: op, relativeError: errors[i])))
        }
        return result
    }

    public static func buildAlone(_ layer: Layer) -> Result<Built, any Error> {
        Result {
            let (op, error) = try layer.method.makeOperator(weights: layer.weights, outputFeatures: layer.outputFeatures,
                                                            inputFeatures: layer.inputFeatures, bias: layer.bias)
            return Built(op: op, relativeError: error)
        }
    }

    static func unpinned(_ method: LayerCompression) -> LayerCompression {
        if case .pinned(let inner) = method { return unpinned(inner) }
        return method
    }

    static func zeroRows(_ w: [Float], rows: Int, columns: Int) -> Set<Int> {
        Set((0..<rows).filter { r in !(0..<columns).contains { w[r * columns + $0] != 0 } })
    }

    static func zeroColumns(_ w: [Float], rows: Int, columns: Int) -> Set<Int> {
        var nonzero = [Bool](repeating: false, count: columns)
        for r in 0..<rows { for c in 0..<columns where w[r * columns + c] != 0 { nonzero[c] = true } }
        return Set((0..<columns).filter { !nonzero[$0] })
    }
}
