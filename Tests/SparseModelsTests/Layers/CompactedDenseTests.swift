import SparseKernels
import XCTest
@testable import SparseModels

/// A compacted dense layer equals the full layer it stands for: gathered inputs, kept outputs
/// scattered into place, dropped outputs at act(bias); sizes count the index metadata.
final class CompactedDenseTests: XCTestCase {
    /// The full 5 → 4 layer: inputs 1 and 3 have zero columns, output 2 has a zero row (bias 0.7).
    private let outputs = 4, inputs = 5
    private var full: [Float] {
        [0.5, 0, -1, 0, 2,
         1, 0, 0.25, 0, -3,
         0, 0, 0, 0, 0,
         -2, 0, 1.5, 0, 0.5]
    }
    private let bias: [Float] = [0.1, -0.2, 0.7, -5]

    private func compacted(scatter: Bool) -> CompactedDense {
        let keptInputs = [0, 2, 4], keptOutputs = scatter ? [0, 1, 3] : [0, 1, 2, 3]
        let weights = keptOutputs.flatMap { o in keptInputs.map { full[o * inputs + $0] } }
        let inner = DenseWeights(weights: weights, outputFeatures: keptOutputs.count, inputFeatures: 3, bias: keptOutputs.map { bias[$0] })
        let s = scatter ? CompactedDense.Scatter(kept: keptOutputs, dropped: [2], constants: [bias[2]]) : nil
        return CompactedDense(inner: inner, inputFeatures: inputs, gather: keptInputs, scatter: s, storage: "compacted")
    }

    func testEqualsTheFullLayerOnEveryActivation() {
        let reference = DenseWeights(weights: full, outputFeatures: outputs, inputFeatures: inputs, bias: bias)
        var random = SeededCounter()
        let x = Matrix(rows: 7, columns: inputs, values: (0..<35).map { _ in random.next() })
        for scatter in [true, false] {
            let op = compacted(scatter: scatter)
            XCTAssertEqual(op.outputFeatures, outputs)
            for activation in [Activation.none, .relu, .sigmoid] {
                for isa in InstructionSet.available {
                    let got = op.apply(x, activation: activation, isa: isa).values, want = reference.apply(x, activation: activation, isa: isa).values
                    for i in want.indices { XCTAssertEqual(got[i], want[i], accuracy: 1e-5, "scatter \(scatter) \(activation) \(isa) [\(i)]") }
                }
            }
        }
    }

    /// Without scatter the narrow output is the inner layer's; strided rows leave the gaps alone.
    func testNarrowOutputAndStrides() {
        let keptInputs = [4, 0]
        let inner = DenseWeights(weights: [1, 10, 2, 20], outputFeatures: 2, inputFeatures: 2, bias: nil)
        let op = CompactedDense(inner: inner, inputFeatures: 5, gather: keptInputs, scatter: nil, storage: "l1inf")
        XCTAssertEqual(op.outputFeatures, 2)
        let x: [Float] = [1, 9, 9, 9, 3, -1, -1,   2, 9, 9, 9, 4, -1, -1]  // two rows, stride 7
        var y = [Float](repeating: .nan, count: 2 * 3)
        op.apply(x, rows: 2, inputStride: 7, into: &y, outputStride: 3, activation: .none, pool: nil, isa: .portable)
        XCTAssertEqual(y[0], 3 + 10 * 1)
        XCTAssertEqual(y[1], 2 * 3 + 20 * 1)
        XCTAssertEqual(y[3], 4 + 10 * 2)
        XCTAssertEqual(y[4], 2 * 4 + 20 * 2)
        XCTAssertTrue(y[2].isNaN && y[5].isNaN, "the stride gap is not written")
    }

    func testSizesCountIndexMetadata() {
        let op = compacted(scatter: true)
        XCTAssertEqual(op.parameterCount, 3 * 3 + 3 + 1, "kept weights, kept biases, one dropped constant")
        XCTAssertEqual(op.byteCount, op.inner.byteCount + 4 * (3 + 3 + 2 * 1))
        XCTAssertEqual(op.flopsPerRow, op.inner.flopsPerRow)
        XCTAssertEqual(compacted(scatter: false).byteCount, compacted(scatter: false).inner.byteCount + 4 * 3)
    }

    /// Deterministic values in [-1, 1).
    private struct SeededCounter {
        var state: UInt32 = 12345
        mutating func next() -> Float {
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 23) - 1
        }
    }
}
