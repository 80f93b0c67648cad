import SparseKernels

/// A layer stack over sequences (architecture `"sequential"`): 1-D convolutions, linear
/// recurrences, pooling, flatten, linear layers, activations and softmax from the manifest's layer
/// list. Every sample is a (time × channel) array kept time-major in one row (value t·C + c), so
/// convolutions and recurrences are linear operators on the row (banded, lower-triangular or scan),
/// lowered once at load (`SequentialLoader`) and compressible through the plan by layer name like
/// linear layers.
///
/// The one FP32 input is `[-1, length]` (one channel) or `[-1, channels, length]` (PyTorch's and
/// aeon's layout); a one-channel model accepts both. `linear`, `activation` and `softmax` act on
/// the channels of each step. Outputs: when one step is left (after a global pool, `flatten` or a
/// recurrence with `"output": "last"`), FP32 `[-1, channels]` and/or INT64 `[-1]` (the argmax);
/// otherwise FP32 `[-1, channels, length]`.
public final class SequentialModel: InferenceModel, SummarizedModel {
    public let architecture = "sequential"
    public let name: String?
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let labels: [String]?
    public let summary: ModelSummary
    public let inputLength: Int
    public let inputChannels: Int
    /// Steps and channels of the last layer's output.
    public let outputLength: Int
    public let outputChannels: Int

    enum Step: Sendable {
        /// An operator on whole rows (conv, recurrence) or, with `steps` > 1, on each step's channels.
        case op(any LinearOperator, Activation, steps: Int)
        case activation(Activation)
        case softmax(channels: Int)
        case pool(Pooling1d)
        /// (steps × channels) time-major → channel-major.
        case flatten(steps: Int, channels: Int)
    }

    let steps: [Step]
    /// Per step: the layer whose weight matrix it runs (conv window weights or a linear weight),
    /// for layer-by-layer calibration; nil for other steps (recurrences too).
    let calibrationLayers: [CalibrationStage.Layer?]
    private let pool: KernelPool

    /// Assembles a built model (`SequentialLoader` reads the manifest and lowers the layers).
    init(manifest: ModelManifest, input: TensorSpec, inputLength: Int, inputChannels: Int, outputLength: Int, outputChannels: Int,
         steps: [Step], calibrationLayers: [CalibrationStage.Layer?], summary: ModelSummary, pool: KernelPool) {
        name = manifest.name
        inputs = [input]
        outputs = manifest.outputs
        labels = manifest.labels
        self.inputLength = inputLength
        self.inputChannels = inputChannels
        self.outputLength = outputLength
        self.outputChannels = outputChannels
        self.steps = steps
        self.calibrationLayers = calibrationLayers
        self.pool = pool
        self.summary = summary
    }

    /// Runs every layer on a batch of time-major rows (`x.columns == inputLength · inputChannels`,
    /// value t·C + c); returns the last layer's time-major rows.
    public func forward(_ x: Matrix, isa: InstructionSet = .current) -> Matrix {
        precondition(x.columns == inputLength * inputChannels,
                     "SequentialModel.forward: \(x.columns) values per row, expected \(inputLength) × \(inputChannels)")
        var current = x
        for step in steps { current = run(step, on: current, isa: isa) }
        return current
    }

    /// One step on a batch of rows; `replacement` (calibration) runs instead of an `.op` step's operator.
    func run(_ step: Step, on x: Matrix, replacement: (any LinearOperator)? = nil, isa: InstructionSet = .current) -> Matrix {
        var current = x
        let rows = x.rows
        switch step {
        case let .op(original, activation, steps):
            let op = replacement ?? original
            if steps == 1 {
                current = op.apply(current, activation: activation, pool: pool, isa: isa)
            } else {
                let perStep = Matrix(rows: rows * steps, columns: current.columns / steps, values: current.values)
                let out = op.apply(perStep, activation: activation, pool: pool, isa: isa)
                current = Matrix(rows: rows, columns: out.columns * steps, values: out.values)
            }
        case .activation(let activation):
            current.apply(activation, isa: isa)
        case .softmax(let channels):
            VectorKernels.softmaxRows(&current.values, columns: channels, isa: isa)
        case .pool(let pooling):
            current = pooling.apply(current)
        case let .flatten(steps, channels):
            current = Matrix(rows: rows, columns: steps * channels,
                             values: Self.transposeRows(current.values, rows: rows, first: steps, second: channels))
        }
        return current
    }

    public func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let spec = self.inputs[0]
        let (tensor, values) = try MLPModel.fp32Input(inputs, spec)
        let rows = tensor.shape.first ?? 0
        guard rows > 0, tensor.elementCount == rows * inputLength * inputChannels,
              tensor.shape == [rows] + spec.shape.dropFirst() || spec.alternativeShapes.contains([-1] + tensor.shape.dropFirst()) else {
            let also = spec.alternativeShapes.map { " or \($0)" }.joined()
            throw InvalidInputError("input '\(spec.name)' must have shape \(spec.shape)\(also), got \(tensor.shape)")
        }
        // Requests are channel-major ([channels, length]); the layers run time-major.
        let timeMajor = inputChannels == 1 ? values
            : Self.transposeRows(values, rows: rows, first: inputChannels, second: inputLength)
        let result = forward(Matrix(rows: rows, columns: inputLength * inputChannels, values: timeMajor))
        var out: [String: Tensor] = [:]
        for output in outputs {
            if output.datatype == .int64 {
                out[output.name] = Tensor(shape: [rows], storage: .int64(MLPModel.argmaxRows(result)))
            } else if outputLength == 1 {
                out[output.name] = Tensor(shape: [rows, outputChannels], storage: .fp32(result.values))
            } else {
                let channelMajor = Self.transposeRows(result.values, rows: rows, first: outputLength, second: outputChannels)
                out[output.name] = Tensor(shape: [rows, outputChannels, outputLength], storage: .fp32(channelMajor))
            }
        }
        return out
    }

    /// Each row's `first × second` block transposed to `second × first`.
    static func transposeRows(_ values: [Float], rows: Int, first: Int, second: Int) -> [Float] {
        let size = first * second
        precondition(values.count == rows * size, "transposeRows: \(values.count) values are not \(rows) rows of \(first) × \(second)")
        return [Float](unsafeUninitializedCapacity: values.count) { out, initialized in
            values.withUnsafeBufferPointer { x in
                for r in 0..<rows {
                    let src = x.baseAddress! + r * size, dst = out.baseAddress! + r * size
                    for i in 0..<first {
                        for j in 0..<second { dst[j * first + i] = src[i * second + j] }
                    }
                }
            }
            initialized = values.count
        }
    }
}

/// Max or average pooling over time of time-major rows (steps × channels), per channel; windows of
/// `kernelSize` steps every `stride` steps, a last partial window dropped.
struct Pooling1d: Sendable {
    let kind: PoolLayerSpec.Kind
    let kernelSize: Int
    let stride: Int
    let steps: Int
    let channels: Int

    var outputSteps: Int { (steps - kernelSize) / stride + 1 }

    func apply(_ x: Matrix) -> Matrix {
        let rows = x.rows, c = channels, outSteps = outputSteps, size = kernelSize, stride = stride, kind = kind
        precondition(x.columns == steps * c, "Pooling1d: \(x.columns) values per row, expected \(steps) × \(c)")
        let values = [Float](unsafeUninitializedCapacity: rows * outSteps * c) { out, initialized in
            x.values.withUnsafeBufferPointer { input in
                for r in 0..<rows {
                    let src = input.baseAddress! + r * steps * c, dst = out.baseAddress! + r * outSteps * c
                    for t in 0..<outSteps {
                        let window = src + t * stride * c, y = dst + t * c
                        y.update(from: window, count: c)
                        for k in 1..<max(1, size) {
                            let row = window + k * c
                            if kind == .max {
                                for i in 0..<c where row[i] > y[i] || row[i].isNaN { y[i] = row[i] }
                            } else {
                                for i in 0..<c { y[i] += row[i] }
                            }
                        }
                        if kind == .average {
                            let count = Float(size)
                            for i in 0..<c { y[i] /= count }
                        }
                    }
                }
            }
            initialized = rows * outSteps * c
        }
        return Matrix(rows: rows, columns: outSteps * c, values: values)
    }
}
