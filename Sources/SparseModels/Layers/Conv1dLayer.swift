import SparseKernels

/// A `conv1d` manifest layer lowered, once at load, to a `BandedOperator` over the flattened
/// (time × channel) row: its window weights (`out × kernelSize·in`) are a linear layer of the
/// `LinearLayerBuilder` — compressed through the plan like any linear layer's weight, or read from
/// an artifact — so N:M/CSR/BLAST/… inner operators run inside the band.
struct Conv1dLayer {
    let op: BandedOperator
    let outputLength: Int
    let outChannels: Int
    let kernelSize: Int
    let padding: (left: Int, right: Int)
    /// What compressing (or reading) the window weights produced.
    let facts: LayerCompressionFacts
    /// Relative Frobenius error of the compressed window weights.
    var relativeError: Double { facts.relativeError }

    /// Builds the layer for an input of `inputLength` steps × `inChannels`; errors name the layer.
    init(spec: Conv1dLayerSpec, layerName: String, builder: LinearLayerBuilder, inputLength: Int, inChannels: Int,
         fail: (String) -> ModelLoadError) throws {
        let (outChannels, kernelSize) = try Self.shape(spec, layerName: layerName, builder: builder, inChannels: inChannels)
        let padding = spec.padding.steps(kernelSize: kernelSize, dilation: spec.dilation)
        let outputLength = BandedOperator.outputLength(inputLength: inputLength, kernelSize: kernelSize, stride: spec.stride,
                                                       padding: padding, dilation: spec.dilation)
        guard outputLength > 0 else {
            let span = BandedOperator.span(kernelSize: kernelSize, dilation: spec.dilation)
            throw fail("layer '\(layerName)': the kernel spans \(span) steps (size \(kernelSize), dilation \(spec.dilation)) but the padded input has \(inputLength + padding.left + padding.right) (\(inputLength) steps + padding \(padding.left)+\(padding.right))")
        }
        let link = LinearLayerBuilder.ChainLink(name: layerName, weight: spec.weight, bias: spec.bias, outputs: outChannels,
                                                inputs: kernelSize * inChannels, activations: [spec.activation], feedsNext: false,
                                                layout: .conv1d(channels: inChannels, kernelSize: kernelSize))
        let built: BuiltLinearLayer
        do { built = try builder.chain([link])[0] } catch let error as LayerCompressionError { throw fail(error.description) }
        op = try BandedOperator.conv1d(inner: built.op, inChannels: inChannels, kernelSize: kernelSize, inputLength: inputLength,
                                       stride: spec.stride, padding: padding, dilation: spec.dilation)
        facts = built.facts
        self.outputLength = outputLength
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.padding = padding
    }

    /// Output channels and kernel size: from the weight `[out, in, k]` of a dense model, or from an
    /// artifact's record of the window weights `[out, k·in]`.
    private static func shape(_ spec: Conv1dLayerSpec, layerName: String, builder: LinearLayerBuilder,
                              inChannels: Int) throws -> (outChannels: Int, kernelSize: Int) {
        guard builder.artifact != nil else {
            let shape = try LayerBuilding.weightShape(builder.weights, spec.weight, layer: layerName, rank: 3,
                                                      layout: "[out_channels, in_channels, kernel_size]", inputs: inChannels, unit: "channels")
            return (shape[0], shape[2])
        }
        let (outputs, window) = try builder.shape(of: layerName, weight: spec.weight)
        guard window % inChannels == 0 else {
            throw SafeTensorsError(file: builder.weights.source, tensor: nil,
                                   reason: "metadata of layer '\(layerName)': window weights [\(outputs), \(window)] are not kernel_size × \(inChannels) input channels wide")
        }
        return (outputs, window / inChannels)
    }
}
