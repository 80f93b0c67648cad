import SparseKernels

/// A `recurrence` manifest layer built at load: B is a linear layer of the `LinearLayerBuilder`
/// (compressed through the plan or read from an artifact; without the bias, which the forms add
/// themselves), then the layer runs as a `RecurrenceScan` or as the
/// unrolled lower-triangular matrix (`RecurrenceMatrix`) — the spec's `form`, or for `"auto"` the
/// one that times faster on the layer's real shape (1 and 32 rows). The matrix is only considered
/// up to `matrixLimit` stored values: its work grows with T², the scan's with T.
struct RecurrenceLayer {
    static let matrixLimit = 4 << 20

    let op: any LinearOperator
    let outputLength: Int
    let stateSize: Int
    /// B's compressed operator (for the summary: parameters and density).
    let input: any LinearOperator
    let relativeError: Double

    /// B's compression facts (from the plan, or from an artifact).
    let facts: LayerCompressionFacts

    init(spec: RecurrenceLayerSpec, layerName: String, builder: LinearLayerBuilder, steps: Int, inChannels: Int,
         fail: (String) -> ModelLoadError) throws {
        let c = inChannels
        let d = try LayerBuilding.matrixShape(builder, spec.weight, layer: layerName, layout: "[state, in_channels]", inputs: c,
                                              unit: "channels").outputs
        let decay = try builder.weights.tensor(named: spec.decay, shape: [d])
        let bias = try spec.bias.map { try builder.weights.tensor(named: $0, shape: [d]) }
        let lastOnly = spec.output == .last
        let built = try LayerBuilding.built(builder, layerName, weight: spec.weight, bias: nil, outputs: d, inputs: c, activation: .none,
                                            fail: fail)
        let input = built.op
        facts = built.facts
        relativeError = built.facts.relativeError
        let matrixValues = (lastOnly ? 1 : steps) * d * steps * c
        if spec.form == .matrix && matrixValues > Self.matrixLimit {
            throw fail("layer '\(layerName)': the matrix form would hold \(matrixValues) values (T = \(steps)), more than \(Self.matrixLimit); use form 'scan' or 'auto'")
        }
        let scan = { RecurrenceScan(input: input, bias: bias, decay: decay, steps: steps, lastOnly: lastOnly) }
        let matrix = { RecurrenceMatrix(input: input, bias: bias, decay: decay, steps: steps, lastOnly: lastOnly) }
        switch spec.form {
        case .scan: op = scan()
        case .matrix: op = matrix()
        case .auto where matrixValues > Self.matrixLimit: op = scan()
        case .auto:
            let (s, m) = (scan(), matrix())
            let scanTime = LayerTiming.microseconds(s), matrixTime = LayerTiming.microseconds(m)
            op = matrixTime < scanTime
                ? Relabeled(m, storage: Relabeled.timed(m.storage, over: "scan", slowerMicroseconds: scanTime, microseconds: matrixTime))
                : Relabeled(s, storage: Relabeled.timed(s.storage, over: "matrix", slowerMicroseconds: matrixTime, microseconds: scanTime))
        }
        self.input = input
        outputLength = lastOnly ? 1 : steps
        stateSize = d
    }
}

/// The unrolled recurrence (`LinearRecurrence.lowerTriangular` of B's dense form) on the dense GEMM.
final class RecurrenceMatrix: LinearOperator, @unchecked Sendable {
    let matrix: DenseWeights
    let steps: Int
    let stateSize: Int
    let storage: String
    /// B, a and b as stored (for `parameterCount`).
    let sourceParameters: Int

    init(input: any LinearOperator, bias: [Float]?, decay: [Float], steps: Int, lastOnly: Bool) {
        let d = input.outputFeatures, c = input.inputFeatures
        // B's dense form, column by column: B·e_i (the operator has no bias, so this is exact).
        var identity = [Float](repeating: 0, count: c * c)
        for i in 0..<c { identity[i * c + i] = 1 }
        let columns = input.apply(Matrix(rows: c, columns: c, values: identity))
        var b = [Float](repeating: 0, count: d * c)
        for i in 0..<c { for o in 0..<d { b[o * c + i] = columns[i, o] } }
        let (w, accumulatedBias) = LinearRecurrence.lowerTriangular(weight: b, bias: bias, decay: decay, steps: steps, lastOnly: lastOnly)
        matrix = DenseWeights(weights: w, outputFeatures: (lastOnly ? 1 : steps) * d, inputFeatures: steps * c, bias: accumulatedBias)
        self.steps = steps
        stateSize = d
        storage = "recurrence matrix T=\(steps) (lower-triangular, dense, from \(input.storage))"
        sourceParameters = input.parameterCount + decay.count + (bias?.count ?? 0)
    }

    var inputFeatures: Int { matrix.inputFeatures }
    var outputFeatures: Int { matrix.outputFeatures }
    var parameterCount: Int { sourceParameters }
    var byteCount: Int { matrix.byteCount }
    var flopsPerRow: Int { matrix.flopsPerRow }

    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        matrix.apply(x, rows: rows, inputStride: inputStride, into: y, outputStride: outputStride, activation: activation, pool: pool, isa: isa)
    }
}
