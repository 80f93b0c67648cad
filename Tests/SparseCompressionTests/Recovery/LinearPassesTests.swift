import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// The trainable layer's passes on strided buffers: reading and writing columns of wider matrices
/// (as q/k/v side by side), accumulating into a residual, and accumulating dx.
final class LinearPassesTests: XCTestCase {
    func testStridedAndAccumulatingPasses() throws {
        let (outputs, inputs, rows) = (4, 8, 2)
        var random = SeededRandom(seed: 130)
        let p = try LayerCompression.dense.pack(weights: random.array(outputs * inputs), outputFeatures: outputs, inputFeatures: inputs,
                                                bias: random.array(outputs)).packed
        let layer = try TrainableLinear(p)
        let (ldx, ldy) = (inputs + 3, outputs + 5)
        let x = random.array(rows * ldx)
        let dense = Matrix(rows: rows, columns: inputs, values: (0..<rows).flatMap { Array(x[$0 * ldx ..< $0 * ldx + inputs]) })
        let expected = try p.makeOperator().apply(dense).values
        var y = [Float](repeating: 7, count: rows * ldy)
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { layer.forward(px.baseAddress!, ldx: ldx, rows: rows, into: $0.baseAddress!, ldy: ldy, accumulate: true) }
        }
        for r in 0..<rows {
            for o in 0..<outputs { XCTAssertEqual(y[r * ldy + o], 7 + expected[r * outputs + o], accuracy: 1e-5, "residual + x Ŵᵀ + b") }
            for o in outputs..<ldy { XCTAssertEqual(y[r * ldy + o], 7, "columns past the layer's are not written") }
        }
        let dy = random.array(rows * ldy)
        var dx = [Float](repeating: 1, count: rows * ldx)
        dy.withUnsafeBufferPointer { pdy in
            x.withUnsafeBufferPointer { px in
                dx.withUnsafeMutableBufferPointer {
                    layer.backward(pdy.baseAddress!, lddy: ldy, x: px.baseAddress!, ldx: ldx, rows: rows, dx: $0.baseAddress!, lddx: ldx, accumulate: true)
                }
            }
        }
        for r in 0..<rows {
            for j in 0..<inputs {
                let want = 1 + (0..<outputs).reduce(Float(0)) { $0 + dy[r * ldy + $1] * layer.weight[$1 * inputs + j] }
                XCTAssertEqual(dx[r * ldx + j], want, accuracy: 1e-5, "dx accumulated")
            }
            for j in inputs..<ldx { XCTAssertEqual(dx[r * ldx + j], 1) }
        }
    }
}
