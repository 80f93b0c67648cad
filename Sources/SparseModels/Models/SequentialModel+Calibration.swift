import SparseKernels

/// Layer-by-layer calibration of a sequential model: every conv1d and linear layer is a stage. A
/// convolution's stage inputs are its windows (im2col of the time-major rows: one row per output
/// step, `kernelSize·channels` wide, what its window weights multiply); a per-step linear layer's
/// are the channels of every step. Recurrences, pooling and activations run as they are; a
/// replaced window operator runs inside the same band, so later stages see its outputs.
extension SequentialModel: LayerwiseCalibratable {
    public func runCalibration(_ samples: CalibrationSamples, trackDense: Bool,
                               replace: (CalibrationStage) throws -> [(any LinearOperator)?]) throws {
        guard case .rows(let x) = samples, x.columns == inputLength * inputChannels, x.rows > 0 else {
            throw InvalidInputError("a sequential model calibrates on rows of \(inputLength) × \(inputChannels) values")
        }
        var current = x, dense: Matrix? = trackDense ? x : nil
        for (index, step) in steps.enumerated() {
            var replacement: (any LinearOperator)?
            if case let .op(op, _, count) = step, let layer = calibrationLayers[index] {
                let stage = Self.stageInputs(op, steps: count, current, dense)
                let ops = try stage.inputs.withUnsafeBufferPointer { xs in
                    try BertEncoderModel.withOptionalPointer(stage.dense) { ds in
                        try replace(CalibrationStage(layers: [layer], inputs: xs.baseAddress!, denseInputs: ds, rows: stage.rows,
                                                     features: stage.features))
                    }
                }
                replacement = try ops.first.flatMap { $0 }.map { try Self.placing($0, like: op) }
            }
            current = run(step, on: current, replacement: replacement)
            dense = dense.map { run(step, on: $0) }
        }
    }

    /// What a stage's layer multiplies: a convolution's windows, or the channels of every step.
    static func stageInputs(_ op: any LinearOperator, steps: Int, _ x: Matrix,
                            _ dense: Matrix?) -> (inputs: [Float], dense: [Float]?, rows: Int, features: Int) {
        if let band = op as? BandedOperator, let shape = band.convolutionShape {
            return (TrainingKernels.im2col(x.values, rows: x.rows, shape: shape),
                    dense.map { TrainingKernels.im2col($0.values, rows: $0.rows, shape: shape) }, x.rows * shape.outputLength, shape.window)
        }
        return (x.values, dense?.values, x.rows * steps, x.columns / steps)
    }

    /// A replacement of a stage's weight matrix in the place of `op`: inside the same band for a
    /// convolution.
    static func placing(_ inner: any LinearOperator, like op: any LinearOperator) throws -> any LinearOperator {
        guard let band = op as? BandedOperator else { return inner }
        return try BandedOperator(inner: inner, inputFeatures: band.inputFeatures, blocks: band.blocks, blockStep: band.blockStep,
                                  firstColumn: band.firstColumn, taps: band.taps, tapStride: band.tapStride, tapWidth: band.tapWidth)
    }
}

extension BandedOperator {
    /// The geometry of the convolution a band made by `conv1d` runs (nil for other bands).
    var convolutionShape: TrainingKernels.Conv1dShape? {
        let c = tapWidth
        guard blockStep > 0, blockStep % c == 0, tapStride % c == 0, firstColumn <= 0, firstColumn % c == 0, inputFeatures % c == 0 else {
            return nil
        }
        let (length, stride, dilation, left) = (inputFeatures / c, blockStep / c, tapStride / c, -firstColumn / c)
        // The right padding that gives `blocks` windows (the last window's end beyond the input).
        let right = (blocks - 1) * stride + dilation * (taps - 1) + 1 - length - left
        return TrainingKernels.Conv1dShape(length: length, channels: c, kernelSize: taps, stride: stride, dilation: dilation, padding: (left, right))
    }
}
