import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// GPTQ rounding (`SecondOrderPruning.quantize`) against round-to-nearest on the loss it
/// minimises, ‖(W − Q) Xᵀ‖ over calibration inputs with unequal, correlated features.
final class SecondOrderQuantizationTests: XCTestCase {
    func testGPTQBeatsRoundToNearestOnOutputs() throws {
        var random = SeededRandom(seed: 71)
        let (rows, features, tokens) = (24, 64, 400)
        let x = DataAwareFitTests.inputs(tokens: tokens, features: features, random: &random)
        var w = random.array(rows * features)
        for r in 0..<rows { w[r * features + (r * 5) % features] *= 12 }   // an outlier per row sets its scale
        let sweep = try SecondOrderPruning(gram: try DataAwareFitTests.statistics(x, tokens: tokens, features: features).gram,
                                           features: features, damping: 0.01)
        for granularity in [Int8Granularity.channel, .group(16)] {
            let nearest = try quantizeInt8(w, rows: rows, columns: features, granularity: granularity)
            var rounded = w
            let gptq = try sweep.quantize(&rounded, rows: rows, granularity: granularity)
            let perRow = granularity.scalesPerRow(inputFeatures: features), width = features / perRow
            func dequantised(_ q: (values: [Int8], scales: [Float])) -> [Float] {
                (0..<rows * features).map { Float(q.values[$0]) * q.scales[$0 / features * perRow + $0 % features / width] }
            }
            XCTAssertEqual(dequantised(gptq), rounded, "\(granularity): the returned weights are the int8 values times their scales")
            let errors = [nearest, gptq].map {
                DataAwareFitTests.outputError(w, dequantised($0), x: x, rows: rows, features: features, tokens: tokens)
            }
            XCTAssertLessThan(errors[1], 0.9 * errors[0], "\(granularity): GPTQ \(errors[1]) vs nearest \(errors[0])")
        }
    }

    /// With a 2:4 mask, pruned weights stay exactly 0 and the kept ones beat rounding to nearest.
    func testGPTQKeepsTheMaskAndBeatsNearestOnPrunedWeights() throws {
        var random = SeededRandom(seed: 72)
        let (rows, features, tokens) = (16, 48, 300)
        let x = DataAwareFitTests.inputs(tokens: tokens, features: features, random: &random)
        let mask = (0..<rows * features).map { UInt8($0 % 4 < 2 ? 1 : 0) }
        let w = random.array(rows * features).enumerated().map { mask[$0.offset] == 1 ? $0.element : 0 }
        let sweep = try SecondOrderPruning(gram: try DataAwareFitTests.statistics(x, tokens: tokens, features: features).gram,
                                           features: features, damping: 0.01)
        var rounded = w
        let gptq = try sweep.quantize(&rounded, rows: rows, granularity: .channel, mask: mask)
        for i in mask.indices where mask[i] == 0 { XCTAssertEqual(gptq.values[i], 0); XCTAssertEqual(rounded[i], 0) }
        let nearest = try quantizeInt8(w, rows: rows, columns: features, granularity: .channel)
        let nearestW = (0..<w.count).map { Float(nearest.values[$0]) * nearest.scales[$0 / features] }
        let e = [nearestW, rounded].map { DataAwareFitTests.outputError(w, $0, x: x, rows: rows, features: features, tokens: tokens) }
        XCTAssertLessThan(e[1], e[0], "GPTQ \(e[1]) vs nearest \(e[0])")
    }

    func testRefusesBadShapes() throws {
        let sweep = try SecondOrderPruning(gram: [1, 0, 0, 1], features: 2, damping: 0.01)
        var w: [Float] = [1, 2, 3]
        XCTAssertThrowsError(try sweep.quantize(&w, rows: 2, granularity: .channel))
        w = [1, .nan, 3, 4]
        XCTAssertThrowsError(try sweep.quantize(&w, rows: 2, granularity: .channel))
        w = [1, 2, 3, 4]
        XCTAssertThrowsError(try sweep.quantize(&w, rows: 2, granularity: .group(0)))
        XCTAssertThrowsError(try sweep.quantize(&w, rows: 2, granularity: .channel, freeColumns: 2))
    }
}
