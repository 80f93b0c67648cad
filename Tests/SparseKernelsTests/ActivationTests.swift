import Foundation
import XCTest
import SparseKernels

final class ActivationTests: XCTestCase {
    /// Relative error vs float64 libm on a dense grid; lengths chosen to exercise vector tails.
    func testActivationsMatchDoubleReference() {
        for isa in InstructionSet.available {
            for activation in Activation.allCases {
                for (range, count) in [(-10.0...10.0, 200_003), (-40.0...40.0, 20_001), (-0.7...0.7, 7_001)] {
                    let inputs = (0..<count).map { Float(range.lowerBound + (range.upperBound - range.lowerBound) * Double($0) / Double(count - 1)) }
                    var values = inputs
                    activation.apply(to: &values, isa: isa)
                    var worst = 0.0, worstAt: Float = 0
                    for (x, y) in zip(inputs, values) {
                        let expected = referenceActivation(activation, Double(x))
                        guard abs(expected) > 1e-30 else {
                            XCTAssertLessThanOrEqual(abs(Double(y)), 1e-29, "\(isa) \(activation)(\(x))")
                            continue
                        }
                        let error = abs(Double(y) - expected) / abs(expected)
                        if error > worst { (worst, worstAt) = (error, x) }
                    }
                    XCTAssertLessThanOrEqual(worst, 1e-6, "\(isa) \(activation) worst at x=\(worstAt)")
                }
            }
        }
    }

    func testSpecialValues() {
        let specials: [Float] = [.nan, .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.greatestFiniteMagnitude]
        let expected: [Activation: [Float]] = [
            .relu: [.nan, .infinity, 0, 0, 0, .leastNonzeroMagnitude, 0],
            .gelu: [.nan, .infinity, 0, 0, 0, 0, 0],
            .tanh: [.nan, 1, -1, 0, 0, .leastNonzeroMagnitude, -1],
            .sigmoid: [.nan, 1, 0, 0.5, 0.5, 0.5, 0],
            .silu: [.nan, .infinity, 0, 0, 0, 0, 0],
        ]
        for isa in InstructionSet.available {
            for (activation, want) in expected {
                // Specials at every lane position, in full vectors and in tails.
                for offset in [0, 5, 16, 21] {
                    var values = [Float](repeating: 1, count: offset) + specials
                    activation.apply(to: &values, isa: isa)
                    for (i, w) in want.enumerated() {
                        let got = values[offset + i]
                        if w.isNaN {
                            XCTAssertTrue(got.isNaN, "\(isa) \(activation)(\(specials[i])) = \(got)")
                        } else {
                            XCTAssertEqual(got, w, accuracy: w.isInfinite ? 0 : 1e-30, "\(isa) \(activation)(\(specials[i]))")
                        }
                    }
                }
            }
        }
    }

    func testExp() {
        for isa in InstructionSet.available {
            let inputs = (0..<40_001).map { Float(-103 + 191.7 * Double($0) / 40_000) }
            var values = inputs
            VectorKernels.exp(&values, isa: isa)
            for (x, y) in zip(inputs, values) {
                let expected = Foundation.exp(Double(x))
                if expected > 1e-37, expected < 3e38 {
                    XCTAssertLessThanOrEqual(abs(Double(y) - expected) / expected, 1e-6, "\(isa) exp(\(x))")
                }
            }
            var specials: [Float] = [.nan, .infinity, -.infinity, 0, 89, -105]
            VectorKernels.exp(&specials, isa: isa)
            XCTAssertTrue(specials[0].isNaN)
            XCTAssertEqual(Array(specials[1...]), [.infinity, 0, 1, .infinity, 0], "\(isa)")
        }
    }

    func testSoftmaxRows() {
        var random = TestRandom(seed: 5)
        for isa in InstructionSet.available {
            for columns in [1, 7, 16, 33, 100] {
                let rows = 3
                var values = random.array(rows * columns).map { $0 * 30 }
                values[0] = 1000  // would overflow without max subtraction
                let original = values
                VectorKernels.softmaxRows(&values, columns: columns, isa: isa)
                for r in 0..<rows {
                    let row = original[r * columns ..< (r + 1) * columns].map(Double.init)
                    let top = row.max()!
                    let total = row.reduce(0) { $0 + Foundation.exp($1 - top) }
                    for c in 0..<columns {
                        let expected = Foundation.exp(row[c] - top) / total
                        // x - max is rounded to float before exp: allow that error, |x - max| * 2^-24 relative.
                        let tolerance = expected * (1e-6 + abs(row[c] - top) * 6e-8) + 1e-37
                        XCTAssertEqual(Double(values[r * columns + c]), expected, accuracy: tolerance,
                                       "\(isa) columns=\(columns) [\(r), \(c)]")
                    }
                }
            }
            var withNaN: [Float] = [1, .nan, 2]
            VectorKernels.softmaxRows(&withNaN, columns: 3, isa: isa)
            XCTAssertTrue(withNaN.allSatisfy(\.isNaN), "\(isa)")
        }
    }

    func testLayerNormRows() {
        var random = TestRandom(seed: 6)
        for isa in InstructionSet.available {
            for columns in [1, 5, 16, 37, 384] {
                let rows = 4
                var values = random.array(rows * columns).map { $0 * 3 + 2 }
                let gamma = random.array(columns), beta = random.array(columns)
                let original = values
                VectorKernels.layerNormRows(&values, columns: columns, gamma: gamma, beta: beta, epsilon: 1e-5, isa: isa)
                var plain = original
                VectorKernels.layerNormRows(&plain, columns: columns, isa: isa)
                for r in 0..<rows {
                    let row = original[r * columns ..< (r + 1) * columns].map(Double.init)
                    let mean = row.reduce(0, +) / Double(columns)
                    let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(columns)
                    let inv = 1 / (variance + 1e-5).squareRoot()
                    for c in 0..<columns {
                        let normalised = (row[c] - mean) * inv
                        XCTAssertEqual(Double(values[r * columns + c]), normalised * Double(gamma[c]) + Double(beta[c]), accuracy: 2e-5,
                                       "\(isa) columns=\(columns)")
                        XCTAssertEqual(Double(plain[r * columns + c]), normalised, accuracy: 2e-5, "\(isa) columns=\(columns)")
                    }
                }
            }
        }
    }

    func testActivationCodable() throws {
        let decoded = try JSONDecoder().decode([Activation].self, from: Data(#"["relu","identity","none","gelu"]"#.utf8))
        XCTAssertEqual(decoded, [.relu, .none, .none, .gelu])
        XCTAssertThrowsError(try JSONDecoder().decode([Activation].self, from: Data(#"["swish"]"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("swish"))
        }
    }

    func testMatrixHelpers() {
        var m = Matrix(rows: 2, columns: 3, values: [1, 2, 3, -1, 0, 1])
        XCTAssertEqual(m[1, 2], 1)
        XCTAssertEqual(m.row(1), [-1, 0, 1])
        m.apply(.relu)
        XCTAssertEqual(m.values, [1, 2, 3, 0, 0, 1])
        m.softmaxRows()
        XCTAssertEqual(m.row(0).reduce(0, +), 1, accuracy: 1e-6)
    }
}
