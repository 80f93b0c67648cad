import SparseKernels

/// Layer-by-layer calibration: the calibration texts run through the encoder one linear stage at
/// a time (query/key/value, attention output, intermediate, output of each layer), and the caller
/// may replace each stage's layers before they run, so later stages see the replaced layers'
/// outputs. With `trackDense`, each dense layer runs first on the dense model's own hidden states
/// and its stage inputs are kept for the caller (the refit's targets).
extension BertEncoderModel: LayerwiseCalibratable {
    public func runCalibration(_ samples: CalibrationSamples, trackDense: Bool,
                               replace: (CalibrationStage) throws -> [(any LinearOperator)?]) throws {
        guard case .tokens(let sequences) = samples else { throw InvalidInputError("a bert-encoder calibrates on token sequences") }
        if let bad = sequences.joined().first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw InvalidInputError("token id \(bad) is outside the vocabulary (0..<\(config.vocabularySize))")
        }
        let h = config.hiddenSize, ffn = config.intermediateSize
        let (spans, tokens) = Self.spans(of: sequences)
        var w = Workspace(tokens: tokens, hidden: h, ffn: ffn)
        var dense = trackDense ? Workspace(tokens: tokens, hidden: h, ffn: ffn) : nil
        defer { w.deallocate(); dense?.deallocate() }
        embed(sequences, spans: spans, into: w.x, isa: .current)
        if let d = dense { d.x.update(from: w.x, count: tokens * h) }
        for (i, original) in layers.enumerated() {
            var saved: [Stage: [Float]] = [:]
            if var d = dense {
                var layer = original
                forwardLayer(&layer, &d, spans: spans, pool: pool, isa: .current) { stage, _, input in
                    saved[stage] = Array(UnsafeBufferPointer(start: input, count: tokens * (stage == .output ? ffn : h)))
                }
                dense = d
            }
            var layer = original
            try forwardLayer(&layer, &w, spans: spans, pool: pool, isa: .current) { stage, layer, input in
                let names = Self.stageLayers(layer: i, stage, hidden: h, ffn: ffn)
                let features = stage == .output ? ffn : h
                let ops = try Self.withOptionalPointer(saved[stage]) { denseInputs in
                    try replace(CalibrationStage(layers: names, inputs: input, denseInputs: denseInputs, rows: tokens, features: features))
                }
                try Self.apply(ops, stage, names, &layer)
            }
        }
    }

    /// The layers of a stage of encoder layer `i`, named as compression plans name them.
    static func stageLayers(layer i: Int, _ stage: Stage, hidden h: Int, ffn: Int) -> [CalibrationStage.Layer] {
        let prefix = "encoder.layer.\(i)."
        let names: [(String, Int)]
        switch stage {
        case .qkv: names = ["query", "key", "value"].map { ("attention.self." + $0, h) }
        case .attentionOutput: names = [("attention.output.dense", h)]
        case .intermediate: names = [("intermediate.dense", ffn)]
        case .output: names = [("output.dense", h)]
        }
        return names.map { CalibrationStage.Layer(name: prefix + $0.0, weight: prefix + $0.0 + ".weight", bias: prefix + $0.0 + ".bias", outputs: $0.1) }
    }

    /// Puts a stage's replacement operators into the layer (all nil: unchanged).
    static func apply(_ ops: [(any LinearOperator)?], _ stage: Stage, _ names: [CalibrationStage.Layer], _ layer: inout Layer) throws {
        guard ops.contains(where: { $0 != nil }) else { return }
        let chosen = ops.compactMap { $0 }
        guard ops.count == names.count, chosen.count == names.count else {
            throw InvalidInputError("calibration replaced \(chosen.count) of the \(names.count) layers of stage \(names.map(\.name)); a stage is replaced whole")
        }
        switch stage {
        case .qkv: layer.qkv = chosen
        case .attentionOutput: layer.attentionOutput = chosen[0]
        case .intermediate: layer.intermediate = chosen[0]
        case .output: layer.output = chosen[0]
        }
    }

    static func withOptionalPointer<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) throws -> R) rethrows -> R {
        guard let values else { return try body(nil) }
        return try values.withUnsafeBufferPointer { try body($0.baseAddress) }
    }
}
