import SparseKernels

/// Shared steps of building weighted layers from a manifest: reading a weight whose shape must fit
/// the previous layer, and building it through the `LinearLayerBuilder` (compressed by the plan, or
/// read from an artifact) — with errors that name the layer.
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

    /// `[out, in]` of a 2-D layer weight whose `in` must be `inputs`: from the tensor of a dense
    /// model (checked as `weightShape` does), or from an artifact's record of the layer.
    static func matrixShape(_ builder: LinearLayerBuilder, _ tensor: String, layer: String, layout: String, inputs: Int,
                            unit: String) throws -> (outputs: Int, inputs: Int) {
        guard builder.artifact != nil else {
            let shape = try weightShape(builder.weights, tensor, layer: layer, rank: 2, layout: layout, inputs: inputs, unit: unit)
            return (shape[0], shape[1])
        }
        let (outputs, recorded) = try builder.shape(of: layer, weight: tensor)
        guard recorded == inputs else {
            throw SafeTensorsError(file: builder.weights.source, tensor: nil,
                                   reason: "metadata of layer '\(layer)': shape [\(outputs), \(recorded)], but the previous layer produces \(inputs) \(unit)")
        }
        return (outputs, recorded)
    }

    /// A weight matrix of the builder (compressed through its plan or read from its artifact);
    /// compression failures are reported against the manifest through `fail`.
    static func built(_ builder: LinearLayerBuilder, _ name: String, weight: String, bias: String?, outputs: Int, inputs: Int,
                      activation: Activation, fail: (String) -> ModelLoadError) throws -> BuiltLinearLayer {
        let link = LinearLayerBuilder.ChainLink(name: name, weight: weight, bias: bias, outputs: outputs, inputs: inputs,
                                                activations: [activation], feedsNext: false)
        do { return try builder.chain([link])[0] } catch let error as LayerCompressionError { throw fail(error.description) }
    }

    /// A `linear` layer over `inputs` features: the built layer and its output count.
    static func linear(_ spec: LinearLayerSpec, layer: String, builder: LinearLayerBuilder, inputs: Int, unit: String = "features",
                       fail: (String) -> ModelLoadError) throws -> (built: BuiltLinearLayer, outputs: Int) {
        let out = try matrixShape(builder, spec.weight, layer: layer, layout: "[out, in]", inputs: inputs, unit: unit).outputs
        return (try built(builder, layer, weight: spec.weight, bias: spec.bias, outputs: out, inputs: inputs, activation: spec.activation,
                          fail: fail), out)
    }

    /// The summary row of a layer with an operator (`density` overrides the operator's own).
    static func summary(_ name: String, type: String, inputs: Int, outputs: Int, activation: Activation?,
                        op: (any LinearOperator)? = nil, density: Double? = nil, error: Double? = nil,
                        facts: LayerCompressionFacts? = nil) -> ModelSummary.Layer {
        var entry = ModelSummary.Layer(name: name, type: type, inputFeatures: inputs, outputFeatures: outputs,
                                       activation: activation.flatMap { $0 == .none ? nil : $0.rawValue },
                                       parameterCount: op?.parameterCount ?? 0, byteCount: op?.byteCount ?? 0)
        entry.storage = op?.storage
        entry.density = density ?? op?.density
        entry.relativeError = error
        entry.compression = facts
        return entry
    }
}
