import Foundation
import SparseKernels
import SparseModels

/// Data-aware compression of a whole model, layer by layer on the compressed model's own
/// activations: the calibration samples run through the model stage by stage (a stage is the
/// linear layers that read the same inputs, e.g. query/key/value); each stage's layers are
/// compressed from the Gram matrix of their inputs (`CalibratedLayer`), and the next stages see
/// the outputs of the compressed layers, so later layers compensate earlier errors. With `refit`
/// the dense model runs beside it, giving each layer the dense outputs to refit to.
///
/// The result is a `LayerCompressor` holding the packed layers; layers it did not compress (dense,
/// magnitude BLAST and ℓ1,∞) are compressed weight-only, and ℓ1,∞ layers it projected are
/// compacted with their neighbours as the weight-only compressor does. Hand it to `ModelLoader` or
/// `ArtifactWriter` like any compressor.
public struct CalibratedCompressor: LayerCompressor {
    public let packed: [String: PackedLayer]
    public let report: CalibrationReport

    /// Calibrated layers as packed here; ℓ1,∞ layers compacted across the chain from their
    /// calibrated projections; the others by the weight-only compressor.
    public func pack(chain layers: [DenseLinearLayer]) -> [Result<(packed: PackedLayer, relativeError: Double?), any Error>] {
        var projected: [Int: (weights: [Float], bias: [Float]?)] = [:], fixed = Set<Int>()
        for (i, layer) in layers.enumerated() {
            guard let mine = packed[layer.name] else { continue }
            if case .l1inf = layer.method.unpinned.method, case .dense(let w) = mine.form {
                projected[i] = (w, mine.bias)
            } else {
                fixed.insert(i)
            }
        }
        return L1InfCompaction.pack(layers, projected: projected, fixed: fixed) { layer in
            if let mine = packed[layer.name] { return .success((mine, nil)) }
            return L1InfCompaction.packAlone(layer)
        }
    }

    /// Compresses the dense model in `directory` by `plan` with the calibration data `options` name
    /// (or the model folder's default set). `progress` gets one line per stage.
    public static func run(modelDirectory directory: String, plan: CompressionPlan, options: CalibrationOptions,
                           progress: (String) -> Void = { _ in }) throws -> CalibratedCompressor {
        let started = Date()
        let (model, builder) = try ModelLoader.open(directory: directory, compression: .dense, compressor: nil, timeLayers: false)
        guard let steppable = model as? any LayerwiseCalibratable else {
            throw CalibrationError(file: directory, "a '\(model.architecture)' model cannot be calibrated layer by layer (supported: mlp, bert-encoder, sequential)")
        }
        guard let path = options.path ?? CalibrationOptions.defaultFile(inModel: directory) else {
            throw CalibrationError(file: directory, "no calibration file given and the model folder has no calibration.txt or calibration.safetensors")
        }
        let set = try CalibrationSet.load(path: path, for: model).prefix(options.samples)
        let weights = try SafeTensors(contentsOf: ModelLoader.path(directory, ModelLoader.weightsFileName))
        var packed: [String: PackedLayer] = [:], stageCount = 0, tokens = 0
        try steppable.runCalibration(set.modelSamples, trackDense: options.refit) { stage in
            stageCount += 1
            tokens = stage.rows
            let methods = stage.layers.map { plan.method(forLayer: $0.name) }
            guard methods.contains(where: { $0.unpinned.method != .dense || CalibratedLayer.rounds($0, options) }) else {
                return stage.layers.map { _ in nil }
            }
            let t0 = Date()
            let refits = methods.contains { $0.unpinned.method != .dense }   // (GPTQ of dense layers needs no cross term)
            var statistics = InputStatistics(features: stage.features, cross: options.refit && refits && stage.denseInputs != nil)
            try statistics.add(stage.inputs, dense: stage.denseInputs, rows: stage.rows)
            statistics.finish()
            var ops: [(any LinearOperator)?] = []
            for (layer, method) in zip(stage.layers, methods) {
                // (through the builder: a conv1d weight is read in its window layout)
                let w = try builder?.denseWeight(of: layer.name, tensor: layer.weight, outputs: layer.outputs, inputs: stage.features)
                    ?? weights.tensor(named: layer.weight, shape: [layer.outputs, stage.features])
                let b = try layer.bias.map { try weights.tensor(named: $0, shape: [layer.outputs]) }
                let result = try CalibratedLayer.compress(weights: w, bias: b, outputs: layer.outputs, inputs: stage.features,
                                                          method: method, statistics: statistics, options: options)
                if let result { packed[layer.name] = result.packed }
                ops.append(result?.op ?? DenseWeights(weights: w, outputFeatures: layer.outputs, inputFeatures: stage.features, bias: b))
            }
            if !stage.layers.contains(where: { packed[$0.name] != nil }) { return stage.layers.map { _ in nil } }
            progress("calibrated \(stage.layers.map(\.name).joined(separator: ", ")) on \(stage.rows) inputs (\(String(format: "%.1f", Date().timeIntervalSince(t0))) s)")
            return ops
        }
        let report = CalibrationReport(source: path, samples: set.count, inputs: tokens, options: options, stages: stageCount,
                                       seconds: Date().timeIntervalSince(started))
        return CalibratedCompressor(packed: packed, report: report)
    }
}

/// What a calibrated compression used, as artifacts record it.
public struct CalibrationReport: Sendable, Equatable, Codable {
    public var source: String
    public var samples: Int
    /// Rows the layers saw (tokens for text encoders).
    public var inputs: Int
    public var saliency: String
    public var refit: Bool
    public var refitIterations: Int
    public var damping: Double
    /// How int8 weights were rounded ("gptq" or "nearest").
    public var rounding: String
    public var stages: Int
    public var seconds: Double

    init(source: String, samples: Int, inputs: Int, options: CalibrationOptions, stages: Int, seconds: Double) {
        self.source = source
        self.samples = samples
        self.inputs = inputs
        saliency = options.saliency.rawValue
        refit = options.refit
        refitIterations = options.refitIterations
        damping = options.damping
        rounding = options.rounding.rawValue
        self.stages = stages
        self.seconds = seconds
    }
}

extension CalibrationSet {
    /// The samples in the form models run them.
    var modelSamples: CalibrationSamples {
        switch samples {
        case .tokens(let ids): return .tokens(ids)
        case let .tensors(values, shape): return .rows(Matrix(rows: count, columns: shape.reduce(1, *), values: values))
        }
    }
}
