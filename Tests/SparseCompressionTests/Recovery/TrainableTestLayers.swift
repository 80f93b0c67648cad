import Foundation
import SparseKernels
import SparseTestSupport
@testable import SparseModels
@testable import SparseCompression

/// Small stored layers with random values for the recovery tests.
enum TrainableTestLayers {
    /// An `outputs × inputs` N:M layer (magnitude mask) with a bias.
    static func nm(_ rng: inout SeededRandom, outputs: Int, inputs: Int, n: Int = 2, m: Int = 4) throws -> PackedLayer {
        let w = rng.array(outputs * inputs)
        let mask = NMWeights.magnitudeKept(w, outputFeatures: outputs, inputFeatures: inputs, n: n, m: m)
        let (values, words) = try NMWeights.pack(weights: w, mask: mask, outputFeatures: outputs, inputFeatures: inputs, n: n, m: m)
        return PackedLayer(outputFeatures: outputs, inputFeatures: inputs, form: .nm(n: n, m: m, transposable: false, values: values, indexWords: words),
                           bias: rng.array(outputs))
    }

    /// An `outputs × inputs` BLAST layer of `blocks` × `blocks` blocks and rank `rank`, with a bias.
    static func blast(_ rng: inout SeededRandom, outputs: Int, inputs: Int, blocks: Int, rank: Int) -> PackedLayer {
        PackedLayer(outputFeatures: outputs, inputFeatures: inputs,
                    form: .blast(rowBlocks: blocks, columnBlocks: blocks, rank: rank, u: rng.array(outputs * rank), v: rng.array(inputs * rank),
                                 s: rng.array(blocks * blocks * rank)), bias: rng.array(outputs))
    }

    /// `x · Wᵀ + b` for `rows` rows (a plain-loop reference for dense layers).
    static func affine(_ x: [Float], rows: Int, _ w: [Float], _ b: [Float], outputs o: Int, inputs n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: rows * o)
        for r in 0..<rows {
            for j in 0..<o {
                var sum = b[j]
                for k in 0..<n { sum += x[r * n + k] * w[j * n + k] }
                y[r * o + j] = sum
            }
        }
        return y
    }

    /// Recovery settings of a short test run.
    static func options(epochs: Int, batchSize: Int, learningRate: Float) -> RecoveryOptions {
        var o = RecoveryOptions()
        o.epochs = epochs
        o.batchSize = batchSize
        o.learningRate = learningRate
        return o
    }
}

/// GunPoint's CNN (`models/timeseries`) and two compressions of its conv layers.
enum GunPoint {
    static var directory: String { repositoryRoot().appendingPathComponent("models/timeseries").path }
    static var convNM: CompressionPlan { CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))]) }
    static var convBlast: CompressionPlan {
        CompressionPlan(method: .dense, overrides: [("conv1", .pinned(.blast(blocks: 1, rank: nil, parameterRatio: 0.5, iterations: 20))),
                                                    ("conv*", .pinned(.blast(blocks: 4, rank: nil, parameterRatio: 0.5, iterations: 20)))])
    }

    /// The model compressed by `plan` at load (not timed) and the builder of its layers.
    static func open(_ plan: CompressionPlan) throws -> (model: SequentialModel, builder: LinearLayerBuilder) {
        let (model, builder) = try ModelLoader.open(directory: directory, compression: plan, compressor: WeightCompressor(), timeLayers: false)
        guard let sequential = model as? SequentialModel, let builder else { throw RecoveryRefusal("models/timeseries is not a sequential model") }
        return (sequential, builder)
    }
}
