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

    /// Builds from a stored form (checked by `PackedLayer.makeOperator`). The relative error is
    /// `relativeError` when given (an artifact's metadata, or the compaction's), else measured
    /// against `reference`. Unless `pinned` (or `time` is off), an N:M, CSR or BLAST layer is timed
    /// against the dense form of the same weights on its real shape at 1 and 32 rows, and the
    /// faster one runs; so is an N:M W8A8 layer against its dense W8A8 form.
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
        case .quantized:
            // An N:M W8A8 layer against its dense W8A8 form (the same int8 values, zeros included,
            // and scales: the same int32 sums), which runs on AMX tiles where the CPU has them.
            if time && !pinned, let nm = compressed as? NMInt8Weights, let dense = try? nm.denseInt8Form() {
                let t = LayerTiming.choose(compressed, over: dense)
                timing = t
                if t.runsDense { op = Relabeled(dense, instead: compressed.storage, timing: t) }
            }
        case .nm, .csr, .blast:
            if time && !pinned, let w = denseForm() {
                let dense = DenseWeights(weights: w, outputFeatures: packed.outputFeatures, inputFeatures: packed.inputFeatures, bias: packed.bias)
                let t = LayerTiming.choose(compressed, over: dense)
                timing = t
                if t.runsDense {
                    op = ChosenDense(dense, instead: compressed.storage, sparseMicroseconds: t.compressedMicroseconds, denseMicroseconds: t.denseMicroseconds)
                }
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
