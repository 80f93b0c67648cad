import Foundation
import XCTest
import SparseKernels

/// Banded (block-Toeplitz) operators: Conv1d lowered to a band equals direct convolution for
/// random channels, kernel sizes, strides, paddings (incl. "same" and causal) and dilations, on
/// every instruction set; compressed inner operators; the explicit band matrix.
final class BandedOperatorTests: XCTestCase {
    /// Direct Conv1d in float64 over a time-major input x[t * cin + c]; returns y[t * cout + o]
    /// pre-activation and the rounding scale.
    func directConv(_ x: [Float], length: Int, cin: Int, cout: Int, ks: Int, weight: [Float], bias: [Float]?,
                    stride: Int, pad: (left: Int, right: Int), dilation: Int) -> (values: [Double], scale: [Double]) {
        let outLength = (length + pad.left + pad.right - dilation * (ks - 1) - 1) / stride + 1
        var values = [Double](repeating: 0, count: outLength * cout), scale = values
        for t in 0..<outLength {
            for o in 0..<cout {
                let b = Double(bias?[o] ?? 0)
                var sum = b, magnitude = abs(b)
                for k in 0..<ks {
                    let pos = t * stride + k * dilation - pad.left
                    guard pos >= 0 && pos < length else { continue }
                    for c in 0..<cin {
                        let term = Double(weight[(o * cin + c) * ks + k]) * Double(x[pos * cin + c])
                        sum += term
                        magnitude += abs(term)
                    }
                }
                values[t * cout + o] = sum
                scale[t * cout + o] = magnitude
            }
        }
        return (values, scale)
    }

    func testConv1dEqualsDirectConvolution() throws {
        var random = TestRandom(seed: 31)
        let cases: [(cin: Int, cout: Int, ks: Int, length: Int, stride: Int, pad: (left: Int, right: Int), dilation: Int)] = [
            (1, 1, 3, 10, 1, (0, 0), 1),
            (3, 5, 3, 20, 1, BandedOperator.samePadding(kernelSize: 3), 1),
            (4, 8, 5, 33, 2, (2, 1), 1),
            (2, 17, 4, 19, 1, BandedOperator.causalPadding(kernelSize: 4), 1),
            (6, 3, 3, 25, 1, BandedOperator.samePadding(kernelSize: 3, dilation: 2), 2),
            (5, 16, 7, 40, 3, (3, 3), 1),
            (8, 4, 2, 9, 4, (0, 5), 3),
            (16, 32, 3, 64, 1, (1, 1), 1),
            // dilated at stride 1: interior windows run phase by phase
            (4, 8, 5, 60, 1, BandedOperator.causalPadding(kernelSize: 5, dilation: 3), 3),
            (1, 4, 3, 40, 1, (0, 0), 4),
            (16, 32, 3, 37, 1, (4, 0), 2),
            (3, 5, 2, 12, 1, (1, 0), 7),
        ]
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        for c in cases {
            let weight = random.array(c.cout * c.cin * c.ks), bias = random.array(c.cout)
            let op = try BandedOperator.conv1d(weight: weight, bias: bias, inChannels: c.cin, outChannels: c.cout, kernelSize: c.ks,
                                               inputLength: c.length, stride: c.stride, padding: c.pad, dilation: c.dilation)
            XCTAssertEqual(op.inputFeatures, c.length * c.cin)
            for batch in [1, 3] {
                let x = random.array(batch * op.inputFeatures)
                var values: [Double] = [], scale: [Double] = []
                for b in 0..<batch {
                    let one = directConv(Array(x[(b * op.inputFeatures)..<((b + 1) * op.inputFeatures)]), length: c.length, cin: c.cin,
                                         cout: c.cout, ks: c.ks, weight: weight, bias: bias, stride: c.stride, pad: c.pad, dilation: c.dilation)
                    values += one.values
                    scale += one.scale
                }
                XCTAssertEqual(values.count, batch * op.outputFeatures, "output length")
                for isa in InstructionSet.available {
                    for activation in [Activation.none, .relu] {
                        let got = OperatorChecker.run(op, x: x, rows: batch, activation: activation, isa: isa)
                        OperatorChecker.assertClose(got, (values, scale), activation: activation,
                                                    "conv cin=\(c.cin) cout=\(c.cout) ks=\(c.ks) L=\(c.length) s=\(c.stride) pad=\(c.pad) d=\(c.dilation) batch=\(batch) \(isa)")
                    }
                    // split across a pool: parts start and end inside rows and phases
                    let split = OperatorChecker.run(op, x: x, rows: batch, activation: .none, isa: isa, pool: pool)
                    OperatorChecker.assertClose(split, (values, scale), activation: .none,
                                                "conv split cin=\(c.cin) ks=\(c.ks) L=\(c.length) d=\(c.dilation) batch=\(batch) \(isa)")
                }
            }
        }
    }

    /// The band with an N:M inner operator equals the explicit band matrix of the pruned weight,
    /// and the band's FLOPs equal direct convolution's.
    func testCompressedInnerOperatorAndBandMatrix() throws {
        var random = TestRandom(seed: 32)
        let (cin, cout, ks, length) = (8, 16, 3, 30)
        let innerDense = random.array(cout * ks * cin)
        let inner = try NMWeights(magnitudePruning: innerDense, outputFeatures: cout, inputFeatures: ks * cin, n: 2, m: 4, bias: random.array(cout))
        let op = try BandedOperator(inner: inner, inputFeatures: length * cin, blocks: length, blockStep: cin, firstColumn: -cin,
                                    taps: ks, tapStride: cin, tapWidth: cin)
        let band = op.denseWeights(innerWeights: inner.denseWeights())
        var bias: [Float] = []
        for _ in 0..<length { bias += inner.bias! }
        OperatorChecker.check(op, dense: band, bias: bias, rowCounts: [1, 2, 4], random: &random, "banded nm 2:4")
        // every output row has at most ks * cin non-zeros, in one contiguous band
        for row in 0..<op.outputFeatures {
            let nonZero = (0..<op.inputFeatures).filter { band[row * op.inputFeatures + $0] != 0 }
            if let first = nonZero.first, let last = nonZero.last { XCTAssertLessThan(last - first, ks * cin) }
        }
        XCTAssertEqual(op.flopsPerRow, length * inner.flopsPerRow)
        let dense = try BandedOperator.conv1d(weight: random.array(cout * cin * ks), bias: nil, inChannels: cin, outChannels: cout,
                                              kernelSize: ks, inputLength: length, padding: (1, 1))
        XCTAssertEqual(dense.flopsPerRow, 2 * length * cout * cin * ks)
    }

    func testRejectsInvalidBands() {
        let inner = DenseWeights(weights: [1, 2, 3, 4], outputFeatures: 2, inputFeatures: 2)
        XCTAssertThrowsError(try BandedOperator(inner: inner, inputFeatures: 10, blocks: 4, blockStep: 2, firstColumn: 0,
                                                taps: 2, tapStride: 2, tapWidth: 2))  // window 4 != inner inputs 2
        XCTAssertThrowsError(try BandedOperator.conv1d(weight: [1, 2, 3], bias: nil, inChannels: 1, outChannels: 1, kernelSize: 3,
                                                       inputLength: 2))  // shorter than the kernel
    }
}
