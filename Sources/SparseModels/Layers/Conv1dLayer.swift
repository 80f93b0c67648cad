import SparseKernels

/// A `conv1d` manifest layer lowered, once at load, to a `BandedOperator` over the flattened
/// (time × channel) row: its window weights (`out × kernelSize·in`) go through the compression
/// plan like a linear layer's weight, so N:M/CSR/… inner operators run inside the band.
struct Conv1dLayer {
    let op: BandedOperator
    let outputLength: Int
    let outChannels: Int
    let kernelSize: Int
    let padding: (left: Int, right: Int)
    /// Relative Frobenius error of the compressed window weights.
    let relativeError: Double

    /// Builds the layer for an input of `inputLength` steps × `inChannels`; errors name the layer.
    init(spec: Conv1dLayerSpec, layerName: String, weights: SafeTensors, inputLength: Int, inChannels: Int,
         method: LayerCompression, compressor: (any LayerCompressor)?, fail: (String) -> ModelLoadError) throws {
        let shape = try LayerBuilding.weightShape(weights, spec.weight, layer: layerName, rank: 3,
                                                  layout: "[out_channels, in_channels, kernel_size]", inputs: inChannels, unit: "channels")
        let (outChannels, kernelSize) = (shape[0], shape[2])
        let padding = spec.padding.steps(kernelSize: kernelSize, dilation: spec.dilation)
        let outputLength = BandedOperator.outputLength(inputLength: inputLength, kernelSize: kernelSize, stride: spec.stride,
                                                       padding: padding, dilation: spec.dilation)
        guard outputLength > 0 else {
            let span = BandedOperator.span(kernelSize: kernelSize, dilation: spec.dilation)
            throw fail("layer '\(layerName)': the kernel spans \(span) steps (size \(kernelSize), dilation \(spec.dilation)) but the padded input has \(inputLength + padding.left + padding.right) (\(inputLength) steps + padding \(padding.left)+\(padding.right))")
        }
        let w = BandedOperator.windowWeights(try weights.tensor(named: spec.weight), inChannels: inChannels,
                                             outChannels: outChannels, kernelSize: kernelSize)
        let b = try spec.bias.map { try weights.tensor(named: $0, shape: [outChannels]) }
        let inner: any LinearOperator
        (inner, relativeError) = try LayerBuilding.compress(w, outputs: outChannels, inputs: kernelSize * inChannels, bias: b,
                                                            method: method, compressor: compressor, layer: layerName, fail: fail)
        op = try BandedOperator.conv1d(inner: inner, inChannels: inChannels, kernelSize: kernelSize, inputLength: inputLength,
                                       stride: spec.stride, padding: padding, dilation: spec.dilation)
        self.outputLength = outputLength
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.padding = padding
    }
}
