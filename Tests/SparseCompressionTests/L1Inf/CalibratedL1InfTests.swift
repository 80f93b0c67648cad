import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Data-aware ℓ1,∞: the projection of the activation-scaled weight drops the groups that move the
/// outputs least, then the kept groups are compensated and refitted.
final class CalibratedL1InfTests: XCTestCase {
    /// Input 0 has the largest weights but almost no signal: the weight-only projection keeps it,
    /// the calibrated one drops it (its column ends exactly zero) and moves the outputs less.
    func testDropsLargeWeightsOfQuietInputsAndBeatsWeightOnlyOnOutputs() throws {
        var random = SeededRandom(seed: 81)
        let (rows, features, tokens) = (12, 16, 300)
        var x = DataAwareFitTests.inputs(tokens: tokens, features: features, random: &random)
        for t in 0..<tokens { x[t * features] *= 0.001 }
        var w = random.array(rows * features)
        for r in 0..<rows { w[r * features] *= 50 }
        let bias = random.array(rows)
        let s = try DataAwareFitTests.statistics(x, tokens: tokens, features: features, dense: x)
        let weightOnly = L1InfProjection.project(w, rows: rows, columns: features, groups: .columns, radius: nil, radiusRatio: 0.5)
        XCTAssertTrue((0..<rows).contains { weightOnly[$0 * features] != 0 }, "weight-only keeps the large quiet column")
        let (calibrated, b) = try CalibratedL1Inf.project(weights: w, bias: bias, rows: rows, columns: features, groups: .columns, radius: nil,
                                                          radiusRatio: 0.5, statistics: s, options: CalibrationOptions())
        XCTAssertEqual((0..<rows).map { calibrated[$0 * features] }, [Float](repeating: 0, count: rows))
        let kept = Set((0..<features).filter { c in (0..<rows).contains { calibrated[$0 * features + c] != 0 } })
        XCTAssertLessThan(kept.count, features, "some columns vanish")
        func outputError(_ v: [Float], _ c: [Float]) -> Double {
            var total = 0.0
            for t in 0..<tokens {
                for r in 0..<rows {
                    var d = Double(bias[r] - c[r])
                    for j in 0..<features { d += Double(w[r * features + j] - v[r * features + j]) * Double(x[t * features + j]) }
                    total += d * d
                }
            }
            return total.squareRoot()
        }
        XCTAssertLessThan(outputError(calibrated, try XCTUnwrap(b)), 0.5 * outputError(weightOnly, bias))
    }

    /// Calibrated ℓ1,∞ (projection of the activation-scaled weight, compensation, refit) at the
    /// densities of README's weight-only rows keeps most of the digits accuracy (weight-only: 0.14
    /// with 32 of 64 input columns, 0.856 with 132 and 245 neurons), and the layers are still
    /// compacted (vanished input columns / neurons dropped).
    func testCalibratedL1InfBeatsWeightOnly() throws {
        let columns = CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .columns, radius: nil, radiusRatio: 0.19))])
        let rows = CompressionPlan(method: .dense, overrides: [("fc1", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.08)),
                                                              ("fc2", .l1inf(groups: .rows, radius: nil, radiusRatio: 0.19))])
        for (plan, minimum, kept) in [(columns, 0.94, "dense 256x"), (rows, 0.95, "l1inf rows: dense 1")] {
            let (calibrated, summary) = try CalibratedCompressorTests.quality(plan, CalibrationOptions(samples: 512))
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(calibrated.accuracy), minimum, calibrated.summary)
            let fc1 = try XCTUnwrap(summary.layers.first { $0.name == "fc1" }?.storage)
            XCTAssertTrue(fc1.contains(kept) && fc1.contains("of 256x64"), fc1)
            // about half of fc1's inputs (columns) or neurons (rows) are gone
            let shape = try XCTUnwrap(fc1.split(separator: " ").first { $0.contains("x") && $0.first!.isNumber })
            let (out, inputs) = (Int(shape.split(separator: "x")[0])!, Int(shape.split(separator: "x")[1])!)
            XCTAssertLessThanOrEqual(out * inputs, 256 * 64 * 6 / 10, fc1)
        }
    }
}
