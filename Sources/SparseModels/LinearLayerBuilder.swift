import Foundation
import SparseKernels

/// A linear layer ready to run: its stored form, the operator that runs, and the facts about it.
public struct BuiltLinearLayer: Sendable {
    public let packed: PackedLayer
    /// The operator that runs: the compressed one or — unless pinned — the dense form of the same
    /// weights when that timed faster on this machine (its `storage` then says so).
    public let op: any LinearOperator
    /// The compressed operator (the same object as `op` unless the dense form runs).
    public let compressed: any LinearOperator
    public let facts: LayerCompressionFacts

    /// Compresses a dense row-major weight with `method`; the error is measured against `w`.
    public init(compressing w: [Float], outputFeatures: Int, inputFeatures: Int, bias: [Float]?, method: LayerCompression,
                time: Bool = true) throws {
        let (packed, error) = try method.pack(weights: w, outputFeatures: outputFeatures, inputFeatures: inputFeatures, bias: bias)
        try self.init(packed: packed, parameters: method.parameters(outputFeatures: outputFeatures, inputFeatures: inputFeatures),
                      pinned: method.unpinned.pinned, reference: w, relativeError: error, time: time)
    }

    /// Builds from a stored form (checked by `PackedLayer.makeOperator`). The relative error is
    /// `relativeError` when given (an artifact's metadata, or the compaction's), else measured
    /// against `reference`. Unless `pinned` (or `time` is off), an N:M, CSR or BLAST layer is timed
    /// against the dense form of the same weights on its real shape at 1 and 32 rows, and the
    /// faster one runs.
    public init(packed: PackedLayer, parameters: [String: ParameterValue], pinned: Bool, reference: [Float]?,
                relativeError: Double?, time: Bool) throws {
        let compressed = try packed.makeOperator()
        var represented: [Float]?
        func denseForm() -> [Float]? {
            if represented == nil { represented = packed.denseWeights(compressed) }
            return represented
        }
        let error = relativeError ?? reference.flatMap { w in denseForm().map { LayerCompression.relativeError(w, $0) } } ?? 0
        var op: any LinearOperator = compressed
        var timing: LayerTimingChoice?
        switch packed.form {
        case .dense, .compacted:
            break  // dense, or dense and smaller already: nothing to time against
        case .nm, .csr, .blast:
            if time && !pinned, let w = denseForm() {
                let dense = DenseWeights(weights: w, outputFeatures: packed.outputFeatures, inputFeatures: packed.inputFeatures, bias: packed.bias)
                let sparseTime = LayerTiming.microseconds(compressed), denseTime = LayerTiming.microseconds(dense)
                let runsDense = denseTime < 0.9 * sparseTime
                timing = LayerTimingChoice(compressedMicroseconds: sparseTime, denseMicroseconds: denseTime, runsDense: runsDense)
                if runsDense { op = ChosenDense(dense, instead: compressed.storage, sparseMicroseconds: sparseTime, denseMicroseconds: denseTime) }
            }
        }
        self.packed = packed
        self.op = op
        self.compressed = compressed
        // Against the layer's own dense size (a compacted operator is narrower than the layer).
        let denseParameters = packed.outputFeatures * packed.inputFeatures + packed.outputFeatures
        facts = LayerCompressionFacts(method: packed.method, parameters: parameters, pinned: pinned,
                                      storedParameters: compressed.parameterCount, storedBytes: packed.storedBytes,
                                      denseBytes: packed.denseBytes, density: Double(compressed.parameterCount) / Double(denseParameters),
                                      relativeError: error, maskCheck: packed.maskCheck, timing: timing)
    }
}

/// A linear layer that its compression method cannot handle (e.g. N:M on a shape it needs
/// divisible); models report it against their manifest.
public struct LayerCompressionError: Error, CustomStringConvertible {
    public var layer: String
    public var method: LayerCompression
    public var underlying: any Error
    public var description: String { "layer '\(layer)' cannot be compressed as \(method): \(underlying)" }
}

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
    /// Time compressed layers against dense (off for `compress`, which only stores them).
    let timeLayers: Bool
    /// Every layer built, in order, with the dense tensor names it stands for.
    public private(set) var built: [(name: String, weight: String, bias: String?, layer: BuiltLinearLayer)] = []

    /// Compresses the dense layers of `weights` with `plan`.
    public init(weights: SafeTensors, plan: CompressionPlan = .dense, timeLayers: Bool = true) {
        self.weights = weights
        self.plan = plan
        activations = plan.activations
        artifact = nil
        self.timeLayers = timeLayers
    }

    /// Opens `model.safetensors` of a model directory whose manifest is `manifest` (read from
    /// `manifestPath`): an artifact when the manifest is marked compressed — then `plan` must be
    /// dense, since an artifact's compression is fixed — else dense weights compressed by `plan`.
    public init(directory: String, manifest: ModelManifest, manifestPath: String, plan: CompressionPlan, timeLayers: Bool = true) throws {
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
        if let artifact { return (try? artifact.layer(name, file: weights.source))?.method == "dense" }
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

        public init(name: String, weight: String, bias: String?, outputs: Int, inputs: Int, activations: [Activation], feedsNext: Bool) {
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
    /// (`L1InfCompaction`), so a layer's operator may read or write fewer features than its
    /// shape; the widths of linked operators agree (checked for artifacts, whose layers are read
    /// one by one as stored).
    public func chain(_ links: [ChainLink]) throws -> [BuiltLinearLayer] {
        let layers: [BuiltLinearLayer]
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
            var sources: [L1InfCompaction.Layer] = []
            for link in links {
                let w = try weights.tensor(named: link.weight, shape: [link.outputs, link.inputs])
                let b = try link.bias.map { try weights.tensor(named: $0, shape: [link.outputs]) }
                sources.append(L1InfCompaction.Layer(name: link.name, weights: w, bias: b, outputFeatures: link.outputs, inputFeatures: link.inputs,
                                                     method: plan.method(forLayer: link.name), activations: link.activations, feedsNext: link.feedsNext))
            }
            // Layers compiled one by one keep their stored form; compacted ones are turned into theirs.
            var alone: [String: BuiltLinearLayer] = [:]
            let time = timeLayers
            let results = try L1InfCompaction.build(sources) { layer in
                Result {
                    let built = try BuiltLinearLayer(compressing: layer.weights, outputFeatures: layer.outputFeatures, inputFeatures: layer.inputFeatures,
                                                     bias: layer.bias, method: layer.method, time: time)
                    alone[layer.name] = built
                    return L1InfCompaction.Built(op: built.op, relativeError: built.facts.relativeError)
                }
            }
            layers = try zip(sources, results).map { source, result in
                let built: L1InfCompaction.Built
                do { built = try result.get() } catch { throw LayerCompressionError(layer: source.name, method: source.method, underlying: error) }
                if let layer = alone[source.name] { return layer }
                guard let compacted = built.op as? CompactedDense else { fatalError("L1InfCompaction built a \(type(of: built.op))") }
                let packed = PackedLayer(compacted: compacted, method: source.method.methodName, outputFeatures: source.outputFeatures,
                                         inputFeatures: source.inputFeatures, sourceHasBias: source.bias != nil)
                return try BuiltLinearLayer(packed: packed, parameters: source.method.parameters(outputFeatures: source.outputFeatures, inputFeatures: source.inputFeatures),
                                            pinned: source.method.unpinned.pinned, reference: nil, relativeError: built.relativeError, time: false)
            }
        }
        for (link, layer) in zip(links, layers) { built.append((link.name, link.weight, link.bias, layer)) }
        return layers
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
