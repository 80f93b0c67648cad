import Foundation
import XCTest
import SparseKernels
@testable import SparseModels

final class L1InfProjectionTests: XCTestCase {
    func testL1BallProjection() {
        XCTAssertEqual(L1InfProjection.projectOntoL1Ball([0.1, 0.2], radius: 1), [0.1, 0.2], "inside: unchanged")
        let p = L1InfProjection.projectOntoL1Ball([3, 1, 0.5, 2], radius: 2)
        XCTAssertEqual(p.reduce(0, +), 2, accuracy: 1e-12)
        XCTAssertEqual(p, [1.5, 0, 0, 0.5].map { $0 }, "threshold θ = 1.5")
        XCTAssertEqual(L1InfProjection.projectOntoL1Ball([1, 2], radius: 0), [0, 0])
    }

    func testProjectionBoundsGroupMaxima() {
        var rng = SplitMix(seed: 4)
        let rows = 12, cols = 20
        let w = (0..<(rows * cols)).map { _ in Float(rng.normal()) }
        for groups in [L1InfProjection.Groups.columns, .rows] {
            let p = L1InfProjection.project(w, rows: rows, columns: cols, groups: groups, radius: nil, radiusRatio: 0.3)
            let count = groups == .columns ? cols : rows
            var before = [Double](repeating: 0, count: count), after = before
            for r in 0..<rows { for c in 0..<cols {
                let g = groups == .columns ? c : r
                before[g] = max(before[g], Double(abs(w[r * cols + c])))
                after[g] = max(after[g], Double(abs(p[r * cols + c])))
                XCTAssertLessThanOrEqual(abs(p[r * cols + c]), abs(w[r * cols + c]))
                XCTAssertTrue(p[r * cols + c] == 0 || p[r * cols + c].sign == w[r * cols + c].sign)
            } }
            XCTAssertEqual(after.reduce(0, +), 0.3 * before.reduce(0, +), accuracy: 1e-4)
            XCTAssertGreaterThan(after.filter { $0 == 0 }.count, 0, "some groups vanish at ρ = 0.3")
        }
    }

    /// The compacted layer equals the dense layer on the projected weights, dropped neurons
    /// included (they output activation(bias)).
    func testCompactedLayerMatchesDenseOnProjectedWeights() throws {
        var rng = SplitMix(seed: 8)
        let outs = 24, ins = 40, rows = 7
        let w = (0..<(outs * ins)).map { _ in Float(rng.normal()) }
        let bias = (0..<outs).map { _ in Float(rng.normal()) }
        let x = (0..<(rows * ins)).map { _ in Float(rng.normal()) }
        for groups in [L1InfProjection.Groups.columns, .rows] {
            let method = LayerCompression.l1inf(groups: groups, radius: nil, radiusRatio: 0.1)
            let (op, error) = try method.makeOperator(weights: w, outputFeatures: outs, inputFeatures: ins, bias: bias)
            XCTAssertTrue(op.storage.hasPrefix("l1inf"), op.storage)
            XCTAssertLessThan(op.parameterCount, outs * ins + outs)
            XCTAssertGreaterThan(error, 0)
            let projected = L1InfProjection.project(w, rows: outs, columns: ins, groups: groups, radius: nil, radiusRatio: 0.1)
            let reference = DenseWeights(weights: projected, outputFeatures: outs, inputFeatures: ins, bias: bias)
            for act in [Activation.none, .gelu] {
                let got = op.apply(Matrix(rows: rows, columns: ins, values: x), activation: act).values
                let want = reference.apply(Matrix(rows: rows, columns: ins, values: x), activation: act).values
                for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
            }
        }
    }
}
