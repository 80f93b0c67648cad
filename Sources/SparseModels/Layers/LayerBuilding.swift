import SparseKernels

/// Shared steps of building weighted layers from a manifest: reading a weight whose shape must fit
/// the previous layer, and compressing it through the plan — with errors that name the layer.
enum LayerBuilding {
    /// The shape of `tensor`, which must have `rank` positive dimensions (`layout` names them, e.g.
    /// "[out, in]") with `inputs` at dimension 1 (the previous layer's `unit`, e.g. "features").
    static func weightShape(_ weights: SafeTensors, _ tensor: String, layer: String, rank: Int, layout: String,
                            inputs: Int, unit: String) throws -> [Int] {
        let shape = try weights.info(named: tensor).shape
        guard shape.count == rank, shape.allSatisfy({ $0 > 0 }) else {
            throw SafeTensorsError(file: weights.source, tensor: tensor,
                                   reason: "layer '\(layer)' needs a \(rank)-D \(layout) weight, the tensor has shape \(shape)")
        }
        guard shape[1] == inputs else {
            throw SafeTensorsError(file: weights.source, tensor: tensor,
                                   reason: "layer '\(layer)' weight has shape \(shape): \(shape[1]) \(unit == "features" ? "inputs" : "input channels"), but the previous layer produces \(inputs) \(unit)")
        }
        return shape
    }

    /// `method`'s operator for a row-major `outputs × inputs` weight, and its relative error.
    static func compress(_ w: [Float], outputs: Int, inputs: Int, bias: [Float]?, method: LayerCompression,
                         compressor: (any LayerCompressor)?, layer: String, fail: (String) -> ModelLoadError) throws -> (any LinearOperator, Double) {
        do {
            let dense = DenseLinearLayer(name: layer, weights: w, bias: bias, outputFeatures: outputs, inputFeatures: inputs, method: method)
            let built = try BuiltLinearLayer(compressing: dense, compressor: compressor)
            return (built.op, built.facts.relativeError)
        } catch {
            throw fail("layer '\(layer)' cannot be compressed as \(method): \(error)")
        }
    }

    /// A `linear` layer over `inputs` features: its operator, relative error and output count.
    static func linear(_ spec: LinearLayerSpec, layer: String, weights: SafeTensors, inputs: Int, unit: String = "features",
                       compression: CompressionPlan, compressor: (any LayerCompressor)?,
                       fail: (String) -> ModelLoadError) throws -> (op: any LinearOperator, error: Double, outputs: Int) {
        let out = try weightShape(weights, spec.weight, layer: layer, rank: 2, layout: "[out, in]", inputs: inputs, unit: unit)[0]
        let b = try spec.bias.map { try weights.tensor(named: $0, shape: [out]) }
        let (op, error) = try compress(try weights.tensor(named: spec.weight), outputs: out, inputs: inputs, bias: b,
                                       method: compression.method(forLayer: layer), compressor: compressor, layer: layer, fail: fail)
        return (op, error, out)
    }

    /// The summary row of a layer with an operator (`density` overrides the operator's own).
    static func summary(_ name: String, type: String, inputs: Int, outputs: Int, activation: Activation?,
                        op: (any LinearOperator)? = nil, density: Double? = nil, error: Double? = nil) -> ModelSummary.Layer {
        var entry = ModelSummary.Layer(name: name, type: type, inputFeatures: inputs, outputFeatures: outputs,
                                       activation: activation.flatMap { $0 == .none ? nil : $0.rawValue },
                                       parameterCount: op?.parameterCount ?? 0, byteCount: op?.byteCount ?? 0)
        entry.storage = op?.storage
        entry.density = density ?? op?.density
        entry.relativeError = error
        return entry
    }
}
