import SparseKernels

/// Layer-by-layer calibration of an MLP: each linear layer is a stage; its replacement (if any)
/// produces the inputs of the next one. With `trackDense` the dense layers run beside it.
extension MLPModel: LayerwiseCalibratable {
    public func runCalibration(_ samples: CalibrationSamples, trackDense: Bool,
                               replace: (CalibrationStage) throws -> [(any LinearOperator)?]) throws {
        guard case .rows(let x) = samples, x.columns == inputFeatures, x.rows > 0 else {
            throw InvalidInputError("an mlp calibrates on rows of \(inputFeatures) features")
        }
        var current = x, dense: Matrix? = trackDense ? x : nil
        for step in steps {
            switch step {
            case let .linear(op, activation, layer):
                let ops = try current.values.withUnsafeBufferPointer { xs in
                    try BertEncoderModel.withOptionalPointer(dense?.values) { ds in
                        try replace(CalibrationStage(layers: [layer], inputs: xs.baseAddress!, denseInputs: ds, rows: current.rows,
                                                     features: current.columns))
                    }
                }
                current = (ops.first.flatMap { $0 } ?? op).apply(current, activation: activation, isa: .current)
                dense = dense.map { op.apply($0, activation: activation, isa: .current) }
            case .activation(let activation):
                current.apply(activation, isa: .current)
                dense?.apply(activation, isa: .current)
            case .softmax:
                current.softmaxRows(isa: .current)
                dense?.softmaxRows(isa: .current)
            }
        }
    }
}
