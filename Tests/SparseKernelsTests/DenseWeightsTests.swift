import Foundation
import XCTest
import SparseKernels

/// Double-precision reference activations.
func referenceActivation(_ activation: Activation, _ x: Double) -> Double {
    switch activation {
    case .none: return x
    case .relu: return x < 0 ? 0 : x
    case .gelu: return 0.5 * x * erfc(-x / 2.0.squareRoot())
    case .tanh: return Foundation.tanh(x)
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .silu: return x / (1 + Foundation.exp(-x))
    }
}

/// Deterministic pseudo-random floats in [-1, 1) (xorshift), so failures reproduce.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Float {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
    mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

final class DenseWeightsTests: XCTestCase {
    let rowCounts = [1, 2, 3, 7, 8, 33, 64, 130]
    let featureCounts = [1, 15, 17, 64, 100, 384]

    /// Every shape × ISA × activation against a float64 reference, with padded strides and a
    /// sentinel that must survive outside the written columns.
    func testGemmMatchesDoubleReference() {
        var random = TestRandom(seed: 1)
        for k in featureCounts {
            for n in featureCounts {
                let w = random.array(n * k)
                let bias = random.array(n)
                let layer = DenseWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias)
                for m in rowCounts {
                    let ldx = k + 3, ldy = n + 5
                    let x = random.array(m * ldx)
                    // Pre-activation reference and a scale for the rounding error bound.
                    let (reference, scale) = OperatorChecker.reference(x: x, rows: m, weights: w, outputs: n, inputs: k,
                                                                       bias: bias, rowStride: ldx)
                    for isa in InstructionSet.available {
                        for activation in Activation.allCases {
                            var y = [Float](repeating: .nan, count: m * ldy)
                            x.withUnsafeBufferPointer { xp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    layer.apply(xp.baseAddress!, rows: m, inputStride: ldx, into: yp.baseAddress!,
                                                outputStride: ldy, activation: activation, isa: isa)
                                }
                            }
                            var worst = 0.0
                            for i in 0..<m {
                                for j in 0..<n {
                                    let expected = referenceActivation(activation, reference[i * n + j])
                                    let error = abs(Double(y[i * ldy + j]) - expected)
                                    let bound = 1e-5 * (scale[i * n + j] + 1e-3) + 1e-6 * abs(expected)
                                    worst = max(worst, error / bound)
                                }
                                for j in n..<ldy where !y[i * ldy + j].isNaN {
                                    XCTFail("\(isa) m=\(m) k=\(k) n=\(n): wrote past column \(n)")
                                }
                            }
                            XCTAssertLessThanOrEqual(worst, 1, "\(isa) \(activation) m=\(m) k=\(k) n=\(n)")
                        }
                    }
                }
            }
        }
    }

    /// Splitting the output columns by panels gives exactly the full result, on every ISA.
    func testColumnRangesComposeToFullResult() {
        var random = TestRandom(seed: 2)
        let (m, k, n) = (9, 70, 83)
        let layer = DenseWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
        let x = random.array(m * k)
        for isa in InstructionSet.available {
            let full = layer.apply(Matrix(rows: m, columns: k, values: x), activation: .gelu, isa: isa)
            var pieces = [Float](repeating: .nan, count: m * n)
            for range in [0..<32, 32..<48, 48..<n] {
                x.withUnsafeBufferPointer { xp in
                    pieces.withUnsafeMutableBufferPointer { yp in
                        layer.apply(xp.baseAddress!, rows: m, inputStride: k, into: yp.baseAddress!, outputStride: n,
                                    activation: .gelu, outputColumns: range, isa: isa)
                    }
                }
            }
            XCTAssertEqual(pieces, full.values, "\(isa)")
        }
    }

    func testDenseWeightsFacts() {
        var random = TestRandom(seed: 3)
        let w = random.array(20 * 7)
        let layer = DenseWeights(weights: w, outputFeatures: 20, inputFeatures: 7, bias: random.array(20))
        XCTAssertEqual(layer.inputFeatures, 7)
        XCTAssertEqual(layer.outputFeatures, 20)
        XCTAssertEqual(layer.parameterCount, 20 * 7 + 20)
        XCTAssertEqual(layer.byteCount, (32 * 7 + 20) * 4)  // two zero-padded panels + bias
        XCTAssertEqual(layer.unpackedWeights(), w)
        let noBias = DenseWeights(weights: Matrix(rows: 20, columns: 7, values: w))
        XCTAssertNil(noBias.bias)
        XCTAssertEqual(noBias.parameterCount, 140)
        let empty = noBias.apply(Matrix(rows: 0, columns: 7))
        XCTAssertEqual(empty.rows, 0)
        XCTAssertEqual(empty.columns, 20)
    }

    /// Informational: GFLOP/s of the dense kernel for K=384, N=1536 (debug builds compile the C at -O0).
    func testDenseThroughputReport() {
        var random = TestRandom(seed: 4)
        let (k, n) = (384, 1536)
        let layer = DenseWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k)
        let x = random.array(128 * k)
        var y = [Float](repeating: 0, count: 128 * n)
        var report: [String] = []
        for m in [1, 64, 128] {
            var best = Double.infinity
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    for _ in 0..<5 {
                        var calls = 0
                        let start = DispatchTime.now().uptimeNanoseconds
                        var elapsed: UInt64 = 0
                        repeat {
                            layer.apply(xp.baseAddress!, rows: m, into: yp.baseAddress!, activation: .none)
                            calls += 1
                            elapsed = DispatchTime.now().uptimeNanoseconds - start
                        } while elapsed < 20_000_000
                        best = min(best, Double(elapsed) / Double(calls))
                    }
                }
            }
            report.append(String(format: "M=%d %.1f GFLOP/s", m, 2.0 * Double(m * n * k) / best))
        }
        print("dense K=384 N=1536 on \(InstructionSet.current): " + report.joined(separator: ", "))
    }
}
