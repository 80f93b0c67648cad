import SparseKernels

/// The dense weights of one linear layer of a chain (a model's sequence of linear layers), with
/// the method the plan gives it and what compressing it must know about its neighbours.
public struct DenseLinearLayer: Sendable {
    public var name: String
    /// Row-major `outputFeatures × inputFeatures`.
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
                method: LayerCompression, activations: [Activation] = [], feedsNext: Bool = false) {
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

/// Turns dense layers into the stored form of their methods. SparseModels reads, checks and runs
/// packed layers but holds no compression algorithm: the solvers (TSENOR, BLAST fitting, ℓ1,∞
/// projection and compaction, …) live in the SparseCompression module, whose `WeightCompressor`
/// conforms, and callers that compress at load hand one to `ModelLoader`. Without one, only dense
/// layers can be built.
public protocol LayerCompressor: Sendable {
    /// Packs every layer of a chain (one result per layer, in order), with the relative error of
    /// the weights it represents when the packed form alone cannot give it (nil: measured later
    /// against the dense weights). Layers may shrink their linked neighbours (ℓ1,∞ compaction).
    func pack(chain layers: [DenseLinearLayer]) -> [Result<(packed: PackedLayer, relativeError: Double?), any Error>]
}

extension BuiltLinearLayer {
    /// Packs `layers` with `compressor` (dense layers only when it is nil) and builds each one,
    /// timed against dense when `time` is set. Errors come back per layer.
    public static func build(_ layers: [DenseLinearLayer], compressor: (any LayerCompressor)?,
                             time: Bool) -> [Result<BuiltLinearLayer, any Error>] {
        let packed = compressor?.pack(chain: layers) ?? layers.map(packDense)
        return zip(layers, packed).map { layer, result in
            Result {
                var (form, error) = try result.get()
                let method = layer.method
                if let scheme = method.quantization, form.quantizedScheme != scheme {  // (a calibrated compressor may round it: GPTQ)
                    form = try form.quantized(scheme)
                    error = nil  // measured on the quantized weights
                }
                return try BuiltLinearLayer(packed: form, parameters: method.parameters(outputFeatures: layer.outputFeatures,
                                                                                         inputFeatures: layer.inputFeatures),
                                            pinned: method.unpinned.pinned, reference: layer.weights, relativeError: error, time: time)
            }
        }
    }

    /// Compresses one layer on its own (see `build`).
    public init(compressing layer: DenseLinearLayer, compressor: (any LayerCompressor)?, time: Bool = true) throws {
        self = try Self.build([layer], compressor: compressor, time: time)[0].get()
    }

    private static func packDense(_ layer: DenseLinearLayer) -> Result<(packed: PackedLayer, relativeError: Double?), any Error> {
        guard layer.method.unpinned.method == .dense else { return .failure(NoCompressorError(method: layer.method)) }
        return .success((PackedLayer(outputFeatures: layer.outputFeatures, inputFeatures: layer.inputFeatures,
                                     form: .dense(weight: layer.weights), bias: layer.bias), nil))
    }
}

/// A non-dense method asked of a loader that was given no `LayerCompressor`.
public struct NoCompressorError: Error, CustomStringConvertible {
    public var method: LayerCompression
    public var description: String {
        "compressing as \(method) needs a layer compressor (SparseCompression's WeightCompressor), and this load has none"
    }
}
