import Foundation
import SparseKernels

/// Builds a model's linear layers from one of two sources, and records what it built:
/// - a dense model's weights, each layer compressed at load by a `CompressionPlan`;
/// - a compressed artifact (`sparse-serve compress`): each layer's stored form read from the
///   packed tensors its metadata lists and checked against that metadata (no re-compression).
/// Models ask it for every linear layer by name (with the dense tensor names the source model
/// uses) and read everything else (embeddings, norms) from `weights` as before.
public final class LinearLayerBuilder {
    /// The model's safetensors file (for an artifact: packed tensors plus the untouched rest).
    public let weights: SafeTensors
    public let plan: CompressionPlan
    /// How the model evaluates its non-linear functions: the plan's, or the artifact's.
    public let activations: ActivationApproximation
    /// The artifact's metadata, when loading one.
    public let artifact: CompressedArtifact.Metadata?
    /// Packs layers that the plan compresses (nil: dense layers only).
    public let compressor: (any LayerCompressor)?
    /// Time compressed layers against dense (off for `compress`, which only stores them).
    let timeLayers: Bool
    /// Every layer built, in order, with the dense tensor names it stands for.
    public private(set) var built: [(name: String, weight: String, bias: String?, layer: BuiltLinearLayer)] = []
    /// How the source stores each built layer's dense weight (absent: `[outputs, inputs]`).
    private var layouts: [String: SourceLayout] = [:]

    /// How a source model stores a layer's dense weight.
    public enum SourceLayout: Sendable, Equatable {
        /// `[outputs, inputs]`.
        case matrix
        /// A conv1d weight `[outputs, channels, kernelSize]` (PyTorch's layout); the layer is its
        /// window form `[outputs, kernelSize·channels]` (`BandedOperator.windowWeights`).
        case conv1d(channels: Int, kernelSize: Int)
    }

    /// Compresses the dense layers of `weights` with `plan` through `compressor`.
    public init(weights: SafeTensors, plan: CompressionPlan = .dense, compressor: (any LayerCompressor)? = nil, timeLayers: Bool = true) {
        self.weights = weights
        self.plan = plan
        self.compressor = compressor
        activations = plan.activations
        artifact = nil
        self.timeLayers = timeLayers
    }

    /// Opens `model.safetensors` of a model directory whose manifest is `manifest` (read from
    /// `manifestPath`): an artifact when the manifest is marked compressed — then `plan` must be
    /// dense, since an artifact's compression is fixed — else dense weights compressed by `plan`
    /// through `compressor`.
    public init(directory: String, manifest: ModelManifest, manifestPath: String, plan: CompressionPlan,
                compressor: (any LayerCompressor)? = nil, timeLayers: Bool = true) throws {
        let file = try SafeTensors(contentsOf: ModelLoader.path(directory, ModelLoader.weightsFileName))
        if let marker = manifest.compressed {
            try marker.check(source: manifestPath)
            guard plan == .dense else {
                throw ModelLoadError(file: manifestPath, "is a compressed artifact (made by sparse-serve compress); its compression is fixed, so no compression may be applied to it")
            }
            let metadata = try CompressedArtifact.Metadata(file)
            artifact = metadata
            activations = metadata.activations
        } else {
            if file.metadata[CompressedArtifact.formatKey] == CompressedArtifact.format {
                throw ModelLoadError(file: manifestPath, "\(file.source) is a compressed artifact but this manifest has no \"compressed\" marker")
            }
            artifact = nil
            activations = plan.activations
        }
        weights = file
        self.plan = plan
        self.compressor = compressor
        self.timeLayers = timeLayers
    }

    /// `[out, in]` of the layer `name` whose dense weight is the tensor `weight` (2-D, positive).
    public func shape(of name: String, weight: String) throws -> (outputs: Int, inputs: Int) {
        if let artifact {
            let record = try artifact.layer(name, file: weights.source)
            return (record.shape[0], record.shape[1])
        }
        let info = try weights.info(named: weight)
        guard info.shape.count == 2, info.shape.allSatisfy({ $0 > 0 }) else {
            throw SafeTensorsError(file: weights.source, tensor: weight,
                                   reason: "layer '\(name)' needs a 2-D [out, in] weight, the tensor has shape \(info.shape)")
        }
        return (info.shape[0], info.shape[1])
    }

    /// Whether layer `name` is stored dense (models may then fuse it with its neighbours).
    public func isDense(_ name: String) -> Bool {
        if let artifact {
            let record = try? artifact.layer(name, file: weights.source)
            return record?.method == "dense" && record?.parameters["weights"] == nil
        }
        return plan.method(forLayer: name) == .dense
    }

    /// Builds layer `name`: `outputs × inputs`, dense weight tensor `weight`, bias tensor `bias`.
    /// Compression failures throw `LayerCompressionError`; artifact problems throw errors naming
    /// the file and the tensor.
    public func linear(_ name: String, weight: String, bias: String?, outputs: Int, inputs: Int) throws -> BuiltLinearLayer {
        try chain([ChainLink(name: name, weight: weight, bias: bias, outputs: outputs, inputs: inputs, activations: [], feedsNext: false)])[0]
    }

    /// One linear layer of a chain (a model's sequence of linear layers).
    public struct ChainLink {
        public var name: String
        public var weight: String
        public var bias: String?
        public var outputs: Int
        public var inputs: Int
        /// Element-wise activations between its matrix product and the next linear layer (its
        /// fused activation first).
        public var activations: [Activation]
        /// Whether the next link reads this one's output through `activations` only.
        public var feedsNext: Bool
        /// How the source stores the dense weight.
        public var layout: SourceLayout

        public init(name: String, weight: String, bias: String?, outputs: Int, inputs: Int, activations: [Activation], feedsNext: Bool,
                    layout: SourceLayout = .matrix) {
            self.layout = layout
            self.name = name
            self.weight = weight
            self.bias = bias
            self.outputs = outputs
            self.inputs = inputs
            self.activations = activations
            self.feedsNext = feedsNext
        }
    }

    /// Builds a chain of linear layers. Compressing, ℓ1,∞ layers shrink their linked neighbours
    /// (SparseCompression's `L1InfCompaction`), so a layer's operator may read or write fewer features than its
    /// shape; the widths of linked operators agree (checked for artifacts, whose layers are read
    /// one by one as stored).
    public func chain(_ links: [ChainLink]) throws -> [BuiltLinearLayer] {
        let layers: [BuiltLinearLayer]
        for link in links where link.layout != .matrix { layouts[link.name] = link.layout }
        if let artifact {
            layers = try links.map { try artifact.build($0.name, weight: $0.weight, bias: $0.bias, outputs: $0.outputs, inputs: $0.inputs,
                                                         file: weights, time: timeLayers) }
            for (i, (link, layer)) in zip(links, layers).enumerated() {
                let fedByPrevious = i > 0 && links[i - 1].feedsNext
                let expectedIn = fedByPrevious ? layers[i - 1].op.outputFeatures : link.inputs
                let expectedOut = link.feedsNext ? nil : link.outputs
                if layer.op.inputFeatures != expectedIn || expectedOut.map({ layer.op.outputFeatures != $0 }) == true {
                    let tensor = "\(link.name).\(layer.facts.method).weight"
                    throw SafeTensorsError(file: weights.source, tensor: tensor,
                                           reason: "layer '\(link.name)' runs \(layer.op.inputFeatures) → \(layer.op.outputFeatures) features, but its neighbours need \(expectedIn) → \(expectedOut.map(String.init) ?? "any")")
                }
            }
        } else {
            let sources = try links.map { link in
                let method = plan.method(forLayer: link.name)
                do { try CompressionLimits.check(method, layer: link.name, outputs: link.outputs, inputs: link.inputs) } catch {
                    throw LayerCompressionError(layer: link.name, method: method, underlying: error)
                }
                return DenseLinearLayer(name: link.name, weights: try denseWeight(of: link.name, tensor: link.weight, outputs: link.outputs, inputs: link.inputs),
                                        bias: try link.bias.map { try weights.tensor(named: $0, shape: [link.outputs]) },
                                        outputFeatures: link.outputs, inputFeatures: link.inputs, method: method,
                                        activations: link.activations, feedsNext: link.feedsNext)
            }
            layers = try zip(sources, BuiltLinearLayer.build(sources, compressor: compressor, time: timeLayers)).map { source, result in
                do { return try result.get() } catch { throw LayerCompressionError(layer: source.name, method: source.method, underlying: error) }
            }
        }
        for (link, layer) in zip(links, layers) { built.append((link.name, link.weight, link.bias, layer)) }
        return layers
    }

    /// The dense weight of layer `name` (source tensor `tensor`) in the layer's `[outputs, inputs]`
    /// form, read from `file` (default `weights`; e.g. the source model of an artifact).
    public func denseWeight(of name: String, tensor: String, outputs: Int, inputs: Int, in file: SafeTensors? = nil) throws -> [Float] {
        let source = file ?? weights
        switch layouts[name] ?? .matrix {
        case .matrix:
            return try source.tensor(named: tensor, shape: [outputs, inputs])
        case let .conv1d(channels, kernelSize):
            let w = try source.tensor(named: tensor, shape: [outputs, channels, kernelSize])
            return BandedOperator.windowWeights(w, inChannels: channels, outChannels: outputs, kernelSize: kernelSize)
        }
    }

    /// The weight and bias of a dense layer (`isDense`), for models that fuse dense layers; the
    /// layer is recorded like `linear`'s.
    public func denseLayer(_ name: String, weight: String, bias: String?, outputs: Int, inputs: Int) throws -> (weight: [Float], bias: [Float]?, facts: LayerCompressionFacts) {
        let layer = try linear(name, weight: weight, bias: bias, outputs: outputs, inputs: inputs)
        guard case .dense(let w) = layer.packed.form else {
            throw SafeTensorsError(file: weights.source, tensor: "\(name).\(layer.facts.method).weight", reason: "layer '\(name)' is not stored dense")
        }
        return (w, layer.packed.bias, layer.facts)
    }

    /// Call after the model is built: an artifact must not list layers the model does not have.
    public func finish() throws {
        guard let artifact else { return }
        let used = Set(built.map(\.name))
        if let extra = artifact.layers.first(where: { !used.contains($0.name) }) {
            throw ModelLoadError(file: weights.source, "metadata lists layer '\(extra.name)', which the model does not have")
        }
    }
}
