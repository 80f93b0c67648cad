import XCTest
@testable import SparseKernels

/// The convolution and pooling kernels of recovery training (`train_conv.c`) against direct
/// Swift references, on every instruction set: im2col reads the right input steps (zero in the
/// padding), col2im is its adjoint, max pooling keeps the first maximum's step, and every path gives
/// identical results.
final class TrainingKernelsConvolutionTests: XCTestCase {
    let shapes = [
        TrainingKernels.Conv1dShape(length: 150, channels: 1, kernelSize: 7, stride: 1, dilation: 1, padding: (3, 3)),
        TrainingKernels.Conv1dShape(length: 37, channels: 16, kernelSize: 3, stride: 1, dilation: 2, padding: (4, 0)),
        TrainingKernels.Conv1dShape(length: 20, channels: 5, kernelSize: 4, stride: 3, dilation: 1, padding: (2, 1)),
    ]

    func referenceIm2col(_ x: [Float], rows: Int, _ s: TrainingKernels.Conv1dShape) -> [Float] {
        var out: [Float] = []
        for r in 0..<rows {
            for t in 0..<s.outputLength {
                for k in 0..<s.kernelSize {
                    let step = t * s.stride - s.padLeft + k * s.dilation
                    for c in 0..<s.channels {
                        out.append((0..<s.length).contains(step) ? x[(r * s.length + step) * s.channels + c] : 0)
                    }
                }
            }
        }
        return out
    }

    func testIm2colReadsTheWindowsAndCol2imIsItsAdjoint() {
        XCTAssertEqual(shapes.map(\.outputLength), [150, 37, 7])
        var rng = TestRandom(seed: 5)
        let rows = 3
        for shape in shapes {
            let x = rng.array(rows * shape.length * shape.channels)
            let dcols = rng.array(rows * shape.outputLength * shape.window)
            let want = referenceIm2col(x, rows: rows, shape)
            var first: [Float]?
            for isa in InstructionSet.available {
                let cols = TrainingKernels.im2col(x, rows: rows, shape: shape, isa: isa)
                XCTAssertEqual(cols, want, "\(isa) \(shape)")
                let dx = TrainingKernels.col2im(dcols, rows: rows, shape: shape, isa: isa)
                // <im2col(x), d> = <x, col2im(d)>
                let lhs = zip(cols, dcols).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let rhs = zip(x, dx).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * (1 + abs(lhs)), "\(isa) \(shape)")
                if let first { XCTAssertEqual(dx, first, "\(isa): col2im differs between paths") } else { first = dx }
            }
        }
    }

    func testPoolingForwardAndBackward() {
        var rng = TestRandom(seed: 6)
        let rows = 2
        for pool in [TrainingKernels.PoolShape(length: 150, channels: 8, kernelSize: 2, stride: 2),
                     TrainingKernels.PoolShape(length: 37, channels: 32, kernelSize: 37, stride: 37),
                     TrainingKernels.PoolShape(length: 11, channels: 3, kernelSize: 3, stride: 2)] {
            var x = rng.array(rows * pool.length * pool.channels)
            x[pool.channels] = x[0]  // a tie: the first maximum's step wins
            let dy = rng.array(rows * pool.outputLength * pool.channels)
            for isa in InstructionSet.available {
                let (maxima, argmax) = TrainingKernels.maxPool(x, rows: rows, shape: pool, isa: isa)
                let average = TrainingKernels.averagePool(x, rows: rows, shape: pool, isa: isa)
                let dmax = TrainingKernels.maxPoolBackward(dy, argmax: argmax, rows: rows, shape: pool, isa: isa)
                let davg = TrainingKernels.averagePoolBackward(dy, rows: rows, shape: pool, isa: isa)
                var wantMax = [Float](repeating: 0, count: x.count), wantAvg = [Float](repeating: 0, count: x.count)
                for r in 0..<rows {
                    for t in 0..<pool.outputLength {
                        for c in 0..<pool.channels {
                            let steps = (0..<pool.kernelSize).map { t * pool.stride + $0 }
                            let values = steps.map { x[(r * pool.length + $0) * pool.channels + c] }
                            let best = values.indices.first { values[$0] == values.max()! }!
                            let o = (r * pool.outputLength + t) * pool.channels + c
                            XCTAssertEqual(maxima[o], values[best], "\(isa)")
                            XCTAssertEqual(Int(argmax[o]), steps[best], "\(isa)")
                            XCTAssertEqual(Double(average[o]), Double(values.reduce(0, +)) / Double(values.count), accuracy: 1e-5, "\(isa)")
                            wantMax[(r * pool.length + steps[best]) * pool.channels + c] += dy[o]
                            for s in steps { wantAvg[(r * pool.length + s) * pool.channels + c] += dy[o] / Float(pool.kernelSize) }
                        }
                    }
                }
                XCTAssertEqual(dmax, wantMax, "\(isa)")
                for (a, b) in zip(davg, wantAvg) { XCTAssertEqual(a, b, accuracy: 1e-6, "\(isa)") }
            }
        }
    }
}
